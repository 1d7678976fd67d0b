"""Battery and site today — ``GET /pv/systems/<site_id>/today``.

Refreshed every 5 minutes (the site reports in 15-minute intervals). Sample output::

    enphase_battery_state_of_charge_ratio{site_id="1234567"} 0.62
    enphase_battery_profile{profile="self_consumption",site_id="1234567"} 1.0
    enphase_site_production_today_joules{site_id="1234567"} 5.472e+07
    enphase_site_energy_flow_today_joules{sink="home",site_id="1234567",source="solar"} 2.1e+07
    enphase_site_production_power_watts{site_id="1234567"} 560.0

Units, per field: ``battery_details.aggregate_soc`` and the ``batteryConfig`` percentages are % (→ ratio);
``last_report_date`` is epoch s; the energy arrays are Wh per interval (see ``energy_day``).
``connectionDetails[].serial_num`` is the gateway serial, which the live stream asks its credentials for.

``start_date`` is the date of today's stats item, **not** the site's first day (that one comes from
``lifetime_energy``). It is read only to learn the site's UTC offset, which places days by their local date.

Power is the mean of the latest *settled* interval: the newest closed bucket keeps growing for several
minutes after it closes (a first read is about a third of its final value), so an interval counts only once a
whole interval length has passed since its end, and only if the site had reported past its end.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from exporter.sources.energy_day import DEFAULT_MAX_SITE_POWER_WATTS, EnergyDay, parse_day
from exporter.sources.live_stream import gateway_from_today
from exporter.sources.source import Source
from exporter.values import PERCENT_TO_RATIO, Parsed, Reader, require_object

ENDPOINT = "today"

PROFILES = ("self_consumption", "cost_savings", "backup_only", "ai_optimisation", "expert", "unknown")
# Spellings seen across Enphase apps and APIs for the same profiles.
_PROFILE_ALIASES = {
    "savings_mode": "cost_savings",
    "savings": "cost_savings",
    "full_backup": "backup_only",
    "backup": "backup_only",
    "ai_optimization": "ai_optimisation",
}


@dataclass(frozen=True, slots=True)
class Today:
    utc_offset_seconds: float | None  # the site's offset from UTC today, where the payload tells it
    last_report_timestamp: float | None
    state_of_charge_ratio: float | None
    backup_reserve_ratio: float | None
    very_low_soc_ratio: float | None
    charge_from_grid: bool | None
    profile: str | None  # one of PROFILES, or None when the payload has no profile at all
    day: EnergyDay | None
    power_watts: Mapping[str, float]  # channel -> mean W of the latest settled interval
    power_interval_end_timestamp: float | None
    gateway_serial: str | None = None  # connectionDetails[].serial_num: the live stream needs it
    site_status: str | None = None  # siteStatus as sent (made safe): the site_status source reads it


def path(site_id: str) -> str:
    return f"/pv/systems/{site_id}/today"


def parse(
    payload: Any,
    now: float,
    *,
    max_power_watts: float = DEFAULT_MAX_SITE_POWER_WATTS,
    measured: frozenset[str] = frozenset(),
) -> Parsed[Today]:
    """``now`` decides which intervals have settled; it is a parameter so the parser stays pure.
    ``max_power_watts`` and ``measured`` (what the site measures, from its history) are those of
    ``energy_day.parse_day``."""
    body = require_object(payload, "today")
    reader = Reader()
    battery = reader.mapping(body, "battery_details", "today")
    config = reader.mapping(body, "batteryConfig", "today")
    last_report = reader.timestamp(body, "last_report_date", "today", epoch_unit="s")
    day = _parse_today_stats(body, reader, max_power_watts, measured)
    power, interval_end = _settled_power(day, now, last_report) if day else ({}, None)

    def ratio(obj: Mapping[str, Any], key: str, where: str) -> float | None:
        return reader.number(obj, key, where, scale=PERCENT_TO_RATIO, minimum=0.0, maximum=1.0)

    today = Today(
        utc_offset_seconds=_utc_offset(body, day, reader),
        last_report_timestamp=last_report,
        state_of_charge_ratio=ratio(battery, "aggregate_soc", "battery_details"),
        backup_reserve_ratio=ratio(config, "battery_backup_percentage", "batteryConfig"),
        very_low_soc_ratio=ratio(config, "very_low_soc", "batteryConfig"),
        charge_from_grid=reader.flag(config, "charge_from_grid", "batteryConfig"),
        profile=_profile(config, reader),
        day=day,
        power_watts=power,
        power_interval_end_timestamp=interval_end,
        gateway_serial=gateway_from_today(body.get("connectionDetails"), reader),
        site_status=reader.text(body, "siteStatus", "today"),
    )
    return Parsed(today, tuple(reader.problems))


def _parse_today_stats(
    body: Mapping[str, Any], reader: Reader, max_power_watts: float, measured: frozenset[str]
) -> EnergyDay | None:
    items = reader.objects(body, "stats", "today")
    if not items:
        return None
    if len(items) > 1:
        reader.problem("today.stats", f"expected one item, got {len(items)}; the last one is used")
    return parse_day(
        items[-1],
        "today.stats",
        reader,
        max_power_watts=max_power_watts,
        measured=measured,
        day_has_begun=True,
    )


def _settled_power(
    day: EnergyDay, now: float, last_report: float | None
) -> tuple[dict[str, float], float | None]:
    length = day.interval_seconds
    longest = max((len(series) for series in day.channels.values()), default=0)
    for index in range(longest - 1, -1, -1):
        end = day.interval_start(index + 1)
        settled = end + length <= now and (last_report is None or end <= last_report)
        if not settled:
            continue
        power = {
            channel: joules / length  # joules per second = watts
            for channel, series in day.channels.items()
            if index < len(series) and (joules := series[index]) is not None
        }
        return power, end
    return {}, None


def _profile(config: Mapping[str, Any], reader: Reader) -> str | None:
    raw = config.get("usage")
    if raw is None:
        return None
    name = re.sub(r"[\s-]+", "_", raw.strip().lower()) if isinstance(raw, str) else ""
    name = _PROFILE_ALIASES.get(name, name)
    if name in PROFILES and name != "unknown":
        return name
    reader.problem("batteryConfig.usage", f"unknown battery profile {raw!r}")
    return "unknown"


def _utc_offset(body: Mapping[str, Any], day: EnergyDay | None, reader: Reader) -> float | None:
    """The site's UTC offset from today's date (``start_date``) and today's local midnight (``start_time``).

    None where they do not fit together as one day's midnight in some time zone: a payload in the seeds'
    shape, where ``start_date`` was read as the site's first day, or no stats at all.
    """
    raw = body.get("start_date")
    if not isinstance(raw, str):
        return None  # absent, or a number as some shapes send: not needed, the default offset serves
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip()):
            raise ValueError
        midnight_utc = datetime.combine(date.fromisoformat(raw.strip()), time(), UTC).timestamp()
    except ValueError:
        reader.problem("today.start_date", f"not a date: {raw[:40]!r}")
        return None
    if day is None:
        return None
    offset = midnight_utc - day.start_timestamp
    return offset if -12 * 3600 <= offset <= 14 * 3600 else None


# Fetched by the poller itself (exporter.poller) and rendered by the renderers' own code.
SOURCE = Source(
    name="today",
    reads="today: battery state, settings, today's energy and 15-minute power of the site",
    default_interval=600,
    minimum_interval=60,
    first_run=0.5,
)
