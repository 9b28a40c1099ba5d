#!/usr/bin/env bash
# The test command: sets everything up on a fresh Debian machine (virtualenv, locked
# dependencies, Mosquitto and PostgreSQL from Debian packages), then runs the whole suite:
# every cloud test on SQLite and on PostgreSQL. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
eval "$(bash scripts/start-services.sh)"
export AQUACIS_HYPOTHESIS_PROFILE="${AQUACIS_HYPOTHESIS_PROFILE:-ci}"
.venv/bin/ruff check .
.venv/bin/mypy sync edge gateway tui
bash scripts/mypy-firmware-sim.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 "$@"
