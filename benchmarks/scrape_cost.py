"""What one scrape of /metrics costs, against prometheus_client's own registry holding the same series.

    python3 benchmarks/scrape_cost.py [--sites 1,100,1000] [--repeats 21]

The exporter answers /metrics with ``exposition.render`` over a registry whose ``SnapshotCollector`` builds
fresh metric families from the snapshot on every scrape. The reference holds exactly the same series (names,
HELP, labels and values) as plain ``Gauge`` and ``Counter`` objects, which prometheus_client keeps ready
between scrapes, written by prometheus_client's ``generate_latest``: the cheapest way that library can write
this exposition. Both formats are timed: the text format (curl, Prometheus 2) and OpenMetrics (what
Prometheus 3 asks for first). Every site has two chargers and all four sources; the payloads are the demo
cloud's, parsed by the real parsers, on a charging evening. Time is the median of ``--repeats`` renders;
memory is the peak that tracemalloc sees during one render in the text format.

Goals: within 1.3 times the reference, and under 50 ms for 100 sites.
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, generate_latest
from prometheus_client.exposition import choose_encoder
from tables import machine, markdown, median_seconds

from exporter import exposition
from exporter.auth import AuthState
from exporter.demo import payloads
from exporter.demo import simulation as sim
from exporter.render_prometheus import SnapshotCollector
from exporter.snapshot import SiteSnapshot, SnapshotStore, SourceHealth
from exporter.sources import ev_status, ev_summary, today
from exporter.sources.energy_day import CHANNELS
from exporter.sources.ev_status import ChargerStatus, EvStatus
from exporter.sources.ev_summary import ChargerSummary, EvSummary
from exporter.sources.today import Today

# A June evening in the demo's simulation: a charger is charging, the battery and solar report.
MOMENT = datetime(2026, 6, 1, 19, 30, tzinfo=sim.TZ).timestamp()
RATIO_GOAL = 1.3
MS_GOAL_AT_100 = 50.0
SOURCES = ("ev_status", "ev_summary", "today", "daily_energy")
TEXT = ""  # what curl and Prometheus 2 get: the text format 0.0.4
OPENMETRICS = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"  # what Prometheus 3 asks for
Charger = TypeVar("Charger", ChargerStatus, ChargerSummary)


@dataclass(frozen=True, slots=True)
class Parsed:
    """The demo's payloads at ``MOMENT``, parsed once by the real parsers."""

    status: EvStatus
    summary: EvSummary
    today: Today

    @classmethod
    def at(cls, now: float) -> Parsed:
        return cls(
            ev_status.parse(payloads.ev_status(now)).value,
            ev_summary.parse(payloads.ev_summary(now)).value,
            today.parse(payloads.today(now), now).value,
        )


def site_snapshot(site_id: str, parsed: Parsed, now: float) -> SiteSnapshot:
    """One site as the poller would leave it, with two chargers (the demo has one; the second is a copy)."""
    up = SourceHealth(True, now, now)
    return SiteSnapshot(
        site_id=site_id,
        sources=SOURCES,
        health=dict.fromkeys(SOURCES, up),
        ev_status=replace(parsed.status, chargers=_two(site_id, parsed.status.chargers)),
        ev_summary=replace(parsed.summary, chargers=_two(site_id, parsed.summary.chargers)),
        today=parsed.today,
        lifetime_joules=dict.fromkeys(CHANNELS.values(), 3.6e9),
    )


def _two(site_id: str, chargers: tuple[Charger, ...]) -> tuple[Charger, ...]:
    return tuple(replace(c, serial=f"{site_id}-{n}-{c.serial}") for c in chargers for n in (1, 2))


def exporter_registry(sites: int) -> CollectorRegistry:
    store = SnapshotStore()
    parsed = Parsed.at(MOMENT)
    for index in range(sites):
        site = site_snapshot(str(1_000_000 + index), parsed, MOMENT)
        store.update_site(site.site_id, lambda _, site=site: site)
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(store, AuthState(ok=True, session_expires_at=MOMENT + 3600)))
    return registry


def reference_registry(exporter: CollectorRegistry) -> CollectorRegistry:
    """The same series as long-lived Gauge and Counter objects, set once."""
    registry = CollectorRegistry()
    for family in exporter.collect():
        labels = list(family.samples[0].labels) if family.samples else []
        kind: Callable[..., Gauge | Counter] = Counter if family.type == "counter" else Gauge
        metric = kind(family.name, family.documentation, labels, registry=registry)
        for sample in family.samples:
            child = metric.labels(**sample.labels) if labels else metric
            if isinstance(child, Counter):
                child.inc(sample.value)
            else:
                child.set(sample.value)
    return registry


def peak_bytes(render: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        render()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(sites: int, repeats: int) -> list[object]:
    exporter = exporter_registry(sites)
    reference = reference_registry(exporter)

    def ours() -> bytes:
        return exposition.render(exporter, TEXT)[0]

    def theirs() -> bytes:
        return generate_latest(reference)

    def ours_om() -> bytes:
        return exposition.render(exporter, OPENMETRICS)[0]

    def theirs_om() -> bytes:
        return choose_encoder(OPENMETRICS)[0](reference)  # the same escaping as ours

    # The benchmark is only fair if both write the same exposition (sample order may differ).
    assert sorted(ours().splitlines()) == sorted(theirs().splitlines()), "the two registries differ"
    assert sorted(ours_om().splitlines()) == sorted(theirs_om().splitlines()), "the two registries differ"
    series = sum(1 for line in ours().splitlines() if not line.startswith(b"#"))
    seconds, ref_seconds = median_seconds(ours, theirs, repeats=repeats)
    om_seconds, om_ref_seconds = median_seconds(ours_om, theirs_om, repeats=repeats)
    peak, ref_peak = peak_bytes(ours), peak_bytes(theirs)
    return [
        sites,
        series,
        f"{seconds * 1000:.2f}",
        f"{ref_seconds * 1000:.2f}",
        f"{seconds / ref_seconds:.2f}",
        f"{om_seconds * 1000:.2f}",
        f"{om_ref_seconds * 1000:.2f}",
        f"{om_seconds / om_ref_seconds:.2f}",
        f"{peak / 1024:.0f}",
        f"{ref_peak / 1024:.0f}",
        f"{peak / ref_peak:.2f}",
    ]


HEADER = (
    "sites",
    "series",
    "exporter ms",
    "reference ms",
    "time ratio",
    "OpenMetrics: exporter ms",
    "reference ms",
    "time ratio",
    "exporter peak KiB",
    "reference peak KiB",
    "memory ratio",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", default="1,100,1000", help="comma-separated site counts")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args(argv)
    disable_created_metrics()  # the snapshot's counters carry no _created sample; neither may the reference
    rows = [measure(int(count), args.repeats) for count in args.sites.split(",")]
    print(f"/metrics render, two chargers per site, median of {args.repeats}; {machine()}\n")
    print(markdown(HEADER, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
