"""No loss, no duplicates: a demo run writing to both servers through a minute of outage and a restart.

Two ``serve`` processes poll the demo cloud, one writing to InfluxDB 1.x (``/write``), one to VictoriaMetrics
(the 2.x write API). A recording proxy in front of the cloud keeps every EV status and today answer each
exporter received, which says exactly which points must exist. Midway both servers stop for a minute; during
the outage both exporters are stopped and started again on the same queue. At the end every reading is in
each server once, and nothing was dropped.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from servers import InfluxDB1, Server, VictoriaMetrics, wait_until
from support import free_port

from exporter.demo import DEMO_CHARGER_SERIAL, DEMO_EMAIL, DEMO_PASSWORD, DemoCloud

OUTAGE_SECONDS = 60
EV_STATUS_EVERY = 15  # the shortest interval the settings allow


class RecordingProxy:
    """Forwards every request to the cloud unchanged and keeps the EV status and today answers."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.ev_status: list[dict[str, Any]] = []
        self.today: list[dict[str, Any]] = []
        recording = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                connection = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                connection.close()
                if answer.status == 200 and self.path.split("?")[0].endswith(
                    ("/ev_chargers/status", "/today")
                ):
                    kept = recording.ev_status if "ev_chargers" in self.path else recording.today
                    kept.append(json.loads(payload))
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _forward

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def status_times_ns(self) -> set[int]:
        """The server time of every EV status answer: one charger point each."""
        return {round(answer["meta"]["serverTimeStamp"] * 1000) * 1000 for answer in self.ev_status}

    def report_times_ns(self) -> set[int]:
        """The site's last report of every today answer: one battery point each (repeats replace)."""
        return {answer["last_report_date"] * 10**9 for answer in self.today}


