#!/usr/bin/env bash
# Installs (Debian packages) and starts the real services the tests use: PostgreSQL and
# Mosquitto, mbpoll (an independent Modbus client the Modbus tests read through) and
# systemd-analyze (checks the gateway's systemd unit; systemd itself is not started),
# Chromium and its WebDriver (the staff console's browser tests drive a real headless browser).
# Idempotent. Prints the exports the test command needs.
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v mbpoll >/dev/null 2>&1 || need+=(mbpoll)  # an independent Modbus client for the Modbus tests
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)  # verifies the gateway's unit (not started)
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # the console's browser tests (tests/browser)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
  else
    echo "missing Debian packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
fi

PGPORT="${AQUACIS_PG_PORT:-55432}"
PGDATA="${AQUACIS_PG_DATA:-/tmp/aquacis-pg-$PGPORT}"
PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
run_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
if ! run_pg "$PGBIN/pg_isready -q -h 127.0.0.1 -p $PGPORT"; then
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"; [ "$(id -u)" = 0 ] && chown postgres "$PGDATA"
    run_pg "$PGBIN/initdb -D $PGDATA -U postgres --auth=trust" >/dev/null
  fi
  run_pg "$PGBIN/pg_ctl -D $PGDATA -l $PGDATA/server.log -w -o '-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200' start" >&2
fi
echo "export AQUACIS_TEST_PG_URL=postgresql://postgres@127.0.0.1:$PGPORT/postgres"
echo "export AQUACIS_MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)"
echo "export AQUACIS_CHROMIUM=$(command -v chromium || echo /usr/bin/chromium)"
echo "export AQUACIS_CHROMEDRIVER=$(command -v chromedriver || echo /usr/bin/chromedriver)"
