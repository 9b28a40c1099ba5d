#!/usr/bin/env bash
# mypy over firmware-sim/, which is imported as firmware_sim (setup.py): mypy follows no import
# hook, so the package gets that name through a link in a scratch folder.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="$(mktemp -d)"
trap 'rm -r "$scratch"' EXIT
ln -s "$PWD/firmware-sim" "$scratch/firmware_sim"
MYPYPATH="$scratch" .venv/bin/mypy -p firmware_sim
