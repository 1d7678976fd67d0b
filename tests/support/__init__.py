"""Helpers that many test modules share: a free port on 127.0.0.1 and a clock that a test moves by hand.

Servers the tests start for real (Prometheus, InfluxDB, VictoriaMetrics, Mosquitto) are in ``servers.py``,
``stack.py`` and ``mosquitto.py`` beside the tests; scripted clouds in ``fixture_cloud.py``,
``strange_cloud.py`` and ``live_cloud.py``.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FakeClock:
    """Unix time that moves only when a test says so: pass it where the code takes ``clock=``."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
