"""The demo site's equipment: what ``devices.json`` lists, and the states its devices pass through.

Like :mod:`.simulation`, every state is a pure function of time. The simulation's one battery of
``BATTERY_CAPACITY_WH`` and ``BATTERY_MAX_POWER_W`` is split into two equal IQ Battery units that share its
state of charge, so per-unit figures always add up to the site's. The serials, SKUs and inverter ids are
the demo's own inventions.

Two things go wrong on a timetable, so that consumers meet them every day and tests can find them:

- microinverter 7 stops reporting from 14:00 to 15:30 local time; it catches up when it reports again (its
  energy so far stays frozen meanwhile), and the site's status is ``comm`` while it is silent;
- the second battery sleeps while the site's charge sits at the backup reserve (nothing left to give).

A battery-settings change is pending from 09:00 to 09:20 local time: the app asked for a higher reserve
and the gateway has not taken it yet. It never lands, since the simulation keeps one reserve.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from . import simulation as sim

PROFILE = "self-consumption"  # today's batteryConfig.usage and batterySettings' profile
CHARGE_FROM_GRID = False
STORM_GUARD = "enabled"
CHARGE_WINDOW_MINUTES = (120, 300)  # the grid-charging window, minutes after midnight (schedule disabled)
REQUESTED_RESERVE_PERCENT = 30

UNIT_CAPACITY_WH = sim.BATTERY_CAPACITY_WH / 2
UNIT_POWER_W = sim.BATTERY_MAX_POWER_W / 2

INVERTER_ID_BASE = 80_412_000  # inverter id = base + position (1-12); energy.json is keyed by the id
FAULT_HOURS = (14.0, 15.5)  # local time during which microinverter 7 does not report
PENDING_HOURS = (9.0, 9.0 + 20 / 60)  # local time during which a settings change waits for the gateway
SOH_CYCLES_PER_PERCENT = 150  # health lost per charge cycle, roughly as warranties describe it


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    serial: str
    sku: str
    sw_version: str


@dataclass(frozen=True, slots=True)
class Inverter:
    id: int
    device: Device
    array: str
    share: float  # of the site's production; the shares add up to 1


GATEWAY = Device("IQ Gateway", sim.GATEWAY_SERIAL, "SC100G-M230ROW", "D8.2.4382")
METERS = (
    Device("Production CT", f"{sim.GATEWAY_SERIAL}EIM1", "CT-200-SPLIT-P", "D8.2.4382"),
    Device("Consumption CT", f"{sim.GATEWAY_SERIAL}EIM2", "CT-200-SPLIT-C", "D8.2.4382"),
)
BATTERIES = (
    Device("IQ Battery", "482300001111", "IQBATTERY-5-DEMO", "522-00002-01-v2.5.9"),
    Device("IQ Battery", "482300002222", "IQBATTERY-5-DEMO", "522-00002-01-v2.5.9"),
)
MICRO_SKU = "IQ8MC-72-M-INT"
SYSTEM_CONTROLLER = Device("IQ System Controller", "482300003333", "EP200G-DEMO", "520-00082-r01-v1.14.7")


def _inverters() -> tuple[Inverter, ...]:
    # Eight panels on the south roof, four on the west one, which sees less sun; each panel a little
    # different, as real ones are.
    rng = random.Random("demo/inverters")
    arrays = ["South roof"] * 8 + ["West roof"] * 4
    weights = [(1.0 if array == "South roof" else 0.8) * rng.uniform(0.95, 1.05) for array in arrays]
    total = sum(weights)
    return tuple(
        Inverter(
            INVERTER_ID_BASE + position,
            Device(f"Microinverter {position}", f"4821{100000 + position:08d}", MICRO_SKU, "520-00082"),
            array,
            weight / total,
        )
        for position, (array, weight) in enumerate(zip(arrays, weights, strict=True), start=1)
    )


INVERTERS = _inverters()
SILENT_INVERTER = INVERTERS[6]


def _local(day: date, hours: float) -> float:
    return (datetime.combine(day, time(), sim.TZ) + timedelta(hours=hours)).timestamp()


def _within(ts: float, hours: tuple[float, float]) -> float | None:
    """The start of today's ``hours`` window if ``ts`` falls in it, else None."""
    day = sim.local_day(ts)
    start, end = _local(day, hours[0]), _local(day, hours[1])
    return start if start <= ts < end else None


def silent_since(ts: float) -> float | None:
    """When the silent microinverter stopped reporting, while it is silent; None when it reports."""
    return _within(ts, FAULT_HOURS)


def site_status(ts: float) -> str:
    # Enlighten flags a device that stopped reporting as a communication problem of the site.
    return "comm" if silent_since(ts) is not None else "normal"


def settings_pending(ts: float) -> bool:
    return _within(ts, PENDING_HOURS) is not None


def sleeping(unit: int, ts: float) -> bool:
    """Whether battery ``unit`` (0 or 1) sleeps: the second does while the charge sits at the reserve."""
    return unit == 1 and round(sim.battery_soc(ts)) <= sim.BACKUP_RESERVE_PERCENT


def cycle_count(ts: float) -> int:
    """Full charge cycles of each unit up to the start of today: the site's lifetime discharge over its
    capacity (the two units share the load equally)."""
    return _cycles_before(sim.local_day(ts))


@lru_cache(maxsize=8)
def _cycles_before(day: date) -> int:
    if day <= sim.SITE_START:
        return 0
    days = (day - sim.SITE_START).days
    discharged = sum(sim.day_totals(sim.SITE_START + timedelta(days=i))["discharge"] for i in range(days))
    return int(discharged / sim.BATTERY_CAPACITY_WH)


def health_percent(cycles: int) -> int:
    return 100 - cycles // SOH_CYCLES_PER_PERCENT
