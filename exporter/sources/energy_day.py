"""One day of site energy: the ``stats`` item shared by ``today`` and ``daily_energy``.

Shape: ``{"start_time": <local midnight, epoch s>, "interval_length": 900, "production": [Wh, …], …,
"totals": {…}}``. Every energy array holds **Wh per interval** (not W); ``soc`` holds % per interval.
Interval *i* starts at ``start_time + i * interval_length`` — a day has 92, 96 or 100 of them (DST), so
nothing here assumes 96. ``[]`` means the site does not measure that channel: it stays absent, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
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
LOADS: Mapping[str, str] = {"evse": "evse", "heatpump": "heatpump", "water_heater": "water_heater"}

# ``totals.soc`` (a sum of percentages) and ``totals.grid_import`` are nonsense in live data: only the
# channel keys above are ever read from ``totals``.

Series = tuple[float | None, ...]

# Intervals are 5 or 15 minutes; anything beyond a day is not an interval of this day. The bound also keeps
# interval arithmetic (start + index * length) within floats.
MAX_INTERVAL_SECONDS = 86400


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


def parse_day(item: Mapping[str, Any], where: str, reader: Reader) -> EnergyDay | None:
    """An ``EnergyDay`` from one stats item, or None (problem recorded) when it has no usable time axis."""
    start = reader.timestamp(item, "start_time", where, epoch_unit="s", required=True)
    length = reader.number(item, "interval_length", where, required=True)
    usable = length is not None and 0 < length <= MAX_INTERVAL_SECONDS and length == int(length)
    if start is None or not usable:
        if length is not None and not usable:
            reader.problem(f"{where}.interval_length", f"not a whole number of seconds up to a day: {length}")
        return None
    totals = reader.mapping(item, "totals", where)
    channels, channel_totals = {}, {}
    for key, channel in CHANNELS.items():
        series = _series(item, key, where, reader, WH_TO_JOULES)
        if series is not None:
            channels[channel] = series
            total = sum(value for value in series if value is not None)
            if math.isfinite(total):  # finite values can still add up beyond the largest float
                channel_totals[channel] = total
            else:
                reader.problem(f"{where}.{key}", "the day's total is too large")
        elif key not in item:
            # No per-interval data at all (not even []): the day's total, when given, still counts.
            total = reader.number(totals, key, f"{where}.totals", scale=WH_TO_JOULES)
            if total is not None:
                channel_totals[channel] = total
    flows = {pair: s for key, pair in FLOWS.items() if (s := _series(item, key, where, reader, WH_TO_JOULES))}
    loads = {name: s for key, name in LOADS.items() if (s := _series(item, key, where, reader, WH_TO_JOULES))}
    soc = _series(item, "soc", where, reader, PERCENT_TO_RATIO) or ()
    return EnergyDay(start, int(length), channels, flows, loads, soc, channel_totals)


def _series(item: Mapping[str, Any], key: str, where: str, reader: Reader, scale: float) -> Series | None:
    """Per-interval values in base units; None for a missing key or ``[]`` (not measured)."""
    raw = item.get(key)
    if raw is None:
        return None
    if not isinstance(raw, list):
        reader.problem(f"{where}.{key}", f"expected a list, got {type(raw).__name__}")
        return None
    if not raw:
        return None
    return tuple(reader.coerce_number(value, f"{where}.{key}[{i}]", scale) for i, value in enumerate(raw))
