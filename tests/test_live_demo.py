"""The demo cloud's live stream: ``serve --demo`` streams with no setup, the demo broker checks credentials
as the real one does, streams end after their duration, and the live stream faults reach the exporter."""

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
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import requests
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry
from servers import stop_process, wait_until
from support import free_port

from exporter.auth import PastedHeaders
from exporter.client import CloudClient, RequestMetrics, Transport
from exporter.demo import DemoCloud
from exporter.demo.live import GATEWAY_SERIAL, STREAM_FAULTS_ENDPOINT
from exporter.live.mqtt import open_link
from exporter.live.state import LiveStore
from exporter.live.streams import LiveStreams
from exporter.snapshot import SnapshotStore
from exporter.sources import live_stream
from exporter.sources.live_stream import StreamCredentials

SITE = "1234567"
POWER = re.compile(r'^enphase_site_live_power_watts\{meter="(\w+)",site_id="1234567"\} (\S+)$', re.M)


@pytest.fixture
def demo_serve(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], float, Path]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        started = time.monotonic()
        command = [sys.executable, "-m", "exporter", "serve", "--demo", "--listen", f"127.0.0.1:{port}"]
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    yield f"http://127.0.0.1:{port}", process, started, log
    stop_process(process)


def live_power(url: str) -> dict[str, float]:
    try:
        text = requests.get(f"{url}/metrics", timeout=2).text
    except requests.ConnectionError:
        return {}
    return {meter: float(value) for meter, value in POWER.findall(text)}


def test_serve_demo_shows_live_power_within_10_s_and_it_changes_every_second(demo_serve) -> None:  # type: ignore[no-untyped-def]
    url, process, started, log = demo_serve
    wanted = {"pv", "grid", "storage", "load"}
    power = wait_until(lambda: (p := live_power(url)) and wanted <= set(p) and p, 10, "live power")
    assert time.monotonic() - started < 10
    readings = [power]
    for _ in range(4):
        time.sleep(1.05)
        readings.append(live_power(url))
    for reading in readings:
        assert reading["load"] == pytest.approx(reading["pv"] + reading["grid"] + reading["storage"], abs=1.0)
    grid = [reading["grid"] for reading in readings]
    assert all(a != b for a, b in itertools.pairwise(grid)), grid  # a new frame every second
    text = requests.get(f"{url}/metrics", timeout=2).text
    assert 'enphase_live_stream_up{site_id="1234567"} 1.0' in text
    assert 'enphase_site_relay_state{relay="grid",site_id="1234567",state="closed"} 1.0' in text
    assert 'enphase_site_live_phase_power_watts{meter="grid",phase="3",site_id="1234567"}' in text
    stop_process(process)
    assert "Traceback" not in log.read_text()


