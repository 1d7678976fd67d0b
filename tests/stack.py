"""The monitoring stack for tests: ``enphase-exporter serve --demo`` and a real Prometheus, on 127.0.0.1 in
temporary directories. Used by test_prometheus_demo.py, test_docker.py and test_influxql_dashboards.py
(InfluxDB 1.x comes from servers.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import requests
import yaml
from servers import Server, stop_process, wait_until
from support import free_port

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "prometheus" / "alerts.yml"


class DemoExporter:
    """``serve --demo`` as a subprocess, with none of the caller's ENPHASE_* settings. ``tls``: the
    arguments include a web config file that turns HTTPS on (its certificate is not verified here)."""

    def __init__(self, directory: Path, *args: str, tls: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if tls else 'http'}://{self.address}"
        self.args = args
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("ENPHASE_")}
        log = (self.directory / "exporter.log").open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve", "--demo", "--listen", self.address, *self.args],
            env=env,
            stdout=log,
            stderr=log,
        )
        log.close()

        def healthy() -> bool:
            assert self._process is not None and self._process.poll() is None, self.log_tail()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the unverified certificate of the TLS case
                    return requests.get(self.url + "/healthz", timeout=2, verify=False).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(healthy, 30, "the demo exporter to answer /healthz")

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None

    def log_tail(self) -> str:
        path = self.directory / "exporter.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


class Prometheus(Server):
    """Debian's ``prometheus``, scraping ``target`` as job ``enphase`` every ``interval`` with the alert
    rules of prometheus/alerts.yml loaded."""

    binary = "prometheus"

    def __init__(self, directory: Path, target: str, interval: str = "1s") -> None:
        super().__init__(directory)
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "enphase", "static_configs": [{"targets": [target]}]}],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")

    def command(self) -> list[str]:
        return [
            "prometheus",
            f"--config.file={self.directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]

    def ready(self) -> bool:
        return requests.get(self.url + "/-/ready", timeout=2).status_code == 200

    def api(self, path: str, **params: Any) -> Any:
        """The `data` of an HTTP API answer; a query Prometheus rejects fails with its error message."""
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        assert body.get("status") == "success", f"{path} {params}: {body.get('error', body)}"
        return body["data"]

    def has_series(self, selector: str) -> bool:
        return bool(self.api("query", query=selector)["result"])
