#!/bin/sh
# mosquitto-auth (one-shot): hash each MQTT user's password, read from its Docker secret, into
# the broker's password file. Re-run on every `up`, so a rotated secret takes effect.
set -eu
umask 077
out=/mosquitto/auth/passwd
tmp="$out.new"
: > "$tmp"
for user in gateway lns health; do
  secret="/run/secrets/mqtt_${user}_password"
  [ -s "$secret" ] || { echo "missing secret $secret (run docker/init-secrets.sh)" >&2; exit 1; }
  mosquitto_passwd -b "$tmp" "$user" "$(cat "$secret")"
done
chown mosquitto:mosquitto "$tmp"
chmod 0600 "$tmp"
mv "$tmp" "$out"
echo "mosquitto-auth: password file written for gateway, lns, health"
