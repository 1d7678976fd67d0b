"""Years of daily energy into InfluxDB line protocol, against the time it takes merely to read the JSON.

    python3 benchmarks/history.py [--days 1026] [--repeats 5]

The payload is the demo cloud's own ``daily_energy`` answer for the whole history of its site (from its first
day, 2023-08-10, to 2026-06-01: about 1 MB), as the first daily-energy poll and ``backfill`` receive it. Each
row adds one stage of the real path to the one before: ``json.loads``, ``daily_energy.parse`` (the models,
units converted), ``render_influx.history_points`` (one point per 15-minute bucket and per day) and
``Point.line`` (the text sent to InfluxDB). Times are medians of ``--repeats`` runs, the stages taking turns.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta

from tables import machine, markdown, median_seconds

from exporter.demo import payloads
from exporter.demo import simulation as sim
from exporter.render_influx import history_points
from exporter.sources import daily_energy

END = datetime(2026, 6, 1, 12, 0, tzinfo=sim.TZ).timestamp()
WHOLE_HISTORY = (sim.local_day(END) - sim.SITE_START).days + 1


def payload_text(days: int) -> str:
    first = max(sim.local_day(END) - timedelta(days=days - 1), sim.SITE_START)
    return payloads.daily_energy_json(END, first, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=WHOLE_HISTORY)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    text = payload_text(args.days)

    def loads() -> object:
        return json.loads(text)

    def parsed() -> daily_energy.DailyEnergy:
        return daily_energy.parse(json.loads(text)).value

    def points() -> list[object]:
        return list(history_points(sim.SITE_ID, parsed().days, END))

    def lines() -> list[str]:
        return [point.line() for point in history_points(sim.SITE_ID, parsed().days, END)]

    history = parsed()
    written = lines()
    assert written and all(line.startswith("enphase_site_") for line in written)
    stages = (
        ("json.loads (reference)", loads),
        ("+ daily_energy.parse", parsed),
        ("+ history_points", points),
        ("+ Point.line (line protocol)", lines),
    )
    timings = median_seconds(*(work for _, work in stages), repeats=args.repeats)
    reference = timings[0]
    rows = [
        [name, f"{seconds * 1000:.0f}", f"{seconds / reference:.1f}", f"{len(written) / seconds:,.0f}"]
        for (name, _), seconds in zip(stages, timings, strict=True)
    ]
    print(
        f"daily_energy for {len(history.days)} days ({len(text) / 1e6:.2f} MB of JSON) into "
        f"{len(written):,} points ({sum(map(len, written)) / 1e6:.1f} MB of line protocol); "
        f"median of {args.repeats}; {machine()}\n"
    )
    print(markdown(("stages", "ms", "x json.loads", "points per second"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
