"""Daily energy — ``GET /pv/systems/<site_id>/daily_energy?start_date=YYYY-MM-DD[&end_date=YYYY-MM-DD]``.

Refreshed every hour, for the last few days: the cloud keeps correcting recent days, and their 15-minute
buckets are what the InfluxDB output stores (``enphase_site_interval``); the days' totals also correct the
lifetime counters (see ``exporter.lifetime``). ``backfill`` fetches older days through it. It yields no
/metrics series of its own.

The payload is ``{"system_id": …, "stats": [one item per day, shaped like today's stats item]}``. A span of
several years comes back in one call (about 1 MB); today's item is partial; days before the site reported
have ``[]`` arrays; a day can be missing altogether; yesterday can come back "not yet processed".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from exporter.sources.energy_day import DEFAULT_MAX_SITE_POWER_WATTS, EnergyDay, parse_day
from exporter.sources.source import Source
from exporter.values import Parsed, PayloadError, Reader, require_object

ENDPOINT = "daily_energy"


@dataclass(frozen=True, slots=True)
class DailyEnergy:
    days: tuple[EnergyDay, ...]  # sorted by start, one per day


def path(site_id: str) -> str:
    return f"/pv/systems/{site_id}/daily_energy"


def query(start: date, end: date | None = None) -> dict[str, str]:
    params = {"start_date": start.isoformat()}
    if end is not None:
        params["end_date"] = end.isoformat()
    return params


def parse(
    payload: Any,
    *,
    max_power_watts: float = DEFAULT_MAX_SITE_POWER_WATTS,
    measured: frozenset[str] = frozenset(),
) -> Parsed[DailyEnergy]:
    """``max_power_watts`` and ``measured`` are those of ``energy_day.parse_day``. A day the cloud has not
    processed yet (``[]`` arrays, ``totals: {}``) comes back with no channel at all: it says nothing, and
    must never replace what is known of that day."""
    body = require_object(payload, "daily_energy")
    if not isinstance(body.get("stats"), list):
        raise PayloadError("daily_energy: no stats[] in the payload")
    reader = Reader()
    by_start: dict[float, EnergyDay] = {}
    for index, item in enumerate(reader.objects(body, "stats", "daily_energy")):
        where = f"daily_energy.stats[{index}]"
        day = parse_day(item, where, reader, max_power_watts=max_power_watts, measured=measured)
        if day is not None:
            by_start[day.start_timestamp] = day  # a repeated day: the later item is the fresher one
    return Parsed(DailyEnergy(tuple(by_start[start] for start in sorted(by_start))), tuple(reader.problems))


# Fetched by the poller itself (exporter.poller) and rendered by the renderers' own code.
SOURCE = Source(
    name="daily_energy",
    reads="daily_energy: the last few days' 15-minute buckets",
    default_interval=3600,
    minimum_interval=300,
    first_run=0.75,
)
