"""Deterministic model of the demo site: solar, home load, one IQ Battery and one IQ EV Charger.

Every value is a pure function of a local day or a Unix timestamp, so the same instant always gives the
same answer, whichever order the questions come in. Pseudo-randomness comes from ``random.Random``
instances seeded with a string that names the quantity and the day; string seeds are hashed with
SHA-512, so the values do not depend on PYTHONHASHSEED or on anything else drawn elsewhere.

Energies are floats in Wh per 15-minute interval; :func:`whole_wh` turns an interval into the whole-Wh
channels the cloud reports.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

SITE_ID = "1234567"
CHARGER_SERIAL = "EV0000000001"
GATEWAY_SERIAL = "122100004242"  # the site's gateway: the live stream is asked for by its serial
TZ_NAME = "Europe/Amsterdam"
TZ = ZoneInfo(TZ_NAME)
SITE_START = date(2023, 8, 10)
INTERVAL_SECONDS = 900

PEAK_POWER_W = 6000.0
LATITUDE = math.radians(52.37)
LONGITUDE_DEG = 4.89
BASE_LOAD_W = 300.0

BATTERY_CAPACITY_WH = 10_000.0
BATTERY_MAX_POWER_W = 3840.0
BACKUP_RESERVE_PERCENT = 20
VERY_LOW_SOC_PERCENT = 10
FIRST_MIDNIGHT_SOC_PERCENT = 50.0

EV_PHASES = 3
EV_VOLTAGE_V = 230
EV_MAX_CURRENT_A = 32
EV_CHARGE_LEVEL_A = 16
EV_POWER_W = float(EV_PHASES * EV_VOLTAGE_V * EV_CHARGE_LEVEL_A)
EV_PREPARING_SECONDS = 60.0

_INTERVAL_HOURS = INTERVAL_SECONDS / 3600
_BATTERY_STEP_WH = BATTERY_MAX_POWER_W * _INTERVAL_HOURS
_RESERVE_WH = BATTERY_CAPACITY_WH * BACKUP_RESERVE_PERCENT / 100

# Channel order of the per-day totals; the aggregates are sums of flows (see whole_wh).
CHANNELS = (
    "production",
    "consumption",
    "import",
    "export",
    "charge",
    "discharge",
    "solar_home",
    "solar_battery",
    "solar_grid",
    "battery_home",
    "grid_battery",
    "grid_home",
    "evse",
)


# --- calendar ------------------------------------------------------------------------------------


def local_day(ts: float) -> date:
    return datetime.fromtimestamp(ts, TZ).date()


def day_start(day: date) -> int:
    """Unix time of local midnight starting ``day``."""
    return int(datetime.combine(day, time(), TZ).timestamp())


def interval_count(day: date) -> int:
    """92, 96 or 100: DST days are 23 or 25 hours long."""
    return (day_start(day + timedelta(days=1)) - day_start(day)) // INTERVAL_SECONDS


def _wall_clock(day: date, hours: float) -> float:
    # Aware-datetime arithmetic is wall-clock arithmetic, so 18.5 means 18:30 local even on DST days.
    return (datetime.combine(day, time(), TZ) + timedelta(hours=hours)).timestamp()


def _summerness(day: date) -> float:
    """1 at the June solstice, 0 at the December one."""
    return (1 + math.cos(2 * math.pi * (day.timetuple().tm_yday - 172) / 365.25)) / 2


# --- solar and home load -------------------------------------------------------------------------


def _clear_sky_w(day: date, midpoints: list[float]) -> list[float]:
    """Output of the array under a clear sky; the shape follows the sun's elevation, so day length and
    peak follow the season."""
    declination = math.radians(23.44) * math.sin(2 * math.pi * (day.timetuple().tm_yday - 81) / 365)
    sin_part = math.sin(LATITUDE) * math.sin(declination)
    cos_part = math.cos(LATITUDE) * math.cos(declination)
    watts = []
    for ts in midpoints:
        hour_angle = math.radians(15 * ((ts % 86400) / 3600 + LONGITUDE_DEG / 15 - 12))
        sin_elevation = max(0.0, sin_part + cos_part * math.cos(hour_angle))
        # The (1.6 - 0.6 s) term stands in for panel tilt, which favours a low winter sun.
        watts.append(PEAK_POWER_W * 0.7 * sin_elevation * (1.6 - 0.6 * sin_elevation))
    return watts


def _cloud_factors(day: date, count: int) -> list[float]:
    """Share of clear-sky output per interval: a weather type for the day, then a random walk."""
    rng = random.Random(f"clouds/{day.isoformat()}")
    summer = _summerness(day)
    roll = rng.random()
    if roll < 0.2 + 0.25 * summer:
        base, spread = rng.uniform(0.85, 1.0), 0.04  # clear
    elif roll < 0.65 + 0.1 * summer:
        base, spread = rng.uniform(0.4, 0.8), 0.25  # broken clouds
    else:
        base, spread = rng.uniform(0.12, 0.35), 0.07  # overcast
    walk, factors = 0.0, []
    for _ in range(count):
        walk = 0.6 * walk + rng.gauss(0, 0.8)
        factors.append(min(1.05, max(0.05, base + spread * walk)))
    return factors


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-(((hour - centre) / width) ** 2) / 2)


def _local_hours(start: int, midpoints: list[float]) -> tuple[float, ...]:
    if len(midpoints) == 96:  # no DST change that day: the wall clock runs with Unix time
        return tuple((ts - start) / 3600 for ts in midpoints)
    local = [datetime.fromtimestamp(ts, TZ) for ts in midpoints]
    return tuple(t.hour + t.minute / 60 + t.second / 3600 for t in local)


@lru_cache(maxsize=8)
def _load_shape(weekend: bool, hours: tuple[float, ...]) -> tuple[tuple[float, float], ...]:
    """Per interval, the part of the home's load that does not and the part that does grow in winter."""
    return tuple(
        (
            600 * _bump(hour, 8.75 if weekend else 7.0, 0.6)
            + (500 if weekend else 150) * _bump(hour, 12.75, 1.2)
            + 300 * _bump(hour, 21.25, 1.1),
            BASE_LOAD_W + 800 * _bump(hour, 18.5, 0.9),
        )
        for hour in hours
    )


