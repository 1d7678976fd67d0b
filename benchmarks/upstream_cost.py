"""What polling costs the cloud, and how old the data gets: the real schedule against a plain poller.

    python3 benchmarks/upstream_cost.py [--hours 6]

Both run the real exporter against the demo cloud on 127.0.0.1, time-lapsed (``harness/timelapse.py``:
the jobs ``PollScheduler`` plans, with their jitter, the charging interval and the budget, run on a fake
clock). They cover the same hours of a June afternoon and evening, when the demo's car charges. The exporter
runs at its defaults, live stream included: its session (``exporter.live.session``) asks the demo cloud for
credentials through the real client on the same fake clock, renewing before each stream's
``live_stream_duration`` (900 s) runs out; the time-lapse has no broker, so a stand-in connection hands the
session the demo's own frames, one every ``LIVE_STEP`` seconds. The reference is a plain poller that fetches
every endpoint at the EV status interval (60 s), as a naive exporter would, without live power (and
without the request budget, which it would exceed).
Requests are what the cloud saw, logins included.

The worst age of a source is the longest time between two successful polls (from the first success on). EV
status is split three ways: gaps that began while the exporter knew the car was charging (it polls every
30 s then), gaps while the car was idle, and gaps in which charging began unseen (the exporter can only
learn of it at its next idle-rate poll).

Goals: at most 100 requests per hour per site; EV status never older than 60 s, or 30 s while charging.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from harness.timelapse import Timelapse  # benchmarks/harness/, beside this file
from tables import machine, markdown

from exporter.cli import ONCE_ORDER
from exporter.demo import simulation as sim
from exporter.demo.journal import Event
from exporter.demo.live import frame_bytes
from exporter.live.session import LinkEvents, LiveSession
from exporter.live.streams import gateway_from_snapshot
from exporter.sources import REGISTRY
from exporter.sources.live_stream import StreamCredentials

START = datetime(2026, 6, 1, 16, 0, tzinfo=sim.TZ).timestamp()
REQUESTS_PER_HOUR_GOAL = 100
EV_STATUS_AGE_GOAL = 60.0
EV_STATUS_CHARGING_AGE_GOAL = 30.0
PLAIN_INTERVAL = 60.0  # the plain poller's one interval: the EV status default
LIVE_STEP = 5.0  # seconds of simulated time between the live session's steps (and stand-in frames)


class _StandInLink:
    """The live stream's MQTT connection, stood in for: the time-lapse has no broker."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class _StandInBroker:
    def __init__(self) -> None:
        self.links: list[_StandInLink] = []

    def connect(self, credentials: StreamCredentials, site_id: str, events: LinkEvents) -> _StandInLink:
        self.links.append(_StandInLink())
        return self.links[-1]

    def open_links(self) -> list[_StandInLink]:
        self.links = [link for link in self.links if not link.closed]
        return self.links


@dataclass
class Run:
    hours: float
    requests: Counter[str] = field(default_factory=Counter)  # by endpoint, as the cloud saw them
    worst_age: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    charging_seconds: float = 0.0  # simulated time the demo's car charged

    @property
    def requests_per_hour(self) -> float:
        return sum(self.requests.values()) / self.hours


