"""Draw one day of the demo site as an SVG chart, from what a real Prometheus answers.

    python scripts/demo_chart.py                                  # docs/demo-day.svg, for 23 June 2024
    python scripts/demo_chart.py --day 2024-12-21 --out /tmp/winter.svg

How the data gets there, with nothing drawn that Prometheus did not return:

1. The exporter runs through the day in time-lapse (``benchmarks/harness``: the real client, poller
   and renderer against the demo cloud, on a fake clock) and its /metrics text is taken every minute of
   simulated time.
2. Those scrapes become a Prometheus TSDB through ``promtool tsdb create-blocks-from openmetrics``.
3. Debian's ``prometheus`` serves that TSDB on 127.0.0.1, and the chart is drawn from its ``query_range``
   answers to the PromQL queries in ``SERIES``.

Needs the ``prometheus`` and ``promtool`` binaries (Debian package ``prometheus``); only the standard
library and the exporter's own dependencies otherwise.
"""

from __future__ import annotations

import argparse
import math
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as day_time
from pathlib import Path
from xml.sax.saxutils import escape

import requests
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(1, str(ROOT / "benchmarks"))  # the time-lapse harness, benchmarks/harness/

from harness.timelapse import Timelapse  # noqa: E402

from exporter.demo import DEMO_SITE_ID  # noqa: E402
from exporter.demo import simulation as sim  # noqa: E402

# A long summer Sunday: the car charges at noon from the sun and in the evening from the battery.
DEFAULT_DAY = date(2024, 6, 23)
DEFAULT_OUT = ROOT / "docs" / "demo-day.svg"
SCRAPE_SECONDS = 60

# The gauges the chart needs; only these are written to the TSDB.
RECORDED = (
    "enphase_site_production_power_watts",
    "enphase_site_consumption_power_watts",
    "enphase_site_grid_import_power_watts",
    "enphase_site_grid_export_power_watts",
    "enphase_battery_charge_power_watts",
    "enphase_battery_discharge_power_watts",
    "enphase_battery_state_of_charge_ratio",
    "enphase_battery_backup_reserve_ratio",
    "enphase_ev_charger_charging",
)


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    query: str
    color: str
    dashed: bool = False


SITE = f'{{site_id="{DEMO_SITE_ID}"}}'
POWER = (
    Series("solar", "solar", f"enphase_site_production_power_watts{SITE}", "#e0a800"),
    Series("home", "home", f"enphase_site_consumption_power_watts{SITE}", "#3274d9"),
    Series(
        "battery",
        "battery (+ discharging)",
        f"enphase_battery_discharge_power_watts{SITE} - enphase_battery_charge_power_watts{SITE}",
        "#8f3bb8",
    ),
    Series(
        "grid",
        "grid (+ importing)",
        f"enphase_site_grid_import_power_watts{SITE} - enphase_site_grid_export_power_watts{SITE}",
        "#e02f44",
    ),
)
CHARGE = (
    Series("soc", "state of charge", f"enphase_battery_state_of_charge_ratio{SITE} * 100", "#37872d"),
    Series("reserve", "backup reserve", f"enphase_battery_backup_reserve_ratio{SITE} * 100", "#e02f44", True),
)
CHARGING = Series("ev", "EV charging", f"max(enphase_ev_charger_charging{SITE})", "#8ab8ff")

Points = list[tuple[float, float]]


# --- 1. the exporter through the day -----------------------------------------------------------------


def record(start: float, end: float, state_dir: Path) -> dict[str, list[tuple[str, float, float]]]:
    """Family name -> (sample line without value, value, Unix time) of every minute's scrape."""
    samples: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    with Timelapse(start, state_dir) as run:
        moment = start
        while moment <= end:
            run.run_until(moment)
            for family in text_string_to_metric_families(run.scrape()):
                if family.name not in RECORDED:
                    continue
                for sample in family.samples:
                    labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
                    samples[family.name].append((f"{sample.name}{{{labels}}}", sample.value, moment))
            moment += SCRAPE_SECONDS
    return samples


def openmetrics(samples: dict[str, list[tuple[str, float, float]]]) -> str:
    """OpenMetrics with timestamps, one block per family, as promtool's importer wants it."""
    lines = []
    for name in sorted(samples):
        lines.append(f"# TYPE {name} gauge")
        lines += [f"{series} {value!r} {moment:.0f}" for series, value, moment in samples[name]]
    return "\n".join([*lines, "# EOF", ""])


