#!/bin/sh
# The stand-in influxdb:1.8's entry point. On the first start (no meta directory yet) it creates INFLUXDB_DB
# through a temporary server, as the upstream image does. That server listens on another port than the real
# one: with host networking a client must not find a server whose database does not exist yet.
set -eu
if [ "${1:-}" = influxd ] && [ -n "${INFLUXDB_DB:-}" ] && [ ! -d /var/lib/influxdb/meta ]; then
  INFLUXDB_HTTP_BIND_ADDRESS=127.0.0.1:${INFLUXDB_INIT_PORT:-18086} INFLUXDB_BIND_ADDRESS=127.0.0.1:18088 "$@" &
  server=$!
  python3 - "${INFLUXDB_INIT_PORT:-18086}" "$INFLUXDB_DB" <<'PYTHON'
import sys, time, urllib.parse, urllib.request

port, database = sys.argv[1:]
query = urllib.parse.urlencode({"q": f'CREATE DATABASE "{database}"'}).encode()
for _ in range(300):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/query", data=query, timeout=2).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(f"influxd did not answer on port {port}")
PYTHON
  kill "$server"
  wait "$server" || true
fi
exec "$@"
