"""How fast the InfluxDB queue grows while InfluxDB is unreachable: bytes per site per day, at the defaults.

    python3 benchmarks/queue_growth.py [--warm-up 1] [--days 2] [--live-hours 24]

The real exporter polls the demo cloud on a time-lapse (``harness/timelapse.py``) with an InfluxDB
output whose sender is never started, so every point stays in the on-disk queue, as when InfluxDB does not
answer. The first simulated day (the warm-up) includes the first history (lifetime energy, the last days'
buckets); the growth after it is what each further day of an outage costs. The live stream's points are
measured apart: the demo stream's frames, one a second, go through the exporter's own live store and its
windows (``ENPHASE_LIVE_INFLUX_RESOLUTION``, default 10 s) into the same queue. Prints a table: bytes per
day of each part, and how many days ``ENPHASE_INFLUX_QUEUE_MAX_BYTES``'s default holds.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harness.timelapse import Timelapse  # benchmarks/harness/, beside this file
from tables import machine, markdown  # benchmarks/tables.py, beside this file

from exporter.config import SETTINGS
from exporter.demo import simulation as sim
from exporter.demo.live import frame_bytes
from exporter.influx.queue import DiskQueue
from exporter.live.frame import decode

START = datetime(2026, 6, 1, tzinfo=sim.TZ).timestamp()  # a June day: long sun, charging in the evening
DAY = 86400.0
# Nothing listens on the discard port of the loopback; the sender is never started anyway.
UNREACHABLE = "http://127.0.0.1:9"
DEFAULT_MAX_BYTES: int = next(s.default for s in SETTINGS if s.env == "ENPHASE_INFLUX_QUEUE_MAX_BYTES")


@dataclass(frozen=True, slots=True)
class Growth:
    first_day: int  # bytes queued in the warm-up, the first history included
    per_day: dict[str, int]  # measurement -> bytes per day after the warm-up, live stream included

    @property
    def total(self) -> int:
        return sum(self.per_day.values())


def measure(warm_up: float, days: float, live_hours: float, state_dir: Path) -> Growth:
    environ = {
        "ENPHASE_INFLUX_URL": UNREACHABLE,
        "ENPHASE_INFLUX_DATABASE": "enphase",
        "ENPHASE_INFLUX_QUEUE_DIR": str(state_dir / "queue"),
    }
    per_day: Counter[str] = Counter()
    with Timelapse(START, state_dir, environ) as run:
        influx, live = run.exporter.influx, run.exporter.live
        assert influx is not None and live is not None
        run.run_for(warm_up * DAY)
        first_day = influx.queue.bytes
        drain(influx.queue)  # as if sent: what follows is one outage's growth alone
        run.run_for(days * DAY)
        per_day.update({name: size / days for name, size in drain(influx.queue).items()})
        seconds = int(live_hours * 3600)
        site_id = run.settings.site_ids[0]
        for second in range(seconds):
            now = run.clock() + second
            live.frame(site_id, decode(frame_bytes(now)), now)
        if seconds:
            per_day.update({name: size * DAY / seconds for name, size in drain(influx.queue).items()})
    return Growth(first_day, {name: round(size) for name, size in per_day.most_common()})


def drain(queue: DiskQueue) -> Counter[str]:
    """Bytes of the queued points by measurement, counted as the queue counts them; the queue is emptied."""
    sizes: Counter[str] = Counter()
    points = queue.peek(queue.points)
    for _, line in points:
        sizes[re.split(r"(?<!\\)[, ]", line, maxsplit=1)[0]] += len(line.encode()) + 1
    if points:
        queue.remove_through(points[-1][0])
    return sizes


def table(growth: Growth) -> str:
    rows = [(f"`{name}`", f"{size:,}") for name, size in growth.per_day.items()]
    rows.append(("all", f"{growth.total:,}"))
    held = DEFAULT_MAX_BYTES / growth.total if growth.total else float("inf")
    return (
        f"{machine()}\n\n{markdown(('one site, InfluxDB unreachable, per day', 'bytes'), rows)}\n\n"
        f"The default bound, {DEFAULT_MAX_BYTES:,} bytes, holds {held:.1f} days of an outage. The first day "
        f"queued {growth.first_day:,} bytes, the first history included."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm-up", type=float, default=1.0, help="days of the first history and more")
    parser.add_argument("--days", type=float, default=2.0, help="days measured after the warm-up")
    parser.add_argument("--live-hours", type=float, default=24.0, help="hours of live frames, one a second")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the unreachable InfluxDB is the point, not news
    with tempfile.TemporaryDirectory(prefix="enphase-queue-growth-") as state:
        growth = measure(args.warm_up, args.days, args.live_hours, Path(state))
    print(table(growth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
