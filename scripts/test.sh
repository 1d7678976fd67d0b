#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what the tests need, lints, tests.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

# Real servers the tests start on 127.0.0.1: prometheus (and promtool, which checks the exposition and
# the alert rules), amtool (prometheus-alertmanager) for the Alertmanager example, InfluxDB 1.x (influxdb,
# the v1 /write path) and VictoriaMetrics (victoria-metrics, the v2 write API).
# The packages' own services are not wanted: the tests start their own servers.
if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null || ! command -v influxd >/dev/null \
  || ! command -v victoria-metrics >/dev/null; then
  echo "--- installing Debian packages: prometheus prometheus-alertmanager influxdb victoria-metrics"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-alertmanager influxdb victoria-metrics >/dev/null
fi

echo "--- installing the exporter with its test dependencies"
python3 -m pip install -q --disable-pip-version-check -e '.[test]'

echo "--- ruff"
python3 -m ruff check .
python3 -m ruff format --check exporter tests

echo "--- pytest"
python3 -m pytest "$@"
