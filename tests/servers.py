"""Real InfluxDB 1.x and VictoriaMetrics servers for tests: on 127.0.0.1, in temporary directories.

Each server can be stopped and started again on the same port and data, for the outage tests.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from support import free_port


def wait_until(condition: Any, timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 15 s."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def seconds(duration: str) -> float:
    """A Prometheus/Grafana duration such as ``15s`` or ``1d`` in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+)([smhd])", duration)
    assert match, duration
    return int(match[1]) * units[match[2]]


class Server:
    """A server process that can be stopped and started again with the same port and data."""

    binary = ""

    def __init__(self, directory: Path) -> None:
        if shutil.which(self.binary) is None:
            pytest.fail(f"{self.binary} is not installed: run the README's test command (scripts/test.sh)")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        log = (self.directory / "server.log").open("ab")
        self._process = subprocess.Popen(self.command(), stdout=log, stderr=log)
        log.close()

        def up() -> bool:
            assert self._process is not None and self._process.poll() is None, self.log_tail()
            try:
                return self.ready()
            except requests.ConnectionError:
                return False

        wait_until(up, 30, f"{self.binary} to start")

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None

    def log_tail(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class InfluxDB1(Server):
    """Debian's ``influxd`` (InfluxDB 1.x), optionally with authentication on."""

    binary = "influxd"

    def __init__(self, directory: Path, *, auth: bool = False) -> None:
        super().__init__(directory)
        rpc_port = free_port()
        (directory / "influxdb.conf").write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{directory / "meta"}"
[data]
  dir = "{directory / "data"}"
  wal-dir = "{directory / "wal"}"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {str(auth).lower()}
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
"""
        )

    def command(self) -> list[str]:
        return ["influxd", "-config", str(self.directory / "influxdb.conf")]

    def ready(self) -> bool:
        return requests.get(self.url + "/ping", timeout=2).status_code == 204

    def query(self, statement: str, database: str = "enphase", auth: tuple[str, str] | None = None) -> Any:
        response = requests.post(
            self.url + "/query", data={"q": statement, "db": database, "epoch": "ns"}, auth=auth, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def rows(self, statement: str, database: str = "enphase") -> list[dict[str, Any]]:
        """Every row of a SELECT as a dict of column -> value, tags included."""
        rows = []
        for result in self.query(statement, database)["results"]:
            assert "error" not in result, result["error"]
            for series in result.get("series", []):
                for values in series["values"]:
                    rows.append(
                        {**series.get("tags", {}), **dict(zip(series["columns"], values, strict=True))}
                    )
        return rows


class VictoriaMetrics(Server):
    """Debian's ``victoria-metrics``, which takes the InfluxDB v2 write API.

    ``-dedup.minScrapeInterval=1ms`` makes a sample written again at the same time replace the old one, which
    is how a provisional bucket is corrected (InfluxDB does that by itself).
    """

    binary = "victoria-metrics"

    def command(self) -> list[str]:
        return [
            "victoria-metrics",
            f"-storageDataPath={self.directory / 'data'}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=100y",
            "-dedup.minScrapeInterval=1ms",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ]

    def ready(self) -> bool:
        return requests.get(self.url + "/health", timeout=2).status_code == 200

    def export(self, match: str = '{__name__=~"enphase_.*"}') -> list[dict[str, Any]]:
        """Every stored series with its samples (timestamps in ms), after flushing what was just written."""
        requests.get(self.url + "/internal/force_flush", timeout=30)
        response = requests.post(self.url + "/api/v1/export", data={"match[]": match}, timeout=60)
        response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]
