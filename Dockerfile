# The Enphase exporter as a container: configured by ENPHASE_* environment variables (see the README's
# configuration table), serving /metrics on port 8466.
#
#   docker build -t enphase-exporter .
#   docker run --rm -p 8466:8466 -e ENPHASE_DEMO=1 enphase-exporter
#
# The session file and the InfluxDB queue live in /var/lib/enphase-exporter; mount a volume there so a
# restart neither logs in again nor loses points waiting for InfluxDB.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the exporter and its dependencies into a virtual environment --------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/enphase-exporter
WORKDIR /src
# Only what `pip install .` reads: the package, its metadata and the README it names as its readme.
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN /opt/enphase-exporter/bin/pip install . \
    && /opt/enphase-exporter/bin/pip uninstall --yes pip setuptools

# --- runtime: the virtual environment on a clean slim image, as an unprivileged user ---------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="enphase-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Enphase IQ EV Chargers and IQ Batteries, through the Enlighten cloud" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric id, so that runAsNonRoot checks and volume permissions do not depend on names.
RUN groupadd --system --gid 10001 enphase \
    && useradd --system --uid 10001 --gid enphase --home-dir /var/lib/enphase-exporter \
       --shell /usr/sbin/nologin enphase \
    && install --directory --owner enphase --group enphase --mode 0700 /var/lib/enphase-exporter

COPY --from=build /opt/enphase-exporter /opt/enphase-exporter

ENV PATH=/opt/enphase-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENPHASE_LISTEN=:8466 \
    ENPHASE_SESSION_FILE=/var/lib/enphase-exporter/session.json \
    ENPHASE_INFLUX_QUEUE_DIR=/var/lib/enphase-exporter/influx-queue

USER 10001:10001
WORKDIR /var/lib/enphase-exporter
EXPOSE 8466

# Slim images have no curl or wget, so Python asks /healthz, on ENPHASE_LISTEN's port. Plain HTTP first;
# with TLS on (ENPHASE_WEB_CONFIG_FILE) the exporter answers that with 400, and HTTPS follows, unverified
# because the certificate names the host, not 127.0.0.1. /healthz needs no password.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, ssl, sys, urllib.error, urllib.request\nport = os.environ.get('ENPHASE_LISTEN', ':8466').rsplit(':', 1)[-1]\nfor scheme, context in (('http', None), ('https', ssl._create_unverified_context())):\n    try:\n        with urllib.request.urlopen(f'{scheme}://127.0.0.1:{port}/healthz', timeout=2, context=context) as answer:\n            sys.exit(answer.read() != b'ok\\n')\n    except urllib.error.HTTPError:\n        pass\nsys.exit(1)\n"]

ENTRYPOINT ["enphase-exporter"]
CMD ["serve"]
