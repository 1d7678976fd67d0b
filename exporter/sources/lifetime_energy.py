"""Lifetime energy — ``GET /pv/systems/<site_id>/lifetime_energy``.

The site's whole life in one request: its first day (``start_date``) and one value per day since then, in
**Wh per day** (``null`` for a day without data; today's entry grows during the day). It starts the lifetime
counters (see ``exporter.lifetime``) and names the first day that history and backfill start from. Note:
``today.start_date`` is only the date of today's stats item, never the site's first day. Sample output::

    enphase_site_production_joules_total{site_id="1234567"} 6.3e+10
    enphase_battery_discharge_joules_total{site_id="1234567"} 1.1e+10

Shape: ``{"system_id": …, "start_date": "2023-08-10", "last_report_date": …, "production": [12000, 8300, …],
"consumption": […], "import": [null, …], "charge": […], "evse": […], "heatpump": [], …}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from exporter.sources.energy_day import CHANNELS, DEFAULT_MAX_SITE_POWER_WATTS, LOADS
from exporter.sources.source import Source
from exporter.values import WH_TO_JOULES, Parsed, PayloadError, Reader, require_object

ENDPOINT = "lifetime_energy"

# A channel with a value in this many recent days is one the site measures (a battery removed years ago
# is not); a load is measured once it used energy on any day (a heat pump idle all summer still is).
MEASURED_WITHIN_DAYS = 30

DaySeries = tuple[float | None, ...]  # joules per day, one entry per day from start_date; None: no data


@dataclass(frozen=True, slots=True)
class LifetimeEnergy:
    start_date: date  # the site's first day
    channels: Mapping[str, DaySeries]  # channel -> joules per day (only the channels the payload has)
    measured: frozenset[str]  # channels with a value on a recent day, loads with energy on any day

    def day(self, index: int) -> date:
        return self.start_date + timedelta(days=index)


def path(site_id: str) -> str:
    return f"/pv/systems/{site_id}/lifetime_energy"


def parse(payload: Any, *, max_power_watts: float = DEFAULT_MAX_SITE_POWER_WATTS) -> Parsed[LifetimeEnergy]:
    """``max_power_watts`` is the most the site could produce or draw: a day above that power all day long
    is a broken value, counted and left out, never added to a lifetime counter."""
    body = require_object(payload, "lifetime_energy")
    start = _first_day(body.get("start_date"))
    reader = Reader()
    ceiling = max_power_watts * 86400
    channels: dict[str, DaySeries] = {}
    measured: set[str] = set()
    for key, channel in CHANNELS.items():
        series = _days(body, key, reader, ceiling)
        if series is not None:
            channels[channel] = series
            if any(value is not None for value in series[-MEASURED_WITHIN_DAYS:]):
                measured.add(channel)
    for key, load in LOADS.items():
        series = _days(body, key, reader, ceiling)
        # An array of zeros is the cloud's placeholder for a load the site does not have.
        if series and any(series):
            measured.add(load)
    return Parsed(LifetimeEnergy(start, channels, frozenset(measured)), tuple(reader.problems))


def _first_day(raw: Any) -> date:
    if isinstance(raw, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip()):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            pass
    # Without its first day nothing here can be placed in time: the payload as a whole is unusable.
    raise PayloadError(f"lifetime_energy: start_date is not a YYYY-MM-DD date: {str(raw)[:40]!r}")


def _days(body: Mapping[str, Any], key: str, reader: Reader, ceiling: float) -> DaySeries | None:
    raw = body.get(key)
    if raw is None:
        return None
    if not isinstance(raw, list):
        reader.problem(f"lifetime_energy.{key}", f"expected a list, got {type(raw).__name__}")
        return None
    return tuple(
        reader.coerce_number(
            value, f"lifetime_energy.{key}[{index}]", WH_TO_JOULES, minimum=0, maximum=ceiling
        )
        for index, value in enumerate(raw)
    )


# Fetched by the poller itself (exporter.poller) and rendered by the renderers' own code.
SOURCE = Source(
    name="lifetime_energy",
    reads="lifetime_energy: the site's first day and every day since, in one request",
    default_interval=3600,
    minimum_interval=300,
    first_run=0.0,
)
