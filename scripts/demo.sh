#!/usr/bin/env bash
# The demo: sets everything up (virtualenv, locked dependencies; Mosquitto is used when
# installed, otherwise an in-process broker) and runs `aquacis demo` on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/aquacis demo "$@"