def run(plain: bool, hours: float, state: Path) -> Run:
    result = Run(hours)
    last_success: dict[str, float] = {}
    knew_charging = False

    def saw(event: Event) -> None:
        if event.kind == "request":
            result.requests[event.endpoint] += 1

    # The plain poller is not held to the request budget: it shows what polling every endpoint costs.
    environ = {"ENPHASE_REQUEST_BUDGET": "1000000"} if plain else {}
    with Timelapse(START, state, environ) as lapse:
        lapse.cloud.journal.subscribe(saw)
        poll = lapse.exporter.poller.poll  # wrapped to see each scheduled poll at its fake time

        def watched(site_id: str, source: str) -> bool:
            nonlocal knew_charging
            succeeded = poll(site_id, source)
            now = lapse.clock()
            if not succeeded:
                return succeeded
            if source in last_success:
                kind = source
                if source == "ev_status":
                    kind = _ev_status_kind(knew_charging, sim.charger_state(now).charging)
                result.worst_age[kind] = max(result.worst_age[kind], now - last_success[source])
            last_success[source] = now
            if source == "ev_status":
                site = lapse.exporter.store.current.sites[site_id]
                knew_charging = bool(site.ev_status and site.ev_status.any_charging)
            return succeeded

        lapse.exporter.poller.poll = watched  # type: ignore[method-assign]
        if plain:
            # The schedule's jobs stay paused: every source of the site, in turn, every PLAIN_INTERVAL.
            for tick in range(int(hours * 3600 / PLAIN_INTERVAL)):
                lapse.clock.advance_to(START + tick * PLAIN_INTERVAL)
                for source in ONCE_ORDER:
                    lapse.poll(source)
            lapse.clock.advance_to(START + hours * 3600)
        else:
            broker = _StandInBroker()
            site_id = lapse.settings.site_ids[0]
            session = LiveSession(
                site_id,
                lapse.exporter.client,
                lapse.exporter.live,  # type: ignore[arg-type]
                broker.connect,
                gateway_from_snapshot(lapse.exporter.store, site_id, polls_today=True),
                mode=lapse.settings.live_stream,
                clock=lapse.clock,
            )
            moment = lapse.clock()
            while moment < START + hours * 3600:
                moment = min(moment + LIVE_STEP, START + hours * 3600)
                lapse.run_until(moment)
                for link in broker.open_links():
                    session.message(link, frame_bytes(moment))
                session.step(moment)
        end = lapse.clock()
        for source, when in last_success.items():  # the data still on show at the end ages too
            kind = source if source != "ev_status" else _ev_status_kind(knew_charging, False)
            result.worst_age[kind] = max(result.worst_age[kind], end - when)
    step = 10.0
    result.charging_seconds = step * sum(
        sim.charger_state(START + n * step).charging for n in range(int(hours * 3600 / step))
    )
    return result


def _ev_status_kind(knew_charging: bool, charging_now: bool) -> str:
    if knew_charging:
        return "ev_status while charging"
    return "ev_status, charging began unseen" if charging_now else "ev_status while idle"


AGE_ROWS = (
    "ev_status while charging",
    "ev_status while idle",
    "ev_status, charging began unseen",
    *(source.name for source in REGISTRY if source.name != "ev_status"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=6.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="enphase-upstream-") as state:
        exporter = run(False, args.hours, Path(state) / "exporter")
        plain = run(True, args.hours, Path(state) / "plain")

    def age(result: Run, kind: str) -> str:
        return f"{result.worst_age[kind]:.0f}" if kind in result.worst_age else "—"

    print(
        f"{args.hours:g} simulated hours from {datetime.fromtimestamp(START, sim.TZ):%Y-%m-%d %H:%M} "
        f"(the car charged {exporter.charging_seconds / 60:.0f} min of them), one site; {machine()}\n"
    )
    rows: list[list[object]] = [
        [
            "requests per hour per site",
            f"{exporter.requests_per_hour:.1f}",
            f"{plain.requests_per_hour:.1f}",
            f"{exporter.requests_per_hour / plain.requests_per_hour:.2f}",
        ]
    ]
    rows += [
        [f"{endpoint} requests", exporter.requests[endpoint], plain.requests[endpoint], ""]
        for endpoint in sorted(exporter.requests.keys() | plain.requests.keys())
    ]
    rows += [[f"worst age, {kind} (s)", age(exporter, kind), age(plain, kind), ""] for kind in AGE_ROWS]
    print(markdown(("figure", "exporter (defaults)", "plain poller (all at 60 s)", "ratio"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
