# Sourced by the entry scripts: export each Docker secret named like a setting
# (/run/secrets/AQUACIS_*) as that variable, so no secret is ever in compose.yaml or an env
# file. An empty secret file means "not set" (e.g. no SMTP password). A variable already set
# in the environment wins (an operator's explicit override). The value is read, never evaluated.
secrets_dir="${AQUACIS_SECRETS_DIR:-/run/secrets}"
for f in "$secrets_dir"/AQUACIS_*; do
  [ -f "$f" ] && [ -s "$f" ] || continue
  name=$(basename "$f")
  case "$name" in *[!A-Z0-9_]*) echo "secrets: ignoring $name (not a setting name)" >&2; continue ;; esac
  eval "current=\${$name:-}"
  [ -n "$current" ] && continue
  value=$(cat "$f")
  export "$name=$value"
done
# CSD files of the stamp worker: used only when the utility has put them in place.
if [ -s "$secrets_dir/csd.cer" ] && [ -s "$secrets_dir/csd.key" ]; then
  export AQUACIS_CFDI_CSD_CER="${AQUACIS_CFDI_CSD_CER:-$secrets_dir/csd.cer}"
  export AQUACIS_CFDI_CSD_KEY="${AQUACIS_CFDI_CSD_KEY:-$secrets_dir/csd.key}"
fi
unset secrets_dir f name current value
