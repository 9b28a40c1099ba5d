#!/usr/bin/env bash
# Creates .venv and installs exactly the locked dependencies plus the project (editable).
# Safe to run again: it only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian's python3 ships venv separately.
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      rm -rf .venv && "$PY" -m venv .venv
    else
      echo "python3 -m venv failed: install python3-venv" >&2; exit 1
    fi
  fi
fi
stamp=.venv/.aquacis-lock
if [ ! -f "$stamp" ] || ! cmp -s requirements.lock "$stamp" || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps -e .
  cp requirements.lock "$stamp"
fi
