# Sourced by the entry scripts: export each Docker secret named like a setting
# (/run/secrets/AQUACIS_*) as that variable, so no secret is ever in compose.yaml or an env
# file. An empty secret file means "not set" (e.g. no SMTP password). A variable already set
# in the environment wins (an operator's explicit override).
for f in /run/secrets/AQUACIS_*; do
  [ -f "$f" ] && [ -s "$f" ] || continue
  name=$(basename "$f")
  eval "current=\${$name:-}"
  # shellcheck disable=SC2154
  [ -n "$current" ] && continue
  value=$(cat "$f")
  export "$name=$value"
done
# CSD files of the stamp worker: used only when the utility has put them in place.
if [ -s /run/secrets/csd.cer ] && [ -s /run/secrets/csd.key ]; then
  export AQUACIS_CFDI_CSD_CER="${AQUACIS_CFDI_CSD_CER:-/run/secrets/csd.cer}"
  export AQUACIS_CFDI_CSD_KEY="${AQUACIS_CFDI_CSD_KEY:-/run/secrets/csd.key}"
fi
