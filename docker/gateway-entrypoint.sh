#!/bin/sh
# Gateway container entry: settings from Docker secrets, the node token from the credential
# JSON written by the `enrol` service (aquacis cloud add-node --credential-file), then the
# gateway command given.
set -e
. /app/docker/secrets.sh
cred="${AQUACIS_CREDENTIAL_FILE:-/var/lib/aquacis/credentials/gateway.json}"
if [ -z "${AQUACIS_NODE_TOKEN:-}" ] && [ -f "$cred" ]; then
  AQUACIS_NODE_TOKEN=$(python - "$cred" <<'PY'
import json
import sys

try:
    print(json.load(open(sys.argv[1], encoding="utf-8"))["token"])
except (OSError, ValueError, KeyError, TypeError) as e:
    sys.exit(f"gateway: {sys.argv[1]} holds no node credential ({type(e).__name__}); run the enrol service again")
PY
)
  export AQUACIS_NODE_TOKEN
fi
exec aquacis gateway "$@"
