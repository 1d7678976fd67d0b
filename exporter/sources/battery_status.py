"""Batteries, one by one — ``GET /pv/settings/<site_id>/battery_status.json``.

The site's battery capacity and the energy available now, and for each battery (``storages[]``) its state of
charge, health, cycle count, capacity, rated power and status. Sample output::

    enphase_battery_capacity_joules{site_id="1234567"} 3.7008e+07
    enphase_battery_available_energy_joules{site_id="1234567"} 1.7784e+07
    enphase_battery_unit_state_of_charge_ratio{serial="482301012345",site_id="1234567"} 0.48
    enphase_battery_unit_health_ratio{serial="482301012345",site_id="1234567"} 1.0
    enphase_battery_unit_cycles_total{serial="482301012345",site_id="1234567"} 212.0
    enphase_battery_unit_normal{serial="482301012345",site_id="1234567"} 1.0
    enphase_battery_unit_sleeping{serial="482301012346",site_id="1234567"} 1.0

Units, per field: ``available_energy`` and ``max_capacity`` (site and battery) are kWh (→ J, times 3.6e6);
``available_power`` and ``max_power`` (site) are kW (→ W); ``rated_power`` (battery) is W;
``current_charge`` and ``battery_soh`` are percentages, usually strings such as ``"48%"`` (→ ratio);
``last_report`` is epoch s; ``cycle_count`` is a count of charge cycles. Any field may be the string
``"N/A"``: absent, not a problem.

Ranges (a value outside is broken: counted as a problem and absent, never exported): state of charge 0-1;
health 0-1.2, because a new battery can measure more than its nominal capacity and reports a little over
100%, while far more is not a health figure; energies from 0 to 100 kWh for one battery (the largest
Enphase unit holds about 10.5) and 1 MWh for a site; a battery's rated power 0-100 kW, the site's powers 0
to ``ENPHASE_MAX_SITE_POWER``; cycles 0-100000 (a cycle a day for 270 years). Available energy is not
checked against capacity: the cloud rounds each separately.

The site's ``current_charge`` is not read: ``today`` already exports it as
``enphase_battery_state_of_charge_ratio``. A battery's ``status`` is kept as sent: ``normal`` and
``sleeping`` (a healthy battery resting, full or empty) have gauges of their own; any other status (the
cloud also uses ``comm``, ``error``, …) sets both to 0. A battery without a serial cannot be told apart
from the others and is left out; a second battery with the same serial too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exporter.readings import Counter, Gauge, Reading
from exporter.sources.energy_day import DEFAULT_MAX_SITE_POWER_WATTS
from exporter.sources.source import Fetch, Source
from exporter.values import (
    NOT_AVAILABLE,
    PERCENT_TO_RATIO,
    WH_TO_JOULES,
    Parsed,
    PayloadError,
    Reader,
    require_object,
)

if TYPE_CHECKING:
    from exporter.snapshot import SiteSnapshot

ENDPOINT = "battery_status"

KWH_TO_JOULES = 1000 * WH_TO_JOULES
KW_TO_WATTS = 1000.0
MAX_UNIT_ENERGY = 100 * KWH_TO_JOULES
MAX_SITE_ENERGY = 1000 * KWH_TO_JOULES
MAX_UNIT_POWER = 100 * KW_TO_WATTS  # watts
MAX_HEALTH_RATIO = 1.2
MAX_CYCLES = 100_000.0
_SITE_KEYS = (
    "storages",
    "current_charge",
    "available_energy",
    "max_capacity",
    "available_power",
    "max_power",
)


@dataclass(frozen=True, slots=True)
class BatteryUnit:
    serial: str
    state_of_charge_ratio: float | None
    health_ratio: float | None
    cycles: float | None
    capacity_joules: float | None
    available_energy_joules: float | None
    rated_power_watts: float | None
    status: str | None  # as sent, in lower case: "normal", "sleeping", …
    last_report_timestamp: float | None


@dataclass(frozen=True, slots=True)
class BatteryStatus:
    capacity_joules: float | None
    available_energy_joules: float | None
    max_power_watts: float | None
    available_power_watts: float | None
    units: tuple[BatteryUnit, ...]


def path(site_id: str) -> str:
    return f"/pv/settings/{site_id}/battery_status.json"


def parse(payload: Any, *, max_power_watts: float = DEFAULT_MAX_SITE_POWER_WATTS) -> Parsed[BatteryStatus]:
    """``max_power_watts`` (``ENPHASE_MAX_SITE_POWER``) bounds the site's battery powers."""
    raw = require_object(payload, ENDPOINT)
    if not any(key in raw for key in _SITE_KEYS):  # an error object answered with 200, or another endpoint's
        raise PayloadError(f"{ENDPOINT}: none of the battery status fields ({', '.join(_SITE_KEYS)})")
    body = _given(raw)
    reader = Reader()
    units: list[BatteryUnit] = []
    for index, item in enumerate(reader.objects(body, "storages", ENDPOINT, required=True)):
        unit = _unit(_given(item), f"{ENDPOINT}.storages[{index}]", reader)
        if unit is None:
            continue
        if any(known.serial == unit.serial for known in units):
            reader.problem(f"{ENDPOINT}.storages[{index}].serial_num", f"{unit.serial!r} listed twice")
            continue
        units.append(unit)

    def energy(key: str) -> float | None:
        return reader.number(body, key, ENDPOINT, scale=KWH_TO_JOULES, minimum=0.0, maximum=MAX_SITE_ENERGY)

    def power(key: str) -> float | None:
        return reader.number(body, key, ENDPOINT, scale=KW_TO_WATTS, minimum=0.0, maximum=max_power_watts)

    status = BatteryStatus(
        capacity_joules=energy("max_capacity"),
        available_energy_joules=energy("available_energy"),
        max_power_watts=power("max_power"),
        available_power_watts=power("available_power"),
        units=tuple(units),
    )
    return Parsed(status, tuple(reader.problems))