# --- 2 and 3. a real Prometheus -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Prometheus:
    """Debian's prometheus on 127.0.0.1, serving a TSDB built from the recorded samples."""

    def __init__(self, directory: Path, samples: dict[str, list[tuple[str, float, float]]]) -> None:
        for tool in ("prometheus", "promtool"):
            if shutil.which(tool) is None:
                raise SystemExit(f"{tool} is not installed (Debian package prometheus)")
        self.directory = directory
        (directory / "samples.om").write_text(openmetrics(samples), encoding="utf-8")
        subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", "samples.om", "data"],
            cwd=directory,
            check=True,
            capture_output=True,
        )
        (directory / "prometheus.yml").write_text("global: {}\n", encoding="utf-8")
        self.url = f"http://127.0.0.1:{free_port()}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        log = (self.directory / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                # The blocks hold a day that may be long past; the default 15 days would delete them.
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    "prometheus did not start:\n" + (self.directory / "prometheus.log").read_text()
                )
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(15)

    def range(self, query: str, start: float, end: float) -> Points:
        """The one series `query` returns, as (Unix time, value)."""
        response = requests.get(
            f"{self.url}/api/v1/query_range",
            params={"query": query, "start": start, "end": end, "step": SCRAPE_SECONDS},
            timeout=30,
        )
        body = response.json()
        if body.get("status") != "success":
            raise SystemExit(f"{query}: {body.get('error')}")
        result = body["data"]["result"]
        if len(result) != 1:
            raise SystemExit(f"{query}: expected one series, Prometheus returned {len(result)}")
        return [(float(moment), float(value)) for moment, value in result[0]["values"]]


# --- 4. the chart -------------------------------------------------------------------------------------

WIDTH, HEIGHT = 960, 600
LEFT, RIGHT = 70, 20
PLOT_WIDTH = WIDTH - LEFT - RIGHT
POWER_TOP, POWER_HEIGHT = 96, 260
CHARGE_TOP, CHARGE_HEIGHT = 420, 130


def nice_step(span: float, ticks: int) -> float:
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(power * factor for factor in (1, 2, 2.5, 5, 10) if power * factor >= raw)


def stretches(points: Points) -> Iterator[Points]:
    """The points split where Prometheus returned nothing for a while, so that a gap stays a gap."""
    stretch: Points = []
    for point in points:
        if stretch and point[0] - stretch[-1][0] > 2 * SCRAPE_SECONDS:
            yield stretch
            stretch = []
        stretch.append(point)
    if stretch:
        yield stretch


def polyline(series: Series, points: Points, x: Callable[[float], float], y: Callable[[float], float]) -> str:
    dash = ' stroke-dasharray="6 4"' if series.dashed else ""
    return "\n".join(
        f'<polyline class="{series.key}" fill="none" stroke="{series.color}" stroke-width="1.6"{dash} '
        f'stroke-linejoin="round" '
        f'points="{" ".join(f"{x(moment):.1f},{y(value):.1f}" for moment, value in stretch)}"/>'
        for stretch in stretches(points)
    )


def runs(points: Points) -> Iterator[tuple[float, float]]:
    """(start, end) of each stretch where the value is 1."""
    start = None
    for moment, value in points:
        if value >= 1 and start is None:
            start = moment
        elif value < 1 and start is not None:
            yield start, moment
            start = None
    if start is not None:
        yield start, points[-1][0]


def legend(items: list[Series], top: float) -> list[str]:
    parts, left = [], LEFT
    for item in items:
        dash = ' stroke-dasharray="6 4"' if item.dashed else ""
        width = 16 if item.key != "ev" else 0
        if item.key == "ev":
            parts.append(f'<rect x="{left}" y="{top - 9}" width="16" height="10" fill="{item.color}"/>')
        else:
            parts.append(
                f'<line x1="{left}" y1="{top - 4}" x2="{left + width}" y2="{top - 4}" stroke="{item.color}" '
                f'stroke-width="2.5"{dash}/>'
            )
        parts.append(f'<text x="{left + 22}" y="{top}">{escape(item.label)}</text>')
        left += 40 + 7 * len(item.label)
    return parts


