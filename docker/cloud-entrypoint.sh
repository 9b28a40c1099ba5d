#!/bin/sh
# Cloud container entry: settings from Docker secrets, then the `aquacis cloud` command given.
set -e
. /app/docker/secrets.sh
exec aquacis cloud "$@"
