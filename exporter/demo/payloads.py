"""JSON bodies of the demo cloud, in the live shapes of ENLIGHTEN_API.md, built from the simulation.

Each function takes the instant ``ts`` (Unix seconds) the cloud answers at. Quirks of the live service
are reproduced on purpose so that the exporter meets them in every demo and test: epoch milliseconds
and ``[UTC]``-suffixed ISO times on the EV service, numbers as strings in the summary, a provisional
newest interval, ``[]`` for channels the site does not measure, zero-filled placeholders for loads it does
not have, ``production: []`` before dawn, a yesterday "not yet processed" for a while after midnight,
``today.start_date`` that is today's date (the site's first day is ``lifetime_energy``'s), and meaningless
``soc`` and ``grid_import`` totals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from . import hardware as hw
from . import simulation as sim

JSON = dict[str, Any]

CHARGER_NAME = "Garage"
SITE_TITLE = "Demo Home"
SESSION_PRICE_PER_KWH = 0.30
MILES_PER_KWH = 4.05
REPORT_SECONDS = 300  # the gateway uploads every five minutes
PROVISIONAL_SECONDS = 300  # how long the newest closed interval keeps growing
UNPROCESSED_SECONDS = 5400  # how long after midnight yesterday's daily answer is "not yet processed"
CHARGER_REPORT_PHASE_NS = 23_417_264_449  # nanoseconds into each minute the charger reports at

# Key order of a stats item as the live service sends it; the empty ones are not measured at this site.
_ENERGY_ARRAYS = ("production", "consumption", "import", "export", "charge", "discharge")
_FLOW_ARRAYS = (
    "solar_home",
    "solar_battery",
    "solar_grid",
    "battery_home",
    "battery_grid",
    "grid_battery",
    "grid_home",
    "evse",
    "heatpump",
    "water_heater",
)
_NOT_MEASURED = ("battery_grid",)  # [] in every answer
_PLACEHOLDERS = (
    "heatpump",
    "water_heater",
)  # loads the site has not got: zeros in stats items, [] in lifetime


def to_json(body: JSON) -> str:
    return json.dumps(body, separators=(",", ":"))  # compact, like the live service


def _iso_utc(ns: int, digits: int = 3) -> str:
    """ISO time with the ``[UTC]`` zone suffix of the EV service, e.g. 2026-03-28T04:54:34.360Z[UTC]."""
    seconds, nanos = divmod(ns, 10**9)
    fraction = nanos // 10 ** (9 - digits)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{fraction:0{digits}d}Z[UTC]"


def _ns(ts: float) -> int:
    return round(ts * 1000) * 1_000_000  # event times are kept to the millisecond


def _charger_reported_ns(ts: float) -> int:
    """The charger reports once a minute, always at the same second: the latest report before ``ts``."""
    minute = math.floor((ts - CHARGER_REPORT_PHASE_NS / 1e9) / 60)
    return minute * 60 * 10**9 + CHARGER_REPORT_PHASE_NS


# --- EV charger ----------------------------------------------------------------------------------


def ev_status(ts: float) -> JSON:
    state = sim.charger_state(ts)
    session = state.session
    kwh = state.session_energy_wh / 1000
    session_d = {
        "plg_in_at": _iso_utc(_ns(session.plugged_in_at)) if session else None,
        "plg_out_at": _iso_utc(_ns(session.unplugged_at)) if session and ts >= session.unplugged_at else None,
        "strt_chrg": round(session.charging_from * 1000) if session and ts >= session.charging_from else None,
        "e_c": round(state.session_energy_wh, 2),
        "miles": round(kwh * MILES_PER_KWH, 2),
        "session_cost": round(kwh * SESSION_PRICE_PER_KWH, 2),
        "charge_level": sim.EV_CHARGE_LEVEL_A if state.charging else None,
    }
    connector = {
        "connectorId": 1,
        "connectorStatusType": state.connector_status,
        "connectorStatusInfo": "EVConnected" if state.plugged_in else "EVDisconnected",
        "connectorStatusReason": "GroundFailure" if state.faulted else "",
        "safeLimitState": 0,
        "dlbActive": False,
        "pluggedIn": state.plugged_in,
    }
    charger = {
        "sn": sim.CHARGER_SERIAL,
        "name": CHARGER_NAME,
        "connected": True,
        "pluggedIn": state.plugged_in,
        "charging": state.charging,
        "faulted": state.faulted,
        "mode": 0,
        "commissioned": 1,
        "offGrid": "ON_GRID",
        "lst_rpt_at": _iso_utc(_charger_reported_ns(ts)),
        # A short connectivity drop once a week, so the field always holds a past time.
        "offlineAt": _iso_utc(_ns(ts // 604800 * 604800 - 3 * 86400 + 11570.897)),
        "sch_d": {"status": 0, "info": []},
        "session_d": session_d,
        "connectors": [connector],
    }
    return {
        "meta": {"serverTimeStamp": int(ts * 1000)},
        "data": {"site": sim.SITE_ID, "tz": sim.TZ_NAME, "chargers": [charger]},
        "error": {},
    }


def ev_summary(ts: float) -> JSON:
    interfaces = [
        "netmask=255.255.255.0,mac_addr=00:1d:c0:00:00:01,interface_name=eth0,connectionStatus=1,"
        "ipaddr=192.0.2.10,bootproto=dhcp,gateway=192.0.2.1",
        "netmask=,mac_addr=00:1d:c0:00:00:02,interface_name=mlan0,connectionStatus=0,ipaddr=,"
        "bootproto=dhcp,gateway=",
    ]
    charger = {
        "serialNumber": sim.CHARGER_SERIAL,
        "displayName": CHARGER_NAME,
        "modelName": "IQ-EVSE-EU-3032",
        "sku": "IQ-EVSE-EU-3032-0105-1300",
        "partNumber": "865-02030 09",
        "firmwareVersion": "25.37.1.14",
        "processorBoardVersion": "2.0.713.0",
        "status": "NORMAL",
        "isConnected": True,
        "activeConnection": "ethernet",
        "reportingInterval": REPORT_SECONDS,
        "maxCurrent": sim.EV_MAX_CURRENT_A,
        "breakerRating": 40,
        "ratedCurrent": str(sim.EV_MAX_CURRENT_A),
        "operatingVoltage": str(sim.EV_VOLTAGE_V),
        "chargeLevelDetails": {
            "min": "6",
            "max": str(sim.EV_MAX_CURRENT_A),
            "granularity": "1",
            "defaultChargeLevel": "disabled",
        },
        "dlbEnabled": 0,
        "phaseMode": sim.EV_PHASES,
        "phaseCount": sim.EV_PHASES,
        "lifeTimeConsumption": round(sim.ev_lifetime_wh(ts), 2),
        "lastReportedAt": _iso_utc(_charger_reported_ns(ts), digits=9),
        "networkConfig": json.dumps(interfaces),
        "wifiConfig": "status=disconnected, ssid=, rssi=",
        "cellularConfig": "status=unavailable, imei=, signal_strength=",
    }
    return {"meta": {"serverTimeStamp": int(ts * 1000), "rowCount": 1}, "data": [charger], "error": {}}


# --- site energy ---------------------------------------------------------------------------------


def visible_fractions(start: int, count: int, ts: float) -> list[float]:
    """How much of each interval's final energy the cloud shows at ``ts``: all of it once settled, the
    part so far for the open interval and, for the newest closed one in its first five minutes, a share
    growing from a third (the last minutes' uploads arrive late). Intervals not yet begun are absent."""
    fractions = []
    for i in range(count):
        begin = start + i * sim.INTERVAL_SECONDS
        if begin >= ts:
            break
        age = ts - begin - sim.INTERVAL_SECONDS
        if age < 0:
            fractions.append((ts - begin) / sim.INTERVAL_SECONDS)
        elif age < PROVISIONAL_SECONDS:
            fractions.append(1 / 3 + 2 / 3 * age / PROVISIONAL_SECONDS)
        else:
            fractions.append(1.0)
    return fractions


def _stats_item(day: sim.SimulatedDay, fractions: list[float], ts: float) -> JSON:
    shown = day.intervals[: len(fractions)]
    rows = [sim.whole_wh(interval, fraction) for interval, fraction in zip(shown, fractions, strict=True)]
    arrays = {name: [row[name] for row in rows] for name in sim.CHANNELS}
    soc = [round(interval.soc) for interval in shown]
    if fractions and ts < day.start_time + len(fractions) * sim.INTERVAL_SECONDS:
        soc[-1] = round(sim.battery_soc(ts))  # the open interval shows the state of charge now
    totals: dict[str, int] = {name: sum(arrays[name]) for name in _ENERGY_ARRAYS}
    # Meaningless like the live ones (a sum of percentages, a mix of units): clients must ignore them.
    totals["soc"] = sum(soc)
    totals["grid_import"] = totals["import"] + totals["soc"]
    if not any(arrays["production"]):
        arrays["production"] = []  # before the panels wake up, the live service sends no production at all
    placeholder = [0] * len(rows)
    return {
        "start_time": day.start_time,
        "interval_length": sim.INTERVAL_SECONDS,
        **{name: arrays[name] for name in _ENERGY_ARRAYS},
        "soc": soc,
        **{name: arrays.get(name, placeholder if name in _PLACEHOLDERS else []) for name in _FLOW_ARRAYS},
        "totals": totals,
    }


def _empty_item(day: date, totals: JSON) -> JSON:
    """A day before the site reported (totals of zeros), or one not yet processed (no totals): every array
    empty."""
    return {
        "start_time": sim.day_start(day),
        "interval_length": sim.INTERVAL_SECONDS,
        **{name: [] for name in (*_ENERGY_ARRAYS, "soc", *_FLOW_ARRAYS)},
        "totals": totals,
    }


def unprocessed(day: date, ts: float) -> bool:
    """Yesterday, for a while after midnight, before the cloud has processed it."""
    midnight = sim.day_start(day + timedelta(days=1))
    return midnight <= ts < midnight + UNPROCESSED_SECONDS


@lru_cache(maxsize=4096)
def _settled_item_json(day: date) -> str:
    # Settled days never change, and as JSON text a day costs a few kB of memory rather than tens.
    return to_json(stats_item(day, math.inf))


def stats_item(day: date, ts: float) -> JSON:
    """The stats item of ``day`` as seen at ``ts`` by ``daily_energy`` (``today`` has its own day)."""
    if day < sim.SITE_START:
        return _empty_item(day, dict.fromkeys(_ENERGY_ARRAYS, 0))
    if unprocessed(day, ts):
        return _empty_item(day, {})
    simulated = sim.simulate_day(day)
    return _stats_item(simulated, visible_fractions(simulated.start_time, len(simulated.intervals), ts), ts)


def stats_item_json(day: date, ts: float) -> str:
    """:func:`stats_item` as JSON text, from the cache once the day can no longer change."""
    settled = sim.day_start(day + timedelta(days=1)) + max(PROVISIONAL_SECONDS, UNPROCESSED_SECONDS)
    if day >= sim.SITE_START and settled <= ts:
        return _settled_item_json(day)
    return to_json(stats_item(day, ts))


def _consumption_wh(start: float, end: float) -> float:
    """Consumption between two instants, sharing out intervals in proportion to their overlap."""
    total = 0.0
    day = max(sim.local_day(start), sim.SITE_START)
    while day <= sim.local_day(end):
        simulated = sim.simulate_day(day)
        for i, interval in enumerate(simulated.intervals):
            begin = simulated.start_time + i * sim.INTERVAL_SECONDS
            overlap = min(end, begin + sim.INTERVAL_SECONDS) - max(start, begin)
            if overlap > 0:
                consumed = interval.solar_home + interval.battery_home + interval.grid_home
                total += consumed * overlap / sim.INTERVAL_SECONDS
        day += timedelta(days=1)
    return total


def today(ts: float) -> JSON:
    soc = sim.battery_soc(ts)
    last_24h_wh = _consumption_wh(ts - 86400, ts)
    usable_wh = max(0.0, soc - sim.BACKUP_RESERVE_PERCENT) / 100 * sim.BATTERY_CAPACITY_WH
    day = sim.local_day(ts)
    return {
        "system_id": int(sim.SITE_ID),
        # The live service's today: the date of today's stats item, not the site's first day.
        "start_date": day.isoformat(),
        "end_date": day.isoformat(),
        "last_report_date": int(ts // REPORT_SECONDS * REPORT_SECONDS),
        "siteStatus": hw.site_status(ts),
        "battery_details": {
            "aggregate_soc": round(soc),
            # Minutes the energy above the reserve lasts at the last day's mean consumption.
            "estimated_time": round(usable_wh / max(last_24h_wh / 24, 1.0) * 60),
            "last_24h_consumption": round(last_24h_wh / 1000, 2),
        },
        "batteryConfig": {
            "battery_backup_percentage": sim.BACKUP_RESERVE_PERCENT,
            "very_low_soc": sim.VERY_LOW_SOC_PERCENT,
            "charge_from_grid": hw.CHARGE_FROM_GRID,
            "usage": hw.PROFILE,
        },
        # A list, as the live service sends it; serial_num is the gateway the live stream is asked for.
        "connectionDetails": [
            {"ethernet": True, "wifi": False, "cellular": False, "serial_num": sim.GATEWAY_SERIAL}
        ],
        "stats": [stats_item(day, ts)],
    }


def daily_energy_json(ts: float, first: date, last: date | None) -> str:
    """JSON text of ``daily_energy``: assembled from per-day text, so years of history answer fast."""
    last = min(last or sim.local_day(ts), sim.local_day(ts))
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    items = ",".join(stats_item_json(day, ts) for day in days)
    return f'{{"system_id":{int(sim.SITE_ID)},"stats":[{items}]}}'


def lifetime_energy(ts: float) -> JSON:
    """One value per day from the site's first day through today so far, in Wh; ``null`` for yesterday
    while it is not yet processed."""
    today_ = sim.local_day(ts)
    days = [sim.SITE_START + timedelta(days=i) for i in range((today_ - sim.SITE_START).days)]
    totals: list[Mapping[str, int] | None] = [
        None if unprocessed(day, ts) else sim.day_totals(day) for day in days
    ]
    so_far = stats_item(today_, ts)  # today's entry grows during the day, as the live one does
    totals.append({channel: sum(so_far.get(channel) or []) for channel in sim.CHANNELS})
    return {
        "system_id": int(sim.SITE_ID),
        "start_date": sim.SITE_START.isoformat(),
        "last_report_date": int(ts // REPORT_SECONDS * REPORT_SECONDS),
        **{channel: [day[channel] if day else None for day in totals] for channel in sim.CHANNELS},
        **{name: [] for name in (*_NOT_MEASURED, *_PLACEHOLDERS)},
    }


def latest_power(ts: float) -> JSON:
    """Mean production power of the interval holding the latest report ("N/A" before the site began)."""
    reported = ts // REPORT_SECONDS * REPORT_SECONDS
    day = sim.local_day(reported)
    if day < sim.SITE_START:
        return {"latest_power": {"value": "N/A", "units": "W", "precision": 0, "time": "N/A"}}
    simulated = sim.simulate_day(day)
    interval = simulated.intervals[int((reported - simulated.start_time) // sim.INTERVAL_SECONDS)]
    watts = (interval.solar_home + interval.solar_battery + interval.solar_grid) * 3600 / sim.INTERVAL_SECONDS
    return {"latest_power": {"value": round(watts), "units": "W", "precision": 0, "time": int(reported)}}


def search_sites() -> JSON:
    return {
        "sites": [
            {
                "id": int(sim.SITE_ID),
                "title": SITE_TITLE,
                "path": f"/web/{sim.SITE_ID}?v=3.4.0",
                "favourite": False,
            }
        ]
    }