def _house_load_w(day: date, hours: tuple[float, ...]) -> list[float]:
    """Mean power of the home without the EV: base load, morning and evening peaks, appliances."""
    rng = random.Random(f"load/{day.isoformat()}")
    winter = 1 + 0.25 * (1 - _summerness(day))
    loads = []
    for hour, (steady, seasonal) in zip(hours, _load_shape(day.weekday() >= 5, hours), strict=True):
        watts = (steady + seasonal * winter) * rng.uniform(0.85, 1.2)
        if 7 <= hour < 23 and rng.random() < 0.04:
            watts += rng.uniform(800, 2000)  # kettle, oven, washing machine
        loads.append(watts)
    return loads


# --- EV charger ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargingSession:
    """One plug-in of the car. Charging runs at EV_POWER_W during ``segments``; a fault splits them."""

    plugged_in_at: float
    unplugged_at: float
    segments: tuple[tuple[float, float], ...]
    fault: tuple[float, float] | None

    @property
    def charging_from(self) -> float:
        return self.segments[0][0]

    @property
    def charging_until(self) -> float:
        return self.segments[-1][1]

    def energy_wh(self, start: float, end: float) -> float:
        """Energy delivered between ``start`` and ``end``."""
        seconds = sum(max(0.0, min(end, b) - max(start, a)) for a, b in self.segments)
        return EV_POWER_W * seconds / 3600


@lru_cache(maxsize=4096)
def sessions_for_day(day: date) -> tuple[ChargingSession, ...]:
    """Sessions whose car is plugged in on ``day``, in order: most evenings from 18:00-19:30 until the
    next morning (8-20 kWh), on some weekend days also around midday (5-12 kWh). On about one day in six
    the day's last session has a ~15 minute fault while charging."""
    if day < SITE_START:
        return ()
    rng = random.Random(f"ev/{day.isoformat()}")
    # Draw everything up front so each choice keeps its value whatever the others decide.
    midday = day.weekday() >= 5 and rng.random() < 0.4
    midday_plan = (rng.uniform(11.0, 12.5), rng.uniform(5000, 12000), day, rng.uniform(15.0, 16.5))
    evening = rng.random() < 0.7
    evening_plan = (
        rng.uniform(18.0, 19.5),
        rng.uniform(8000, 20000),
        day + timedelta(days=1),
        rng.uniform(7.1, 7.9),
    )
    faulted = rng.random() < 1 / 6
    fault_at, fault_seconds = rng.uniform(0.25, 0.6), rng.uniform(12, 18) * 60

    plans = [plan for wanted, plan in ((midday, midday_plan), (evening, evening_plan)) if wanted]
    sessions = []
    for index, (plug_hour, target_wh, out_day, out_hour) in enumerate(plans):
        plugged_in = _wall_clock(day, plug_hour)
        start = plugged_in + EV_PREPARING_SECONDS
        duration = target_wh / EV_POWER_W * 3600
        fault = None
        segments: tuple[tuple[float, float], ...] = ((start, start + duration),)
        if faulted and index == len(plans) - 1:
            fault = (start + fault_at * duration, start + fault_at * duration + fault_seconds)
            segments = ((start, fault[0]), (fault[1], fault[1] + duration * (1 - fault_at)))
        sessions.append(ChargingSession(plugged_in, _wall_clock(out_day, out_hour), segments, fault))
    return tuple(sessions)


