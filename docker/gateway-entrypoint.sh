#!/bin/sh
# Gateway container entry: take the node token from the credential JSON written by the
# `enrol` service (aquacis cloud add-node), then run the gateway command given.
set -e
if [ -z "${AQUACIS_NODE_TOKEN:-}" ] && [ -f "${AQUACIS_CREDENTIAL_FILE:-/secrets/gateway.json}" ]; then
  AQUACIS_NODE_TOKEN=$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' \
    "${AQUACIS_CREDENTIAL_FILE:-/secrets/gateway.json}")
  export AQUACIS_NODE_TOKEN
fi
exec aquacis gateway "$@"
