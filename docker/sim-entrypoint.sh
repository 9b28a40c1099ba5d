#!/bin/sh
# Simulator container entry: the broker URL (with the LNS user's password) from a Docker
# secret, then the `aquacis sim` command given.
set -e
. /app/docker/secrets.sh
exec aquacis sim "$@"
