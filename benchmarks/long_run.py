"""A simulated week of polling with faults mixed in, time-lapsed: does anything grow that should not?

    python3 benchmarks/long_run.py [--days 7] [--warm-up 1] [--seed 1] [--rate 0.05] [--tracemalloc] [--json]

The real exporter polls the demo cloud over HTTP on 127.0.0.1 (``harness/timelapse.py``) while one fake
clock drives the schedule and the simulation, with the demo cloud's fault mix on. After the warm-up (the
whole history fetched, caches filled) the process's memory, threads and open files are measured; again at
the end, at the same time of day (today's intervals fill up through each day). Memory is the resident set
and the number of blocks Python's allocator holds; ``--tracemalloc`` adds bytes of Python objects, at
about four times the run time. Prints its figures as tables and exits 1 when growth is out of bounds, a
rule of the referee was broken, or a poll met a bug; ``--json`` prints the figures as JSON instead. The
test suite runs a short version of the same in a process of its own (tests/test_long_run.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import math
import os
import random
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harness.timelapse import Timelapse  # benchmarks/harness/, beside this file
from tables import machine, markdown  # benchmarks/tables.py, beside this file

from exporter.demo import simulation as sim
from exporter.demo.faults import FAULT_NAMES, FaultMix

START = datetime(2026, 6, 1, tzinfo=sim.TZ).timestamp()  # a June week: long days, charging most evenings
DAY = 86400.0
# Bounds. What may grow: one more settled day per day in the exporter's ledger (the demo's simulated days are
# made before the first figures), bounded sets (label values met, distinct problems logged; a few hundred
# blocks at first). A leak of one object per request (about 2,000 a day) would not fit.
BLOCKS_GROWTH_PER_DAY = 1000
TRACED_GROWTH_PER_DAY = 128 * 1024
RSS_GROWTH = 16 * 2**20
QUIET_SECONDS = 10.0  # for the threads of answers a fault held back to end (they take under a second)


@dataclass(frozen=True, slots=True)
class Figures:
    rss: int  # bytes
    blocks: int  # memory blocks Python's allocator holds: objects, roughly
    traced: int  # bytes of Python objects, per tracemalloc; 0 when not tracing
    threads: int
    open_files: int


@dataclass(frozen=True, slots=True)
class Report:
    days: float
    warm_up_days: float
    seed: int
    rate: float
    wall_seconds: float
    start: Figures
    end: Figures
    polls: Counter[str]
    failed: Counter[str]
    events: Counter[str]  # the referee's counts: requests, faults, logins, expiries, violations
    violations: list[str]
    internal_errors: int
    scrapes: int
    slowest_scrape: float

    @property
    def measured_days(self) -> float:
        return self.days - self.warm_up_days

    def problems(self) -> list[str]:
        start, end, days = self.start, self.end, self.measured_days
        found = [f"referee: {violation}" for violation in self.violations]
        if self.internal_errors:
            found.append(f"{self.internal_errors} polls met a bug")
        if end.blocks - start.blocks > BLOCKS_GROWTH_PER_DAY * days:
            found.append(f"Python's allocated blocks grew by {end.blocks - start.blocks}")
        if end.traced - start.traced > TRACED_GROWTH_PER_DAY * days:
            found.append(f"traced memory grew by {end.traced - start.traced} bytes")
        if end.rss - start.rss > RSS_GROWTH:
            found.append(f"resident memory grew by {end.rss - start.rss} bytes")
        if end.threads > start.threads:
            found.append(f"{end.threads - start.threads} threads were left behind")
        if end.open_files > start.open_files:
            found.append(f"{end.open_files - start.open_files} file descriptors were left open")
        return found


def figures() -> Figures:
    """Taken once no request is being answered: the threads of answers a fault held back have ended."""
    deadline = time.monotonic() + QUIET_SECONDS
    while any(thread.name.endswith("(process_request_thread)") for thread in threading.enumerate()):
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    gc.collect()
    status = Path("/proc/self/status").read_text()
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return Figures(
        rss=rss_kib * 1024,
        blocks=sys.getallocatedblocks(),
        traced=tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0,
        threads=threading.active_count(),
        open_files=len(os.listdir("/proc/self/fd")),
    )


def long_run(
    days: float, warm_up_days: float, seed: int, rate: float, state_dir: Path, trace: bool = False
) -> Report:
    randomness = random.getstate()
    random.seed(seed)  # the schedule's and the back-off's jitter: the same run every time
    if trace:
        tracemalloc.start()
    started = time.monotonic()
    try:
        environ = {"ENPHASE_READ_TIMEOUT": "0.3"}  # a timed-out answer costs little real time
        with Timelapse(START, state_dir, environ, keep_events=100) as run:
            mix = FaultMix(FAULT_NAMES, seed, rate)
            run.cloud.faults.mix(mix, slow_seconds=(0.01, 0.1), timeout_seconds=0.45)
            run.run_for(warm_up_days * DAY, scrape_every=900)
            # The demo cloud's simulated days (its cache of them) are the demo's memory, not the exporter's:
            # simulated now, before the first figures, so that the growth measured is the exporter's.
            for day in range(math.ceil(days) + 1):
                sim.simulate_day(sim.local_day(START + day * DAY))
            start = figures()
            run.run_for((days - warm_up_days) * DAY, scrape_every=900)
            end = figures()
            return Report(
                days=days,
                warm_up_days=warm_up_days,
                seed=seed,
                rate=rate,
                wall_seconds=time.monotonic() - started,
                start=start,
                end=end,
                polls=run.polls,
                failed=run.failed,
                events=run.referee.counts,
                violations=[f"{v.rule}: {v.detail}" for v in run.referee.violations],
                internal_errors=run.internal_errors,
                scrapes=run.scrapes,
                slowest_scrape=run.slowest_scrape,
            )
    finally:
        if trace:
            tracemalloc.stop()
        random.setstate(randomness)


def table(report: Report) -> str:
    start, end, days = report.start, report.end, max(report.measured_days, 1e-9)

    def row(name: str, before: float, after: float, unit: str = "", per_day: bool = False) -> list[str]:
        scale, digits = (2**20, 1) if unit == "MiB" else (1, 0)
        growth = (after - before) / scale
        daily = f" ({growth / days:+.{digits}f} per day)" if per_day else ""
        unit = f" {unit}" if unit else ""
        return [
            name,
            f"{before / scale:.{digits}f}{unit}",
            f"{after / scale:.{digits}f}{unit}",
            f"{growth:+.{digits}f}{unit}{daily}",
        ]

    traced = [row("traced Python memory", start.traced, end.traced, "MiB", True)] if start.traced else []
    process = [
        row("resident memory (RSS)", start.rss, end.rss, "MiB"),
        row("Python's allocated blocks", start.blocks, end.blocks, per_day=True),
        *traced,
        row("threads", start.threads, end.threads),
        row("open file descriptors", start.open_files, end.open_files),
    ]
    polls = [(source, count, report.failed[source]) for source, count in sorted(report.polls.items())]
    seen = [
        *sorted(report.events.items()),
        (f"/metrics renders (slowest {report.slowest_scrape * 1000:.0f} ms)", report.scrapes),
        ("polls that met a bug", report.internal_errors),
    ]
    return "\n\n".join(
        [
            f"{report.days:g} simulated days ({report.warm_up_days:g} of warm-up), seed {report.seed}, "
            f"{report.rate:.0%} of requests spoiled; {report.wall_seconds:.0f} s of real time on {machine()}",
            markdown(["figure", "after warm-up", "at the end", "growth"], process),
            markdown(["source", "polls", "failed"], polls),
            markdown(["what the cloud saw", "count"], seen),
        ]
    )


def as_json(report: Report) -> str:
    fields = {field.name: getattr(report, field.name) for field in dataclasses.fields(report)}
    fields["start"], fields["end"] = dataclasses.asdict(report.start), dataclasses.asdict(report.end)
    return json.dumps({**fields, "problems": report.problems()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--warm-up", type=float, default=1.0, help="days before the first figures")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.05, help="share of requests a fault spoils")
    parser.add_argument("--tracemalloc", action="store_true", help="also count bytes (four times slower)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # every fault is logged; the figures are what matters here
    with tempfile.TemporaryDirectory(prefix="enphase-long-run-") as state:
        report = long_run(args.days, args.warm_up, args.seed, args.rate, Path(state), args.tracemalloc)
    problems = report.problems()
    print(as_json(report) if args.json else table(report))
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
