#!/bin/sh
# mosquitto-auth (one-shot): hash each MQTT user's password, read from its Docker secret, into
# the broker's password file. Re-run on every `up`, so a rotated secret takes effect.
set -eu
secrets="${MQTT_SECRETS_DIR:-/run/secrets}"
out="${MQTT_AUTH_DIR:-/mosquitto/auth}/passwd"
tmp="$out.new"
umask 077
: > "$tmp"
for user in gateway lns health; do
  secret="$secrets/mqtt_${user}_password"
  [ -s "$secret" ] || { echo "missing secret $secret (run docker/init-secrets.sh)" >&2; rm -f "$tmp"; exit 1; }
  mosquitto_passwd -b "$tmp" "$user" "$(cat "$secret")"
done
# The broker drops to user mosquitto; the file stays readable by it alone.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
  chown mosquitto:mosquitto "$tmp"
fi
chmod 0600 "$tmp"
mv "$tmp" "$out"
echo "mosquitto-auth: password file written for gateway, lns, health"