def session_at(ts: float) -> ChargingSession | None:
    """The current or last session at ``ts`` (the cloud keeps showing the last one after unplugging)."""
    day = local_day(ts)
    for back in range(31):
        started = [s for s in sessions_for_day(day - timedelta(days=back)) if s.plugged_in_at <= ts]
        if started:
            return started[-1]
    return None


@dataclass(frozen=True, slots=True)
class ChargerState:
    session: ChargingSession | None
    plugged_in: bool
    charging: bool
    faulted: bool
    connector_status: str
    session_energy_wh: float


def charger_state(ts: float) -> ChargerState:
    session = session_at(ts)
    if session is None:
        return ChargerState(None, False, False, False, "AVAILABLE", 0.0)
    energy = session.energy_wh(session.plugged_in_at, ts)
    if ts >= session.unplugged_at:
        return ChargerState(session, False, False, False, "AVAILABLE", energy)
    faulted = session.fault is not None and session.fault[0] <= ts < session.fault[1]
    charging = any(a <= ts < b for a, b in session.segments)
    if faulted:
        status = "FAULTED"
    elif charging:
        status = "CHARGING"
    elif ts < session.charging_from:
        status = "PREPARING"
    else:
        status = "SUSPENDED_EV"  # the car has what it asked for and stays plugged in
    return ChargerState(session, True, charging, faulted, status, energy)


def _ev_energy_wh(day: date, start: float, end: float) -> float:
    sessions = sessions_for_day(day - timedelta(days=1)) + sessions_for_day(day)
    return sum(s.energy_wh(start, end) for s in sessions)


@lru_cache(maxsize=8192)
def _ev_day_wh(day: date) -> float:
    return _ev_energy_wh(day, day_start(day), day_start(day + timedelta(days=1)))


def ev_lifetime_wh(ts: float) -> float:
    """All energy the charger delivered from the site's first day up to ``ts``; never decreases."""
    today = local_day(ts)
    past = sum(_ev_day_wh(SITE_START + timedelta(days=i)) for i in range((today - SITE_START).days))
    return past + _ev_energy_wh(today, day_start(today), ts)


# --- the site's energy flows -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntervalEnergy:
    """Settled energy of one interval in Wh, by flow; ``soc`` is the battery's % at the interval's end.
    Nothing flows from the grid into the battery or from the battery to the grid (self-consumption)."""

    solar_home: float
    solar_battery: float
    solar_grid: float
    battery_home: float
    grid_home: float
    evse: float
    soc: float


@dataclass(frozen=True, slots=True)
class SimulatedDay:
    day: date
    start_time: int
    soc_at_start: float
    intervals: tuple[IntervalEnergy, ...]
    stored_wh_at_end: float