def _unit(item: Mapping[str, Any], where: str, reader: Reader) -> BatteryUnit | None:
    serial = reader.text(item, "serial_num", where, required=True)  # "", "  " and "N/A" are missing too
    if serial is None:
        return None

    def energy(key: str) -> float | None:
        return reader.number(item, key, where, scale=KWH_TO_JOULES, minimum=0.0, maximum=MAX_UNIT_ENERGY)

    return BatteryUnit(
        serial=serial.strip(),
        state_of_charge_ratio=_percent(item, "current_charge", where, reader, maximum=1.0),
        health_ratio=_percent(item, "battery_soh", where, reader, maximum=MAX_HEALTH_RATIO),
        cycles=reader.number(item, "cycle_count", where, minimum=0.0, maximum=MAX_CYCLES),
        capacity_joules=energy("max_capacity"),
        available_energy_joules=energy("available_energy"),
        rated_power_watts=reader.number(item, "rated_power", where, minimum=0.0, maximum=MAX_UNIT_POWER),
        status=_status(item, where, reader),
        last_report_timestamp=reader.timestamp(item, "last_report", where, epoch_unit="s"),
    )


def _percent(
    item: Mapping[str, Any], key: str, where: str, reader: Reader, *, maximum: float
) -> float | None:
    """A percentage (48, "48" or "48%") as a ratio from 0 to ``maximum``."""
    raw = item.get(key)
    if isinstance(raw, str):
        raw = raw.strip().removesuffix("%")
    return reader.coerce_number(raw, f"{where}.{key}", PERCENT_TO_RATIO, minimum=0.0, maximum=maximum)


def _status(item: Mapping[str, Any], where: str, reader: Reader) -> str | None:
    raw = item.get("status")
    if raw is None:
        return None
    if not isinstance(raw, str):  # a number here is no status we could name
        reader.problem(f"{where}.status", f"expected a string, got {type(raw).__name__}")
        return None
    return reader.safe_text(raw.strip().lower(), f"{where}.status")