class Exporter:
    """``enphase-exporter serve`` as a subprocess that can be stopped and started on the same state."""

    def __init__(self, directory: Path, cloud: str, influx_args: list[str], env: dict[str, str]) -> None:
        self.directory = directory
        self.port = free_port()
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
        self._env = {
            **clean,
            **env,
            "ENPHASE_BASE_URL": cloud,
            "ENPHASE_EMAIL": DEMO_EMAIL,
            "ENPHASE_PASSWORD": DEMO_PASSWORD,
            "ENPHASE_SESSION_FILE": str(directory / "session.json"),
            "ENPHASE_INFLUX_QUEUE_DIR": str(directory / "queue"),
            "ENPHASE_LISTEN": f"127.0.0.1:{self.port}",
            "ENPHASE_EV_STATUS_INTERVAL": str(EV_STATUS_EVERY),
            "ENPHASE_EV_STATUS_CHARGING_INTERVAL": str(EV_STATUS_EVERY),
            "ENPHASE_TODAY_INTERVAL": "60",
            "ENPHASE_HISTORY_START": (date.today() - timedelta(days=3)).isoformat(),
        }
        self._args = [sys.executable, "-m", "exporter", "serve", *influx_args]
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.directory / f"exporter-{self.starts}.log").open("wb")
        self._process = subprocess.Popen(self._args, env=self._env, stdout=log, stderr=log)
        log.close()
        wait_until(lambda: self.metrics() is not None, 30, "the exporter to answer /metrics")

    def stop(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        assert self._process.wait(60) == 0, self.log()

    def metrics(self) -> dict[str, float] | None:
        try:
            text = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        except requests.ConnectionError:
            return None
        found = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith("enphase_influxdb_"):
                    found[sample.name + json.dumps(sample.labels, sort_keys=True)] = sample.value
        return found

    def metric(self, name: str, **labels: str) -> float:
        values = self.metrics() or {}
        return values.get(name + json.dumps(labels, sort_keys=True), float("nan"))

    def log(self) -> str:
        return "\n".join(path.read_text()[-3000:] for path in sorted(self.directory.glob("exporter-*.log")))


@pytest.fixture
def cloud() -> Iterator[DemoCloud]:
    with DemoCloud() as demo:
        yield demo


def test_an_outage_and_a_restart_lose_no_point_and_duplicate_none(tmp_path: Path, cloud: DemoCloud) -> None:
    influxdb = InfluxDB1(tmp_path / "influxdb")
    victoria = VictoriaMetrics(tmp_path / "victoria")
    servers: list[Server] = [influxdb, victoria]
    proxies = [RecordingProxy(cloud.base_url), RecordingProxy(cloud.base_url)]
    v1 = Exporter(
        tmp_path / "v1",
        proxies[0].url,
        ["--influx-url", influxdb.url, "--influx-database", "enphase"],
        {},
    )
    v2 = Exporter(
        tmp_path / "v2",
        proxies[1].url,
        ["--influx-url", victoria.url, "--influx-org", "home", "--influx-bucket", "energy"],
        {"ENPHASE_INFLUX_TOKEN": "demo-token"},
    )
    exporters = [v1, v2]
    for directory in (v1.directory, v2.directory):
        directory.mkdir()
    try:
        for server in servers:
            server.start()
        influxdb.query("CREATE DATABASE enphase")
        for exporter in exporters:
            exporter.start()
        for exporter in exporters:  # running normally: points flow
            wait_until(lambda e=exporter: e.metric("enphase_influxdb_points_written_total") > 0, 60, "writes")

        for server in servers:
            server.stop()
        outage_started = time.monotonic()
        for exporter in exporters:  # polling goes on; points wait in the queue
            wait_until(
                lambda e=exporter: e.metric("enphase_influxdb_queue_points") > 0,
                2 * EV_STATUS_EVERY,
                "queueing",
            )
        time.sleep(max(0.0, outage_started + OUTAGE_SECONDS / 2 - time.monotonic()))
        for exporter in exporters:  # a restart in the middle of the outage, with points waiting
            waiting = exporter.metric("enphase_influxdb_queue_points")
            assert waiting > 0
            exporter.stop()
            exporter.start()
            assert exporter.metric("enphase_influxdb_queue_points") >= waiting  # kept on disk
        time.sleep(max(0.0, outage_started + OUTAGE_SECONDS - time.monotonic()))
        for server in servers:
            server.start()

        for exporter in exporters:  # the back-log drains after the outage
            wait_until(
                lambda e=exporter: (
                    e.metric("enphase_influxdb_queue_points") == 0
                    and e.metric("enphase_influxdb_last_success_timestamp_seconds") > 0
                ),
                90,
                "the queue to drain",
                every=1,
            )
        for exporter in exporters:
            assert exporter.metric("enphase_influxdb_points_dropped_total", reason="queue_full") == 0
            assert exporter.metric("enphase_influxdb_points_dropped_total", reason="rejected") == 0
            exporter.stop()  # nothing more is polled: the recordings are final

        expected_status = proxies[0].status_times_ns()
        assert len(expected_status) >= 4  # polling went on through the outage (fewer on a loaded machine)
        stored_status = influxdb.rows(
            f"SELECT charging FROM enphase_ev_charger WHERE serial = '{DEMO_CHARGER_SERIAL}'"
        )
        assert sorted(row["time"] for row in stored_status) == sorted(expected_status)
        stored_reports = influxdb.rows("SELECT state_of_charge_ratio FROM enphase_battery")
        assert sorted(row["time"] for row in stored_reports) == sorted(proxies[0].report_times_ns())

        expected_ms = {
            "enphase_ev_charger_charging": sorted(t // 10**6 for t in proxies[1].status_times_ns()),
            "enphase_battery_state_of_charge_ratio": sorted(t // 10**6 for t in proxies[1].report_times_ns()),
        }
        for name, expected in expected_ms.items():
            # VictoriaMetrics makes the newest samples searchable within seconds, not at once.
            with contextlib.suppress(AssertionError):
                wait_until(lambda n=name, x=expected: _timestamps(victoria, n) == x, 20, f"{name} in VM")
            assert _timestamps(victoria, name) == expected
    finally:
        for exporter in exporters:
            if exporter._process is not None and exporter._process.poll() is None:
                exporter._process.kill()
        for server in servers:
            server.stop()
        for proxy in proxies:
            proxy.close()


def _timestamps(victoria: VictoriaMetrics, name: str) -> list[int]:
    """Every stored sample's time (ms); a sample written twice at the same time would show twice here only
    if it were written at two different times, which is what duplication would look like."""
    return [t for series in victoria.export(f'{{__name__="{name}"}}') for t in series["timestamps"]]