def _ev_interval_wh(day: date, start: int, count: int) -> list[float]:
    energies = [0.0] * count
    for session in sessions_for_day(day - timedelta(days=1)) + sessions_for_day(day):
        for begin, end in session.segments:
            first = max(0, int((begin - start) // INTERVAL_SECONDS))
            last = min(count - 1, int((end - start) // INTERVAL_SECONDS))
            for i in range(first, last + 1):
                interval_start = start + i * INTERVAL_SECONDS
                overlap = min(end, interval_start + INTERVAL_SECONDS) - max(begin, interval_start)
                energies[i] += EV_POWER_W * max(0.0, overlap) / 3600
    return energies


def _integrate(day: date, stored_wh: float) -> SimulatedDay:
    """Runs the battery through ``day`` from ``stored_wh`` at midnight: it takes solar surplus and covers
    the deficit down to the reserve, each within its power limit; the grid takes or gives the rest."""
    start = day_start(day)
    count = interval_count(day)
    midpoints = [start + (i + 0.5) * INTERVAL_SECONDS for i in range(count)]
    solar_w = _clear_sky_w(day, midpoints)
    clouds = _cloud_factors(day, count)
    house_w = _house_load_w(day, _local_hours(start, midpoints))
    evse_wh = _ev_interval_wh(day, start, count)
    soc_at_start = stored_wh / BATTERY_CAPACITY_WH * 100
    intervals = []
    for i in range(count):
        solar = solar_w[i] * clouds[i] * _INTERVAL_HOURS
        load = house_w[i] * _INTERVAL_HOURS + evse_wh[i]
        direct = min(solar, load)
        to_battery = min(solar - direct, _BATTERY_STEP_WH, BATTERY_CAPACITY_WH - stored_wh)
        from_battery = min(load - direct, _BATTERY_STEP_WH, max(0.0, stored_wh - _RESERVE_WH))
        stored_wh += to_battery - from_battery
        intervals.append(
            IntervalEnergy(
                solar_home=direct,
                solar_battery=to_battery,
                solar_grid=solar - direct - to_battery,
                battery_home=from_battery,
                grid_home=load - direct - from_battery,
                evse=evse_wh[i],
                soc=stored_wh / BATTERY_CAPACITY_WH * 100,
            )
        )
    return SimulatedDay(day, start, soc_at_start, tuple(intervals), stored_wh)


def _channels(
    solar_home: int, solar_battery: int, solar_grid: int, battery_home: int, grid_home: int, evse: int
) -> dict[str, int]:
    return {
        "production": solar_home + solar_battery + solar_grid,
        "consumption": solar_home + battery_home + grid_home,
        "import": grid_home,
        "export": solar_grid,
        "charge": solar_battery,
        "discharge": battery_home,
        "solar_home": solar_home,
        "solar_battery": solar_battery,
        "solar_grid": solar_grid,
        "battery_home": battery_home,
        "grid_battery": 0,
        "grid_home": grid_home,
        "evse": evse,
    }


def whole_wh(interval: IntervalEnergy, fraction: float = 1.0) -> dict[str, int]:
    """The interval's channels in whole Wh, scaled by ``fraction`` (for intervals still filling up).

    Only the flows are rounded; the aggregates are sums of rounded flows, so production + import +
    discharge == consumption + export + charge holds exactly in every interval."""
    return _channels(
        round(interval.solar_home * fraction),
        round(interval.solar_battery * fraction),
        round(interval.solar_grid * fraction),
        round(interval.battery_home * fraction),
        round(interval.grid_home * fraction),
        round(interval.evse * fraction),
    )


def _settled_totals(day: SimulatedDay) -> dict[str, int]:
    """The same as summing :func:`whole_wh` over the day, since the aggregates are sums of flows."""
    return _channels(
        *(
            sum(round(getattr(interval, flow)) for interval in day.intervals)
            for flow in ("solar_home", "solar_battery", "solar_grid", "battery_home", "grid_home", "evse")
        )
    )


class _History:
    """Walks the battery forward from the site's first midnight, so each midnight's state of charge is
    the previous day's end and the SOC curve has no jumps. Only the midnight states and the daily totals
    are kept: the walk over the whole history (about a thousand days) is paid once per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._midnight_wh = [BATTERY_CAPACITY_WH * FIRST_MIDNIGHT_SOC_PERCENT / 100]
        self._totals: list[dict[str, int]] = []

    def _walk_through(self, index: int) -> None:
        with self._lock:
            while len(self._totals) <= index:
                day = _integrate(SITE_START + timedelta(days=len(self._totals)), self._midnight_wh[-1])
                self._totals.append(_settled_totals(day))
                self._midnight_wh.append(day.stored_wh_at_end)

    def midnight_wh(self, day: date) -> float:
        index = (day - SITE_START).days
        self._walk_through(index - 1)
        return self._midnight_wh[index]

    def totals(self, day: date) -> dict[str, int]:
        index = (day - SITE_START).days
        self._walk_through(index)
        return self._totals[index]


_HISTORY = _History()


@lru_cache(maxsize=64)
def simulate_day(day: date) -> SimulatedDay:
    """The whole of ``day`` (settled values); callers show only the part up to now."""
    if day < SITE_START:
        raise ValueError(f"{day} is before the site's first day {SITE_START}")
    return _integrate(day, _HISTORY.midnight_wh(day))


def day_totals(day: date) -> Mapping[str, int]:
    """Settled whole-Wh totals of ``day`` per channel: the sums of its intervals' :func:`whole_wh`."""
    if day < SITE_START:
        raise ValueError(f"{day} is before the site's first day {SITE_START}")
    return dict(_HISTORY.totals(day))


def warm_up(day: date) -> None:
    """Walk the history up to ``day`` now, so that the first answers about it need not wait for the walk."""
    if day > SITE_START:
        _HISTORY.totals(day - timedelta(days=1))


def battery_soc(ts: float) -> float:
    """State of charge in % at ``ts``, interpolated within the interval."""
    day = local_day(ts)
    if day < SITE_START:
        return FIRST_MIDNIGHT_SOC_PERCENT
    simulated = simulate_day(day)
    index, into = divmod(ts - simulated.start_time, INTERVAL_SECONDS)
    index = int(index)
    before = simulated.intervals[index - 1].soc if index else simulated.soc_at_start
    return before + (simulated.intervals[index].soc - before) * into / INTERVAL_SECONDS
