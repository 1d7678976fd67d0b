"""JSON bodies of the demo cloud's device, battery and inverter endpoints (ENLIGHTEN_API.md §7b).

The equipment and its states come from :mod:`.hardware`; energies and charge from :mod:`.simulation`, the
same numbers ``today`` shows. ``inverter_data_x/energy.json`` is keyed by inverter id, not serial, as the
live one is: each ``inverters.json`` item carries that ``id`` so a consumer can join the two.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from . import hardware as hw
from . import payloads
from . import simulation as sim
from .payloads import JSON, REPORT_SECONDS

DEFAULT_PAGE = 100  # inverters.json without a limit


def _reported(ts: float) -> int:
    return int(ts // REPORT_SECONDS * REPORT_SECONDS)


def _device(device: hw.Device, last_report: float, status: str = "normal") -> JSON:
    texts = {"normal": "Normal", "sleeping": "Sleeping", "comm": "Not Reporting"}
    return {
        "name": device.name,
        "serial_number": device.serial,
        "sku_id": device.sku,
        "status": status,
        "statusText": texts[status],
        "last_report": _reported(last_report),
        "sw_version": device.sw_version,
    }


def _inverter_device(inverter: hw.Inverter, ts: float) -> JSON:
    silent = hw.silent_since(ts) if inverter is hw.SILENT_INVERTER else None
    return _device(inverter.device, ts if silent is None else silent, "normal" if silent is None else "comm")


def devices(ts: float) -> JSON:
    """``devices.json``: one group per type (the gateway's serial is what the live stream is asked for),
    then the metadata item. "micro" is the demo's name for the microinverters' group."""
    states = ["sleeping" if hw.sleeping(i, ts) else "normal" for i in range(len(hw.BATTERIES))]
    batteries = [_device(unit, ts, state) for unit, state in zip(hw.BATTERIES, states, strict=True)]
    return {
        "result": [
            {"type": "envoy", "devices": [_device(hw.GATEWAY, ts)]},
            {"type": "meter", "devices": [_device(meter, ts) for meter in hw.METERS]},
            {"type": "encharge", "devices": batteries},
            {"type": "enpower", "devices": [_device(hw.SYSTEM_CONTROLLER, ts)]},
            {"type": "micro", "devices": [_inverter_device(inverter, ts) for inverter in hw.INVERTERS]},
            {"curr_date_site": sim.local_day(ts).isoformat()},
        ]
    }


def battery_status(ts: float) -> JSON:
    """``battery_status.json``: energies in kWh, powers in kW, except each unit's ``rated_power`` in W."""
    soc = sim.battery_soc(ts)
    charge = f"{round(soc)}%"
    cycles = hw.cycle_count(ts)
    storages = []
    for i, unit in enumerate(hw.BATTERIES):
        storages.append(
            {
                "serial_num": unit.serial,
                "current_charge": charge,
                "available_energy": round(hw.UNIT_CAPACITY_WH * soc / 100 / 1000, 2),
                "max_capacity": hw.UNIT_CAPACITY_WH / 1000,
                "status": "sleeping" if hw.sleeping(i, ts) else "normal",
                "last_report": _reported(ts),
                "cycle_count": cycles,
                "battery_soh": f"{hw.health_percent(cycles)}%",
                "rated_power": round(hw.UNIT_POWER_W),
                "battery_mode": hw.PROFILE,
            }
        )
    awake = sum(1 for storage in storages if storage["status"] == "normal")
    # A battery at the reserve has nothing to give, and a sleeping one gives nothing.
    can_give = soc > sim.BACKUP_RESERVE_PERCENT
    return {
        "current_charge": charge,
        "available_energy": round(sim.BATTERY_CAPACITY_WH * soc / 100 / 1000, 2),
        "max_capacity": sim.BATTERY_CAPACITY_WH / 1000,
        "available_power": round(awake * hw.UNIT_POWER_W / 1000, 2) if can_give else 0.0,
        "max_power": sim.BATTERY_MAX_POWER_W / 1000,
        "storages": storages,
    }


def battery_settings(ts: float) -> JSON:
    begin, end = hw.CHARGE_WINDOW_MINUTES
    requested = {"batteryBackupPercentage": hw.REQUESTED_RESERVE_PERCENT} if hw.settings_pending(ts) else {}
    return {
        "type": "battery-details",
        "timestamp": datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "data": {
            "profile": hw.PROFILE,
            "batteryBackupPercentage": sim.BACKUP_RESERVE_PERCENT,
            "veryLowSoc": sim.VERY_LOW_SOC_PERCENT,
            "chargeFromGrid": hw.CHARGE_FROM_GRID,
            "chargeFromGridScheduleEnabled": False,
            "chargeBeginTime": begin,
            "chargeEndTime": end,
            "stormGuardState": hw.STORM_GUARD,
            "requestedConfig": requested,
        },
    }


def inverters(ts: float, limit: int, offset: int) -> JSON:
    """``inverters.json``: one page of the microinverters, and counts over all of them."""
    items = [
        {"id": inverter.id, **_inverter_device(inverter, ts), "array_name": inverter.array}
        for inverter in hw.INVERTERS
    ]
    silent = sum(1 for item in items if item["status"] != "normal")
    return {"total": len(items), "not_reporting": silent, "inverters": items[offset : offset + limit]}


def _production_so_far(day: date, ts: float) -> int:
    """The day's production in Wh up to ``ts``, as ``today`` (or a settled day's totals) show it."""
    if day < sim.local_day(ts):
        return sim.day_totals(day)["production"]
    return sum(payloads.stats_item(day, ts).get("production") or [])


def inverter_energy(ts: float, first: date, last: date) -> JSON:
    """``inverter_data_x/energy.json``: Wh per inverter id over ``first``..``last`` (through today so far).

    The silent microinverter's energy of today stops at what it had reported when it fell silent."""
    today = sim.local_day(ts)
    days = [first + timedelta(days=i) for i in range((min(last, today) - first).days + 1)]
    produced = sum(_production_so_far(day, ts) for day in days if day >= sim.SITE_START)
    silent = hw.silent_since(ts)
    unreported = 0  # what the site produced since the silent one fell silent: that one has not told yet
    if silent is not None and first <= today <= last:
        unreported = _production_so_far(today, ts) - _production_so_far(today, silent)
    production: dict[str, int] = {}
    for inverter in hw.INVERTERS:
        missed = unreported if inverter is hw.SILENT_INVERTER else 0
        production[str(inverter.id)] = round(inverter.share * (produced - missed))
    return {"production": production}