class Subscriber:
    """A plain paho client against the demo broker, to see what the broker accepts."""

    def __init__(self, endpoint: str, username: str | None, topic: str) -> None:
        self.frames: list[float] = []
        self.connack: Any = None
        self.granted: list[Any] = []
        self.done = threading.Event()
        host, port = endpoint.split(":")
        client = mqtt.Client(CallbackAPIVersion.VERSION2, transport="websockets", reconnect_on_failure=False)
        client.ws_set_options(path="/mqtt")
        if username is not None:
            client.username_pw_set(username, None)

        def connected(c: mqtt.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
            self.connack = reason
            if not reason.is_failure:
                c.subscribe(topic, 0)
            self.done.set()

        client.on_connect = connected
        client.on_subscribe = lambda c, u, mid, codes, p: self.granted.extend(codes)
        client.on_message = lambda c, u, m: self.frames.append(time.monotonic())
        client.connect(host, int(port), 30)
        client.loop_start()
        self.client = client

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def credentials(cloud: DemoCloud, token: str) -> StreamCredentials:
    answer = requests.get(
        cloud.base_url + live_stream.PATH,
        params=live_stream.query(GATEWAY_SERIAL),
        headers={"e-auth-token": token},
        timeout=5,
    )
    assert answer.status_code == 200
    return live_stream.parse(answer.json()).value


def test_the_demo_broker_checks_the_authorizer_site_and_topic() -> None:
    with DemoCloud() as cloud:
        token, _ = cloud.browser_session()
        refused = requests.get(
            cloud.base_url + live_stream.PATH,
            params={"serial_num": "EV0000000001"},
            headers={"e-auth-token": token},
            timeout=5,
        )
        assert refused.status_code == 400  # a charger serial: "Envoy not found"
        creds = credentials(cloud, token)
        good = live_stream.username(creds, SITE)
        cases = {
            "good": (good, creds.topic),
            "no_site": (good.replace(f"&site-id={SITE}", ""), creds.topic),
            "other_site": (good.replace(f"site-id={SITE}", "site-id=999"), creds.topic),
            "bad_signature": (good[: -len("x")] + "y", creds.topic),
            "no_username": (None, creds.topic),
            "other_topic": (good, "v1/live-stream/someone-else"),
        }
        subscribers = {name: Subscriber(cloud.broker.endpoint, u, t) for name, (u, t) in cases.items()}
        try:
            time.sleep(3.5)
            for name, subscriber in subscribers.items():
                assert subscriber.done.is_set(), name
                accepted = name in ("good", "other_topic")
                assert subscriber.connack.is_failure != accepted, name
            assert len(subscribers["good"].frames) >= 2
            assert subscribers["other_topic"].frames == []
            assert subscribers["other_topic"].granted and subscribers["other_topic"].granted[0].is_failure
        finally:
            for subscriber in subscribers.values():
                subscriber.close()


def test_a_demo_stream_ends_after_its_duration() -> None:
    with DemoCloud() as cloud:
        cloud.live_grants.duration = 3
        token, _ = cloud.browser_session()
        creds = credentials(cloud, token)
        assert creds.duration == 3
        subscriber = Subscriber(cloud.broker.endpoint, live_stream.username(creds, SITE), creds.topic)
        try:
            time.sleep(5.5)
            assert 1 <= len(subscriber.frames) <= 3
            assert subscriber.frames[-1] < time.monotonic() - 2  # silent since the stream ended
        finally:
            subscriber.close()


def run_session(cloud: DemoCloud, store: LiveStore) -> LiveStreams:
    token, cookie = cloud.browser_session()
    client = CloudClient(
        Transport(cloud.base_url, RequestMetrics(CollectorRegistry()), retries=0),
        PastedHeaders(token, cookie, cloud.base_url + "/"),
    )
    snapshot = SnapshotStore()
    streams = LiveStreams(
        client,
        store,
        snapshot,
        lambda creds, site, events: open_link(creds, site, events, plain_loopback=True),
        mode="on",
        polls_today=True,
        on_bad_frame=lambda: None,
        on_problems=lambda count: None,
    )
    from exporter.poller import Poller, Telemetry

    Poller(client, snapshot, Telemetry(CollectorRegistry()), sources=("today",)).poll(SITE, "today")
    streams.start((SITE,))
    return streams


def frames(store: LiveStore) -> int:
    site = store.get(SITE)
    return site.frames if site else 0


@pytest.mark.parametrize("fault", ["dropped", "silence"])
def test_the_exporter_recovers_from_a_dropped_or_silent_demo_stream(fault: str) -> None:
    with DemoCloud() as cloud:
        cloud.live_grants.timeout = 3
        cloud.faults.inject(fault, endpoint=STREAM_FAULTS_ENDPOINT)
        store = LiveStore()
        streams = run_session(cloud, store)
        try:
            wait_until(lambda: frames(store) >= 4, 15, "the first frames")
            # After the fourth frame the fault strikes; a new stream is asked for and frames flow again.
            wait_until(lambda: len(cloud.journal.events("request", "live_stream")) == 2, 20, "a new session")
            seen = frames(store)
            wait_until(lambda: frames(store) > seen + 2, 15, "frames of the new stream")
            assert store.get(SITE).sessions["ok"] == 2  # type: ignore[union-attr]
        finally:
            streams.stop()


def test_a_garbled_frame_is_counted_and_the_stream_goes_on() -> None:
    with DemoCloud() as cloud:
        cloud.faults.inject("garbled_frame", endpoint=STREAM_FAULTS_ENDPOINT)
        store = LiveStore()
        streams = run_session(cloud, store)
        try:
            wait_until(lambda: frames(store) >= 7, 20, "frames after the garbled one")
            site = store.get(SITE)
            assert site is not None and site.bad_frames == 1
            assert len(cloud.journal.events("request", "live_stream")) == 1  # no reconnection for it
        finally:
            streams.stop()


def test_refused_credentials_are_not_asked_again_soon() -> None:
    with DemoCloud() as cloud:
        cloud.faults.inject("refused", endpoint="live_stream", count=None)
        store = LiveStore()
        streams = run_session(cloud, store)
        try:
            wait_until(lambda: (s := store.get(SITE)) and s.sessions["refused"] == 1, 15, "the refusal")
            time.sleep(3)
            assert len(cloud.journal.events("request", "live_stream")) == 1
            assert frames(store) == 0
        finally:
            streams.stop()


def test_demo_frames_agree_with_the_simulated_site() -> None:
    from datetime import datetime

    from exporter.demo import simulation as sim
    from exporter.demo.live import frame_bytes, site_power_mw
    from exporter.live.frame import decode

    # A June day: a sunny midday, and an evening with the car charging.
    day = datetime(2026, 6, 1, tzinfo=sim.TZ)
    noon = datetime(2026, 6, 1, 13, 0, tzinfo=sim.TZ).timestamp()
    simulated = sim.simulate_day(day.date())
    index = int((noon - simulated.start_time) // sim.INTERVAL_SECONDS)
    interval = simulated.intervals[index]
    start = simulated.start_time + index * sim.INTERVAL_SECONDS
    samples = [site_power_mw(start + second) for second in range(sim.INTERVAL_SECONDS)]
    mean_pv_w = sum(s["pv"] for s in samples) / len(samples) / 1000
    produced_w = (interval.solar_home + interval.solar_battery + interval.solar_grid) * 4  # Wh in 15 min -> W
    assert produced_w > 100 and mean_pv_w == pytest.approx(produced_w, rel=0.01)
    assert all(s["load"] == s["pv"] + s["grid"] + s["storage"] for s in samples)
    assert len({s["grid"] for s in samples[:10]}) == 10  # a different frame every second
    # An interval the car charged through: the frames carry the interval's mean power, the car inside load.
    full = next(i for i, item in enumerate(simulated.intervals) if item.evse * 4 >= 0.99 * sim.EV_POWER_W)
    charging = simulated.start_time + (full + 0.5) * sim.INTERVAL_SECONDS
    frame = decode(frame_bytes(charging))
    assert sim.charger_state(charging).charging
    assert frame.meters["load"].watts >= 0.99 * sim.EV_POWER_W
    assert frame.state_of_charge_ratio == pytest.approx(round(sim.battery_soc(charging)) / 100)
    assert frame.battery_mode == "self_consumption" and frame.grid_relay == "closed"
