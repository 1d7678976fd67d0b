"""One day of site energy: the ``stats`` item shared by ``today`` and ``daily_energy``.

Shape: ``{"start_time": <local midnight, epoch s>, "interval_length": 900, "production": [Wh, …], …,
"totals": {…}}``. Every energy array holds **Wh per interval** (not W); ``soc`` holds % per interval.
Interval *i* starts at ``start_time + i * interval_length`` — a day has 92, 96 or 100 of them (DST), so
nothing here assumes 96. ``[]`` means the site does not measure that channel: it stays absent, never 0 —
except on a day that has begun for a channel the site measures on other days (``parse_day``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from exporter.values import PERCENT_TO_RATIO, WH_TO_JOULES, Reader

# payload key -> channel name used in metric names (enphase_site_<channel>_today_joules, …)
CHANNELS: Mapping[str, str] = {
    "production": "production",
    "consumption": "consumption",
    "import": "grid_import",
    "export": "grid_export",
    "charge": "battery_charge",
    "discharge": "battery_discharge",
}
# payload key -> (source, sink) of an energy flow
FLOWS: Mapping[str, tuple[str, str]] = {
    "solar_home": ("solar", "home"),
    "solar_battery": ("solar", "battery"),
    "solar_grid": ("solar", "grid"),
    "battery_home": ("battery", "home"),
    "battery_grid": ("battery", "grid"),
    "grid_battery": ("grid", "battery"),
    "grid_home": ("grid", "home"),
}
# payload key -> load name: consumption of a measured appliance, not a flow between two places
# The cloud sends these as arrays of zeros on sites that have no such load: see parse_day's ``measured``.
LOADS: Mapping[str, str] = {"evse": "evse", "heatpump": "heatpump", "water_heater": "water_heater"}

# ``totals.soc`` (a sum of percentages) and ``totals.grid_import`` are nonsense in live data: only the
# channel keys above are ever read from ``totals``.

Series = tuple[float | None, ...]

# Intervals are 5 or 15 minutes; anything beyond a day is not an interval of this day. The bound also keeps
# interval arithmetic (start + index * length) within floats.
MAX_INTERVAL_SECONDS = 86400
# The most a site is taken to produce or draw, when no setting says (ENPHASE_MAX_SITE_POWER): generous
# enough for a small commercial site, and still far below the broken buckets seen in public data.
DEFAULT_MAX_SITE_POWER_WATTS = 1_000_000.0
# UTC+1: see local_date.
DEFAULT_UTC_OFFSET = 3600.0


@dataclass(frozen=True, slots=True)
class EnergyDay:
    start_timestamp: float  # the site's local midnight
    interval_seconds: int
    channels: Mapping[str, Series]  # channel -> joules per interval; only measured channels
    flows: Mapping[tuple[str, str], Series]
    loads: Mapping[str, Series]
    state_of_charge: Series  # ratio 0-1 per interval; empty when not measured
    channel_totals: Mapping[str, float]  # joules for the day (so far); only measured channels

    def interval_start(self, index: int) -> float:
        return self.start_timestamp + index * self.interval_seconds


def parse_day(
    item: Mapping[str, Any],
    where: str,
    reader: Reader,
    *,
    max_power_watts: float = DEFAULT_MAX_SITE_POWER_WATTS,
    measured: frozenset[str] = frozenset(),
    day_has_begun: bool = False,
) -> EnergyDay | None:
    """An ``EnergyDay`` from one stats item, or None (problem recorded) when it has no usable time axis.

    ``max_power_watts`` bounds every bucket: more energy than that power for a whole interval is a broken
    value (seen in public data), counted and left out. ``measured`` names what the site has measured on other
    days (``SiteFacts``): a load of zeros all day that the site never measured is the cloud's placeholder, not
    a 0 W load. With ``day_has_begun`` (today's item), a measured channel sent as ``[]`` reads 0: before the
    panels wake up ``production`` is ``[]`` on a site that does produce.
    """
    start = reader.timestamp(item, "start_time", where, epoch_unit="s", required=True)
    length = reader.number(item, "interval_length", where, required=True)
    if length is None or not (0 < length <= MAX_INTERVAL_SECONDS and length == int(length)):
        if length is not None:
            reader.problem(f"{where}.interval_length", f"not a whole number of seconds up to a day: {length}")
        return None
    if start is None:
        return None
    bucket = _Bucket(item, where, reader, max_power_watts * length)
    totals = reader.mapping(item, "totals", where)
    channels: dict[str, Series] = {}
    channel_totals: dict[str, float] = {}
    for key, channel in CHANNELS.items():
        series = bucket.series(key, WH_TO_JOULES)
        if series is not None:
            channels[channel] = series
            summed = sum(value for value in series if value is not None)
            if math.isfinite(summed):  # finite values can still add up beyond the largest float
                channel_totals[channel] = summed
            else:
                reader.problem(f"{where}.{key}", "the day's total is too large")
        elif key not in item:
            # No per-interval data at all (not even []): the day's total, when given, still counts.
            total = reader.number(
                totals, key, f"{where}.totals", scale=WH_TO_JOULES, minimum=0, maximum=max_power_watts * 86400
            )
            if total is not None:
                channel_totals[channel] = total
    if day_has_begun:
        longest = max((len(series) for series in channels.values()), default=0)
        for channel in CHANNELS.values():
            if channel in measured and channel not in channels and channel not in channel_totals:
                channel_totals[channel] = 0.0
                if longest:  # 0 J in each interval the other channels show, so that its power reads 0 W
                    channels[channel] = (0.0,) * longest
    flows = {pair: s for key, pair in FLOWS.items() if (s := bucket.series(key, WH_TO_JOULES))}
    loads = {
        name: s
        for key, name in LOADS.items()
        if (s := bucket.series(key, WH_TO_JOULES)) and (name in measured or any(s))
    }
    soc = bucket.series("soc", PERCENT_TO_RATIO, maximum=1.0) or ()
    return EnergyDay(start, int(length), channels, flows, loads, soc, channel_totals)


def measured_in(day: EnergyDay) -> frozenset[str]:
    """What this day shows the site measures: channels with a value, loads with energy."""
    channels = (name for name, series in day.channels.items() if any(v is not None for v in series))
    return frozenset((*channels, *(name for name, series in day.loads.items() if any(series))))


def local_date(midnight: float, utc_offset: float = DEFAULT_UTC_OFFSET) -> date:
    """The site's local date of a day that starts at ``midnight`` (Unix time of its local midnight).

    A local midnight alone is ambiguous (midnight in UTC+13 is midnight in UTC-11 of the day before), so
    the site's UTC offset, learned from ``today`` where it can be, places it; half a day of margin absorbs
    daylight-saving changes. The default, UTC+1, places every zone from UTC-10 to UTC+13 right.
    """
    return datetime.fromtimestamp(midnight + utc_offset + 43200, UTC).date()


class _Bucket:
    """Reads per-interval arrays in base units, each value within 0 and the site's most per interval."""

    def __init__(self, item: Mapping[str, Any], where: str, reader: Reader, max_joules: float) -> None:
        self._item, self._where, self._reader, self._max_joules = item, where, reader, max_joules

    def series(self, key: str, scale: float, maximum: float | None = None) -> Series | None:
        """None for a missing key, ``[]`` (not measured) or an array with no value at all."""
        raw = self._item.get(key)
        if raw is None:
            return None
        if not isinstance(raw, list):
            self._reader.problem(f"{self._where}.{key}", f"expected a list, got {type(raw).__name__}")
            return None
        if not raw:
            return None
        top = self._max_joules if maximum is None else maximum
        read = self._reader.coerce_number
        series = tuple(
            read(value, f"{self._where}.{key}[{i}]", scale, 0.0, top) for i, value in enumerate(raw)
        )
        # Nothing but nulls says no more than []: it must not become a day of 0 J that replaces a known one.
        return series if any(value is not None for value in series) else None
