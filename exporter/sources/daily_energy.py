"""Daily energy — ``GET /pv/systems/<site_id>/daily_energy?start_date=YYYY-MM-DD[&end_date=YYYY-MM-DD]``.

Refreshed every hour; feeds the lifetime counters (see ``exporter.lifetime``). Sample output::

    enphase_site_production_joules_total{site_id="1234567"} 6.3e+10
    enphase_battery_discharge_joules_total{site_id="1234567"} 1.1e+10

The payload is ``{"system_id": …, "stats": [one item per day, shaped like today's stats item]}``. A span of
several years comes back in one call (about 1 MB); today's item is partial; days before the site reported
have ``[]`` arrays. The first poll fetches the whole history, later polls only the last few days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from exporter.sources.energy_day import EnergyDay, parse_day
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


def parse(payload: Any) -> Parsed[DailyEnergy]:
    body = require_object(payload, "daily_energy")
    if not isinstance(body.get("stats"), list):
        raise PayloadError("daily_energy: no stats[] in the payload")
    reader = Reader()
    by_start: dict[float, EnergyDay] = {}
    for index, item in enumerate(reader.objects(body, "stats", "daily_energy")):
        day = parse_day(item, f"daily_energy.stats[{index}]", reader)
        if day is not None:
            by_start[day.start_timestamp] = day  # a repeated day: the later item is the fresher one
    return Parsed(DailyEnergy(tuple(by_start[start] for start in sorted(by_start))), tuple(reader.problems))
