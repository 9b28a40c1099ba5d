#!/bin/sh
# Create the Docker secrets docker/compose.yaml reads, once: random passwords and the URLs
# built from them, each in its own mode-600 file under docker/secrets/ (git-ignored).
# Idempotent: an existing file is kept, so re-running never changes a password in use.
# Compose mounts a file secret as it is on the host (its owner and mode go with it), and each
# image runs as its own user; so the folder is 700 (nobody else on the host gets in) and each
# file 444 (the container's own user can read its secret).
# Put the utility's CSD (csd.cer, csd.key, csd_password), PAC and SMTP passwords in the
# same folder; empty files mean "not configured".
set -eu
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 700 "$dir"
rand() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
keep_or_write() {  # file value
  [ -e "$dir/$1" ] || { printf '%s' "$2" > "$dir/$1"; chmod 444 "$dir/$1"; }
}
keep_or_write postgres_password "$(rand)"
keep_or_write mqtt_gateway_password "$(rand)"
keep_or_write mqtt_lns_password "$(rand)"
keep_or_write mqtt_health_password "$(rand)"
keep_or_write db_url "postgresql://aquacis:$(cat "$dir/postgres_password")@postgres:5432/aquacis"
keep_or_write gateway_broker_url "mqtt://gateway:$(cat "$dir/mqtt_gateway_password")@mosquitto:1883"
keep_or_write lns_broker_url "mqtt://lns:$(cat "$dir/mqtt_lns_password")@mosquitto:1883"
for f in pac_password csd_password csd.cer csd.key smtp_password; do
  keep_or_write "$f" ""
done
echo "secrets in $dir"
