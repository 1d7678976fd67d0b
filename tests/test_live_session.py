"""The live stream session's life cycle on a fake clock: renewal before the stream ends, reconnection after a
drop or silence, refusals, sites without a gateway. The MQTT connection is a fake; tests/test_live_mqtt.py
runs the same session against a real broker."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from protowire import bytes_field, channel, data_msg
from support import FakeClock

from exporter.client import RateLimited, UpstreamError, UpstreamUnavailable
from exporter.live.session import AUTO_NOT_OFFERED_PAUSE, GATEWAY_WAIT, REFUSED_PAUSE, LiveSession
from exporter.live.state import LiveStore
from exporter.sources.devices import ENDPOINT as DEVICES_ENDPOINT
from exporter.sources.live_stream import ENDPOINT, SHOW_ENDPOINT, StreamCredentials

FRAME = data_msg(bytes_field(1, channel(1_500_000)) + bytes_field(3, channel(-300_000)))
TOKEN = "secret-token-9c41"


@dataclass
class FakeCloud:
    """Answers get_json like CloudClient; each answer is a payload, or an exception to raise."""

    answers: dict[str, Callable[[], Any]]
    calls: list[tuple[str, float]] = field(default_factory=list)
    clock: FakeClock | None = None

    def get_json(self, endpoint: str, path: str, params: Any = None) -> Any:
        self.calls.append((endpoint, self.clock.now if self.clock else 0.0))
        answer = self.answers[endpoint]()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def count(self, endpoint: str) -> int:
        return sum(1 for name, _ in self.calls if name == endpoint)


def credentials(duration: float = 900, timeout: float = 15) -> dict[str, Any]:
    return {
        "aws_iot_endpoint": "broker.invalid",
        "aws_authorizer": "authoriser",
        "aws_token_key": "enph_token",
        "aws_token_value": TOKEN,
        "aws_digest": "ZGlnZXN0",
        "live_stream_topic": "v1/live-stream/1",
        "live_stream_duration": duration,
        "timeout": timeout,
    }


class FakeLink:
    def __init__(self, opened_at: float) -> None:
        self.opened_at = opened_at
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Harness:
    def __init__(self, cloud: FakeCloud, *, mode: str = "on", gateway: Any = "122100001234") -> None:
        self.clock = FakeClock()
        cloud.clock = self.clock
        self.cloud = cloud
        self.store = LiveStore()
        self.links: list[FakeLink] = []
        self.session = LiveSession(
            "1",
            cloud,  # type: ignore[arg-type]
            self.store,
            self.connect,
            lambda: gateway,
            mode=mode,
            clock=self.clock,
            jitter=lambda low, high: high,
        )
        self.arrivals: list[float] = []

    def connect(self, creds: StreamCredentials, site_id: str, events: Any) -> FakeLink:
        assert site_id == "1" and creds.token_value == TOKEN
        link = FakeLink(self.clock.now)
        self.links.append(link)
        return link

    def run(self, seconds: int, *, frames: bool = True, streaming_links: int | None = None) -> None:
        """``seconds`` of 1 Hz frames on every open link (as the broker would send them), stepping the
        session each second."""
        for _ in range(seconds):
            self.clock.now += 1
            if frames:
                for link in [link for link in self.links if not link.closed][:streaming_links]:
                    before = self.store.get("1").frames  # type: ignore[union-attr]
                    self.session.message(link, FRAME)
                    if self.store.get("1").frames > before:  # type: ignore[union-attr]
                        self.arrivals.append(self.clock.now)
            self.session.step(self.clock.now)

    def max_gap(self) -> float:
        return max(b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False))


def test_renews_before_the_duration_four_times_an_hour_without_a_gap() -> None:
    harness = Harness(FakeCloud({ENDPOINT: credentials}))
    harness.session.step(harness.clock.now)
    harness.run(3600)
    requests = harness.cloud.count(ENDPOINT)
    assert 4 <= requests <= 5  # 3600 / 840 s: one at the start, then one 60 s before each stream ends
    assert harness.max_gap() <= 1.0
    opened = [link.opened_at - harness.links[0].opened_at for link in harness.links]
    assert all(0 < later - earlier <= 900 for earlier, later in itertools.pairwise(opened))
    assert sum(1 for link in harness.links if not link.closed) == 1  # each renewal retired the old link
    site = harness.store.get("1")
    assert site is not None and site.frames == len(harness.arrivals)  # overlap frames not counted twice


def test_the_duration_comes_from_the_answer() -> None:
    harness = Harness(FakeCloud({ENDPOINT: lambda: credentials(duration=120)}))
    harness.session.step(harness.clock.now)
    harness.run(600)
    assert harness.cloud.count(ENDPOINT) == 6  # at 0, 108, 216, 324, 432, 540 s: 120 s less a tenth


def test_a_dropped_connection_reconnects_with_fresh_credentials_at_once() -> None:
    harness = Harness(FakeCloud({ENDPOINT: credentials}))
    harness.session.step(harness.clock.now)
    harness.run(30)
    harness.session.lost(harness.links[0], "connection lost")
    harness.run(5)
    assert harness.cloud.count(ENDPOINT) == 2
    assert harness.links[0].closed and not harness.links[1].closed
    assert harness.max_gap() <= 2.0


def test_silence_reconnects_after_the_timeout() -> None:
    harness = Harness(FakeCloud({ENDPOINT: lambda: credentials(timeout=15)}))
    harness.session.step(harness.clock.now)
    harness.run(10)
    harness.run(16, frames=False)
    assert harness.cloud.count(ENDPOINT) == 2
    assert harness.store.get("1").streaming  # type: ignore[union-attr]
    harness.run(5)
    assert harness.arrivals[-1] == harness.clock.now


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_a_refusal_pauses_long_and_logs_once(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    answers: dict[str, Callable[[], Any]] = {
        ENDPOINT: lambda: UpstreamError(ENDPOINT, 403),
        SHOW_ENDPOINT: lambda: {"live_status": False, "live_vitals": False},
    }
    harness = Harness(FakeCloud(answers), mode=mode)
    caplog.set_level(logging.DEBUG)
    harness.session.step(harness.clock.now)
    harness.run(6 * 3600, frames=False)
    asked = [at - harness.cloud.calls[0][1] for name, at in harness.cloud.calls if name == ENDPOINT]
    assert harness.cloud.count(SHOW_ENDPOINT) == (1 if mode == "auto" else 0)
    if mode == "on":
        assert asked == [0.0, REFUSED_PAUSE, REFUSED_PAUSE * 5, REFUSED_PAUSE * 21]  # +15 min, +1 h, +4 h
    else:
        assert asked == [0.0]  # auto: the stream is not offered here; asked again in a day
        assert AUTO_NOT_OFFERED_PAUSE >= 86400
    site = harness.store.get("1")
    assert site is not None and site.sessions["refused"] == len(asked) and site.sessions["ok"] == 0
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "refused" in warnings[0].getMessage()
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_429_waits_at_least_its_retry_after() -> None:
    refusal = RateLimited(ENDPOINT, 7200.0, 0.0)
    harness = Harness(FakeCloud({ENDPOINT: lambda: refusal}), mode="auto")
    harness.session.step(harness.clock.now)
    harness.run(2 * 3600 + 60, frames=False)
    asked = [at - harness.cloud.calls[0][1] for _, at in harness.cloud.calls]
    assert asked == [0.0, 7200.0]


def test_failures_back_off_with_growing_pauses() -> None:
    harness = Harness(FakeCloud({ENDPOINT: lambda: UpstreamUnavailable(f"{ENDPOINT}: HTTP 503")}))
    harness.session.step(harness.clock.now)
    harness.run(3600, frames=False)
    asked = [at - harness.cloud.calls[0][1] for _, at in harness.cloud.calls]
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    assert gaps[:4] == [15.0, 30.0, 60.0, 120.0] and max(gaps) <= 900.0
    assert harness.store.get("1").sessions["failed"] == len(asked)  # type: ignore[union-attr]


def test_a_site_without_a_gateway_asks_devices_once_and_never_for_credentials() -> None:
    cloud = FakeCloud({DEVICES_ENDPOINT: lambda: {"result": [{"type": "meter", "devices": []}]}})
    harness = Harness(cloud, mode="auto", gateway=False)
    harness.session.step(harness.clock.now)
    harness.run(6 * 3600, frames=False)
    assert cloud.calls == [(DEVICES_ENDPOINT, cloud.calls[0][1])]


def test_the_gateway_from_devices_when_today_names_none() -> None:
    cloud = FakeCloud(
        {
            DEVICES_ENDPOINT: lambda: {"result": [{"type": "envoy", "devices": [{"serial_number": "E1"}]}]},
            ENDPOINT: credentials,
        }
    )
    harness = Harness(cloud, gateway=False)
    harness.session.step(harness.clock.now)
    harness.run(60)
    assert cloud.count(DEVICES_ENDPOINT) == 1 and cloud.count(ENDPOINT) == 1
    assert len(harness.arrivals) >= 59


def test_waits_for_today_then_asks_devices_once() -> None:
    cloud = FakeCloud(
        {
            DEVICES_ENDPOINT: lambda: {"result": [{"type": "envoy", "devices": [{"serial_number": "E1"}]}]},
            ENDPOINT: credentials,
        }
    )
    harness = Harness(cloud, gateway=None)  # today has not answered
    start = harness.clock.now
    harness.session.step(start)
    harness.run(int(GATEWAY_WAIT) - 1, frames=False)
    assert cloud.calls == []  # nothing asked while today may still name the gateway
    harness.run(30)
    assert [name for name, _ in cloud.calls] == [DEVICES_ENDPOINT, ENDPOINT]
    assert cloud.calls[0][1] - start <= GATEWAY_WAIT + 1


def test_a_stream_that_never_sends_is_asked_for_less_and_less_often() -> None:
    """A gateway offline: credentials work, the broker connects, and no frame ever comes."""
    harness = Harness(FakeCloud({ENDPOINT: credentials}))
    harness.session.step(harness.clock.now)
    harness.run(3600, frames=False)
    asked = [at - harness.cloud.calls[0][1] for _, at in harness.cloud.calls]
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    assert len(asked) <= 12 and gaps[-1] >= 900  # not one every `timeout` (240 an hour)
    assert all(b >= a for a, b in itertools.pairwise(gaps))
    harness.run(1000)  # the gateway comes back: the next stream sends, and pauses start short again
    assert harness.store.get("1").frames > 0  # type: ignore[union-attr]


def test_auto_meets_a_refusal_like_on_where_the_app_shows_live_status() -> None:
    answers: dict[str, Callable[[], Any]] = {
        ENDPOINT: lambda: UpstreamError(ENDPOINT, 403),
        SHOW_ENDPOINT: lambda: {"live_status": True, "live_vitals": True},
    }
    harness = Harness(FakeCloud(answers), mode="auto")
    harness.session.step(harness.clock.now)
    harness.run(2 * 3600, frames=False)
    asked = [at - harness.cloud.calls[0][1] for name, at in harness.cloud.calls if name == ENDPOINT]
    assert asked == [0.0, REFUSED_PAUSE, REFUSED_PAUSE * 5]  # the growing pause, not a day
    assert harness.cloud.count(SHOW_ENDPOINT) == 1  # asked once, not at every refusal