def svg(day: date, start: float, end: float, data: dict[str, Points]) -> str:
    def x(moment: float) -> float:
        return LEFT + (moment - start) / (end - start) * PLOT_WIDTH

    values = [value for series in POWER for _, value in data[series.key]]
    step = nice_step(max(values) - min(0.0, min(values)), 5)
    low, high = math.floor(min(0.0, min(values)) / step) * step, math.ceil(max(values) / step) * step

    def y_power(value: float) -> float:
        return POWER_TOP + (high - value) / (high - low) * POWER_HEIGHT

    def y_charge(value: float) -> float:
        return CHARGE_TOP + (100 - value) / 100 * CHARGE_HEIGHT

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12" fill="#222">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        f'<text x="{LEFT}" y="28" font-size="17" font-weight="bold">The demo site on '
        f"{day:%A} {day.day} {day:%B %Y}</text>",
        f'<text x="{LEFT}" y="48" fill="#555">Queried from Prometheus: the demo exporter run through the day '
        f"in time-lapse and scraped every minute. Times in {sim.TZ_NAME}.</text>",
    ]
    # EV charging as bands behind both panels.
    for band_start, band_end in runs(data["ev"]):
        for top, height in ((POWER_TOP, POWER_HEIGHT), (CHARGE_TOP, CHARGE_HEIGHT)):
            out.append(
                f'<rect class="{CHARGING.key}" x="{x(band_start):.1f}" y="{top}" '
                f'width="{x(band_end) - x(band_start):.1f}" height="{height}" fill="{CHARGING.color}" '
                'fill-opacity="0.35"/>'
            )
    # Power panel.
    out.append(
        f'<text x="{LEFT}" y="{POWER_TOP - 10}" font-weight="bold">Power, W (mean of each settled '
        "15-minute interval)</text>"
    )
    tick = low
    while tick <= high + step / 2:
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + PLOT_WIDTH}" y1="{y_power(tick):.1f}" y2="{y_power(tick):.1f}" '
            f'stroke="{"#999" if tick == 0 else "#e5e5e5"}"/>'
        )
        out.append(f'<text x="{LEFT - 8}" y="{y_power(tick) + 4:.1f}" text-anchor="end">{tick:,.0f}</text>')
        tick += step
    out += [polyline(series, data[series.key], x, y_power) for series in POWER]
    out += legend([*POWER, CHARGING], POWER_TOP + POWER_HEIGHT + 30)
    # State of charge panel.
    out.append(f'<text x="{LEFT}" y="{CHARGE_TOP - 10}" font-weight="bold">Battery, %</text>')
    for percent in (0, 25, 50, 75, 100):
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + PLOT_WIDTH}" y1="{y_charge(percent):.1f}" '
            f'y2="{y_charge(percent):.1f}" stroke="#e5e5e5"/>'
        )
        out.append(f'<text x="{LEFT - 8}" y="{y_charge(percent) + 4:.1f}" text-anchor="end">{percent}</text>')
    out += [polyline(series, data[series.key], x, y_charge) for series in CHARGE]
    out += legend(list(CHARGE), CHARGE_TOP + CHARGE_HEIGHT + 30)
    # Hours along the bottom of each panel.
    hours = round((end - start) / 3600)
    for hour in range(0, hours + 1, 3 if hours >= 12 else 1):
        moment = start + hour * 3600
        for bottom in (POWER_TOP + POWER_HEIGHT, CHARGE_TOP + CHARGE_HEIGHT):
            out.append(
                f'<text x="{x(moment):.1f}" y="{bottom + 14}" text-anchor="middle" fill="#555">'
                f"{hour:02d}:00</text>"
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def local_midnight(day: date) -> float:
    return datetime.combine(day, day_time(), sim.TZ).timestamp()


def chart(day: date, out: Path, hours: int = 24) -> dict[str, Points]:
    """Draw `hours` of `day` from midnight into `out`; returns what Prometheus answered, by series key."""
    start = local_midnight(day)
    end = start + hours * 3600
    with tempfile.TemporaryDirectory(prefix="demo-chart-") as scratch:
        directory = Path(scratch)
        (directory / "state").mkdir()
        # An hour's head start: the exporter's first polls are spread over their intervals, and the
        # power of an interval shows only once it has settled.
        samples = record(start - 3600, end, directory / "state")
        with Prometheus(directory, samples) as prometheus:
            data = {
                series.key: prometheus.range(series.query, start, end)
                for series in [*POWER, *CHARGE, CHARGING]
            }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(svg(day, start, end, data), encoding="utf-8")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", type=date.fromisoformat, default=DEFAULT_DAY, help="YYYY-MM-DD, site time")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the SVG file to write")
    parser.add_argument(
        "--hours", type=int, default=24, choices=range(1, 25), metavar="1-24", help="from midnight"
    )
    args = parser.parse_args(argv)
    chart(args.day, args.out, args.hours)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