def _given(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` without the fields the cloud marks as having no value ("N/A"): those are absent."""
    return {
        key: value
        for key, value in obj.items()
        if not (isinstance(value, str) and value.strip().lower() in NOT_AVAILABLE)
    }


def fetch(poll: Fetch) -> Parsed[BatteryStatus]:
    site_id = poll.site.site_id
    return parse(poll.client.get_json(ENDPOINT, path(site_id)), max_power_watts=poll.max_power_watts)


_UNIT_GAUGES: tuple[tuple[str, str, Callable[[BatteryUnit], float | None]], ...] = (
    (
        "enphase_battery_unit_state_of_charge_ratio",
        "State of charge of one battery, 0-1 (battery_status).",
        lambda unit: unit.state_of_charge_ratio,
    ),
    (
        "enphase_battery_unit_health_ratio",
        "State of health of one battery: its capacity now against its nominal capacity; a new battery can "
        "read a little above 1.",
        lambda unit: unit.health_ratio,
    ),
    (
        "enphase_battery_unit_capacity_joules",
        "Usable capacity of one battery, in joules.",
        lambda unit: unit.capacity_joules,
    ),
    (
        "enphase_battery_unit_available_energy_joules",
        "Energy one battery holds now, in joules.",
        lambda unit: unit.available_energy_joules,
    ),
    (
        "enphase_battery_unit_rated_power_watts",
        "Rated (continuous) power of one battery, in watts.",
        lambda unit: unit.rated_power_watts,
    ),
    (
        "enphase_battery_unit_normal",
        "1 when the battery's status is normal, 0 for any other status.",
        lambda unit: _status_is(unit, "normal"),
    ),
    (
        "enphase_battery_unit_sleeping",
        "1 when the battery is sleeping (healthy, resting while full or empty), 0 for any other status.",
        lambda unit: _status_is(unit, "sleeping"),
    ),
    (
        "enphase_battery_unit_last_report_timestamp_seconds",
        "When the battery last reported to the cloud (Unix time).",
        lambda unit: unit.last_report_timestamp,
    ),
)
_SITE_GAUGES: tuple[tuple[str, str, Callable[[BatteryStatus], float | None]], ...] = (
    (
        "enphase_battery_capacity_joules",
        "Usable capacity of the site's batteries together, in joules (battery_status).",
        lambda status: status.capacity_joules,
    ),
    (
        "enphase_battery_available_energy_joules",
        "Energy the site's batteries hold now, in joules.",
        lambda status: status.available_energy_joules,
    ),
    (
        "enphase_battery_max_power_watts",
        "Power the site's batteries can deliver together, in watts.",
        lambda status: status.max_power_watts,
    ),
    (
        "enphase_battery_available_power_watts",
        "Power the site's batteries can deliver now, in watts (less than the maximum while some sleep or "
        "are empty).",
        lambda status: status.available_power_watts,
    ),
)


def readings(site: SiteSnapshot, model: BatteryStatus) -> Iterator[Reading]:
    site_labels = {"site_id": site.site_id}
    for metric, help_text, site_value in _SITE_GAUGES:
        yield Gauge(metric, help_text, site_labels, site_value(model))
    for unit in model.units:
        labels = {"site_id": site.site_id, "serial": unit.serial}
        for metric, help_text, unit_value in _UNIT_GAUGES:
            yield Gauge(metric, help_text, labels, unit_value(unit))
        yield Counter(
            "enphase_battery_unit_cycles_total",
            "Charge cycles of one battery, as the cloud counts them.",
            labels,
            unit.cycles,
        )


def _status_is(unit: BatteryUnit, status: str) -> bool | None:
    return None if unit.status is None else unit.status == status


SOURCE = Source(
    name="battery_status",
    reads="battery_status.json: each battery's charge, health, cycles, capacity and status; site capacity",
    default_interval=1800,
    minimum_interval=300,
    first_run=3.5,
    fetch=fetch,
    readings=readings,
)
