"""``enphase-exporter serve`` streaming live power through a real Mosquitto broker over ``wss://`` (TLS
verified against a test CA given in ``SSL_CERT_FILE``), from a scripted cloud it has never met
(tests/live_cloud.py), scraped over HTTP as Prometheus would.

Streams last 10 s here (the cloud's ``live_stream_duration``) and go silent after 3 s (``timeout``): the
exporter must renew without a gap over 5 s, recover from a dropped connection and from silence within 30 s,
stop asking after a refusal, and never print the token. tests/test_live_session.py shows the same rules over
a simulated hour (four requests an hour at 900 s).
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from live_cloud import E_AUTH_TOKEN, SITE_ID, LiveCloud
from mosquitto import Mosquitto
from servers import stop_process, wait_until
from support import free_port

from exporter.live.mqtt import MqttLink, split_endpoint

DURATION, TIMEOUT = 10, 3


class Watcher:
    """Scrapes /metrics four times a second and keeps when the frame counter moved."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.moves: list[float] = []  # time.monotonic() of each scrape that saw new frames
        self.text = ""
        self._frames = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def value(self, name: str, labels: str) -> float | None:
        match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", self.text, re.M)
        return float(match[1]) if match else None

    def frames_since(self, moment: float) -> bool:
        return any(at > moment for at in self.moves)

    def max_gap(self, start: float, end: float) -> float:
        moves = [start, *(at for at in self.moves if start <= at <= end), end]
        return max(b - a for a, b in itertools.pairwise(moves))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self.text = requests.get(f"{self.url}/metrics", timeout=2).text
            except requests.RequestException:
                continue
            frames = self.value("enphase_live_stream_frames_total", f'site_id="{SITE_ID}"') or 0.0
            if frames > self._frames:
                self._frames = frames
                self.moves.append(time.monotonic())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Mosquitto, LiveCloud, Watcher, subprocess.Popen[bytes], Path]]:
    broker = Mosquitto(tmp_path)
    broker.start()
    cloud = LiveCloud(broker.tcp_port, broker.wss_port, duration=DURATION, timeout=TIMEOUT)
    cloud.start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    env.update(
        ENPHASE_BASE_URL=cloud.base_url,
        ENPHASE_E_AUTH_TOKEN=E_AUTH_TOKEN,
        ENPHASE_COOKIE="_enlighten_4_session=abc",
        ENPHASE_SITE_ID=SITE_ID,
        ENPHASE_SOURCES="today",
        ENPHASE_LIVE_STREAM="on",
        ENPHASE_LOG_LEVEL="debug",
        ENPHASE_LISTEN=f"127.0.0.1:{port}",
        SSL_CERT_FILE=str(broker.ca),
    )
    log = tmp_path / "exporter.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve"], env=env, stdout=out, stderr=out
        )
    watcher = Watcher(f"http://127.0.0.1:{port}")
    try:
        yield broker, cloud, watcher, process, log
    finally:
        watcher.stop()
        stop_process(process)
        cloud.stop()
        broker.stop()


def test_renewal_drop_silence_and_refusal_through_a_real_broker(stack) -> None:  # type: ignore[no-untyped-def]
    broker, cloud, watcher, process, log = stack
    wait_until(lambda: watcher.moves, 20, "the first live frames")
    started = watcher.moves[0]

    # Renewal: 25 s is two and a half streams; each renewal comes before its stream ends, without a gap.
    time.sleep(25)
    asked = [at for at in cloud.credential_requests if at <= time.monotonic()]
    assert 3 <= len(asked) <= 4, asked  # at 0 s, 9 s, 18 s: a tenth of the duration before each end
    assert watcher.max_gap(started, time.monotonic()) < 5
    labels = f'site_id="{SITE_ID}"'
    assert watcher.value("enphase_live_stream_up", labels) == 1.0
    assert watcher.value("enphase_site_live_power_watts", f'meter="storage",{labels}') == -800.0
    load = watcher.value("enphase_site_live_power_watts", f'meter="load",{labels}')
    pv = watcher.value("enphase_site_live_power_watts", f'meter="pv",{labels}')
    assert load is not None and pv is not None and load == pytest.approx(pv - 500 - 800)
    assert watcher.value("enphase_site_live_energy_joules_total", f'flow="grid_export",{labels}')

    # The broker drops every connection: frames again within 30 s.
    dropped = time.monotonic()
    broker.restart()
    wait_until(
        lambda: watcher.frames_since(dropped + 1), 30, "frames after the broker dropped the connection"
    )

    # The stream goes silent: the exporter notices after `timeout` s and asks for a new one.
    before = len(cloud.credential_requests)
    silent = time.monotonic()
    cloud.silence()
    wait_until(lambda: len(cloud.credential_requests) > before, 30, "new credentials after silence")
    wait_until(lambda: watcher.frames_since(silent + TIMEOUT), 30, "frames after the silence")

    # The cloud refuses: one refused session, then no more requests (the pause is 15 minutes).
    cloud.refuse = True
    broker.restart()
    wait_until(
        lambda: watcher.value("enphase_live_stream_sessions_total", f'outcome="refused",{labels}') == 1.0,
        30,
        "the refusal to show",
    )
    refused_at = len(cloud.credential_requests)
    time.sleep(8)
    assert len(cloud.credential_requests) == refused_at
    assert watcher.value("enphase_live_stream_up", labels) == 0.0
    assert watcher.value("enphase_api_requests_total", 'code="403",endpoint="live_stream"') == 1.0

    stop_process(process)
    text = log.read_text()
    assert "streaming" in text and "refused" in text  # it did log at debug level
    for secret in (cloud.token, cloud.digest, quote(cloud.digest, safe=""), "enph_token="):
        assert secret not in text
    assert "Traceback" not in text


def test_plain_websocket_is_only_for_the_loopback_interface() -> None:
    assert split_endpoint("abc-ats.iot.us-east-1.amazonaws.com") == (
        "abc-ats.iot.us-east-1.amazonaws.com",
        443,
    )
    assert split_endpoint("127.0.0.1:8883") == ("127.0.0.1", 8883)
    assert split_endpoint("[::1]:9001") == ("::1", 9001)
    from exporter.sources.live_stream import StreamCredentials

    remote = StreamCredentials("broker.example.com:80", "a", "k", "t", "d", "topic", 900.0, 15.0)
    with pytest.raises(ValueError, match="loopback"):
        MqttLink(remote, "1", None, plain_loopback=True)  # type: ignore[arg-type]
