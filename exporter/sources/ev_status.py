"""EV charger status — ``GET /service/evse_controller/<site_id>/ev_chargers/status``.

Refreshed every 60 s (30 s while a charger of the site is charging). Sample output::

    enphase_ev_charger_charging{serial="EV0000000001",site_id="1234567"} 1.0
    enphase_ev_charger_connector_status{connector="1",serial="EV0000000001",...,status="charging"} 1.0
    enphase_ev_charger_session_energy_joules{serial="EV0000000001",site_id="1234567"} 1.2751596e+07

Two shapes are accepted:

- live: ``{"meta": {"serverTimeStamp": ms}, "data": {"tz": …, "chargers": [{…, "connectors": [...]}]}}``
- legacy (the seeds): ``{"evChargerData": [{…, "connectorStatusType": …, "chargingLevel": …}], "ts": s}``

Units, per field: ``session_d.e_c`` is Wh in every live capture (the seeds' "small means kWh" rule misreads
short sessions), ``strt_chrg`` and ``serverTimeStamp`` are epoch ms, the legacy ``start_time``/``plg_in_at``/
``ts`` are epoch s, and ``*_at`` fields are ISO strings with a ``[UTC]`` suffix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.sources.source import Source
from exporter.values import WH_TO_JOULES, Parsed, PayloadError, Reader, require_object

ENDPOINT = "ev_status"

CONNECTOR_STATES = (
    "available",
    "preparing",
    "charging",
    "finishing",
    "suspended",
    "suspended_ev",
    "suspended_evse",
    "faulted",
    "unavailable",
    "reserved",
    "unknown",
)


CHARGE_MODES = ("manual", "scheduled", "green", "smart", "unknown")
# sch_d.info[].type of an active schedule, and the seeds' sch_d.mode, as charge modes.
_SCHEDULE_TYPES = {
    "greencharging": "green",
    "green": "green",
    "scheduledcharging": "scheduled",
    "scheduled": "scheduled",
    "schedule": "scheduled",
    "smartcharging": "smart",
    "smart": "smart",
    "immediate": "manual",
    "manualcharging": "manual",
    "manual": "manual",
}


@dataclass(frozen=True, slots=True)
class Connector:
    connector_id: str
    status: str  # one of CONNECTOR_STATES


@dataclass(frozen=True, slots=True)
class ChargerStatus:
    serial: str
    name: str | None
    connected: bool | None
    plugged_in: bool | None
    charging: bool | None
    faulted: bool | None
    connectors: tuple[Connector, ...]
    charging_current_setpoint_amperes: float | None  # null while idle in the live shape
    session_energy_joules: float | None  # current or last session: session_d survives unplugging
    session_plugged_in_timestamp: float | None
    session_start_timestamp: float | None
    session_cost: float | None
    last_report_timestamp: float | None
    schedule_mode: str | None = None  # the charge mode sch_d tells (see _schedule_mode); None: it cannot


@dataclass(frozen=True, slots=True)
class EvStatus:
    server_timestamp: float | None
    time_zone: str | None
    chargers: tuple[ChargerStatus, ...]

    @property
    def any_charging(self) -> bool:
        return any(charger.charging for charger in self.chargers)


def path(site_id: str) -> str:
    return f"/service/evse_controller/{site_id}/ev_chargers/status"


def parse(payload: Any) -> Parsed[EvStatus]:
    body = require_object(payload, "ev_status")
    reader = Reader()
    if "evChargerData" in body:  # legacy shape
        chargers = reader.objects(body, "evChargerData", "ev_status")
        server_time = reader.timestamp(body, "ts", "ev_status", epoch_unit="s")
        time_zone = None
    else:
        data = body.get("data")
        if not isinstance(data, Mapping) or not isinstance(data.get("chargers"), list):
            raise PayloadError("ev_status: neither data.chargers[] nor evChargerData[] in the payload")
        chargers = reader.objects(data, "chargers", "data")
        meta = reader.mapping(body, "meta", "ev_status")
        server_time = reader.timestamp(meta, "serverTimeStamp", "meta", epoch_unit="ms")
        time_zone = reader.text(data, "tz", "data")
    parsed = []
    for index, raw in enumerate(chargers):
        charger = _parse_charger(raw, f"chargers[{index}]", reader)
        if charger is not None:
            parsed.append(charger)
    return Parsed(EvStatus(server_time, time_zone, tuple(parsed)), tuple(reader.problems))


def _parse_charger(raw: Mapping[str, Any], where: str, reader: Reader) -> ChargerStatus | None:
    serial = reader.text(raw, "sn", where, required=True)
    if not serial:
        return None  # without a serial the series could not be told apart; the problem is counted
    session = reader.mapping(raw, "session_d", where)
    here = f"{where}.session_d"
    setpoint = reader.number(session, "charge_level", here, minimum=0)
    if setpoint is None:
        setpoint = reader.number(raw, "chargingLevel", where, minimum=0)  # legacy: on the charger itself
    start = reader.timestamp(session, "strt_chrg", here, epoch_unit="ms")
    if start is None:
        start = reader.timestamp(session, "start_time", here, epoch_unit="s")  # legacy
    cost = reader.number(session, "session_cost", here)
    if cost is None:
        cost = reader.number(session, "cost", here)  # legacy
    return ChargerStatus(
        serial=serial,
        name=reader.text(raw, "name", where),
        connected=reader.flag(raw, "connected", where, required=True),
        plugged_in=reader.flag(raw, "pluggedIn", where, required=True),
        charging=reader.flag(raw, "charging", where, required=True),
        faulted=reader.flag(raw, "faulted", where, required=True),
        connectors=_parse_connectors(raw, where, reader),
        charging_current_setpoint_amperes=setpoint,
        session_energy_joules=reader.number(session, "e_c", here, scale=WH_TO_JOULES, minimum=0),
        session_plugged_in_timestamp=reader.timestamp(session, "plg_in_at", here, epoch_unit="s"),
        session_start_timestamp=start,
        session_cost=cost,
        last_report_timestamp=reader.timestamp(raw, "lst_rpt_at", where, epoch_unit="ms"),
        schedule_mode=_schedule_mode(raw.get("sch_d"), f"{where}.sch_d", reader),
    )


def _schedule_mode(raw: Any, where: str, reader: Reader) -> str | None:
    """The charge mode ``sch_d`` tells: an active schedule's type (live: ``status`` 1 and ``info[].type``
    such as "greencharging"); no active schedule is manual charging (the charger charges when plugged in);
    the seeds' ``{"enabled": false, "mode": "IMMEDIATE"}`` is manual too. None where it cannot tell (no
    ``sch_d``). The numeric ``mode`` beside it has no documented meaning and is not read."""
    if not isinstance(raw, Mapping):
        return None
    if "status" in raw:
        active = reader.flag(raw, "status", where)
        if active is None:
            return None
        if not active:
            return "manual"
        kinds = {
            _SCHEDULE_TYPES.get(str(item.get("type", "")).strip().lower(), "unknown")
            for item in reader.objects(raw, "info", where)
        }
        if len(kinds) != 1 or "unknown" in kinds:
            reader.problem(f"{where}.info", "no single known schedule type")
            return "unknown"
        return kinds.pop()
    mode = raw.get("mode")
    if isinstance(mode, str):
        known = _SCHEDULE_TYPES.get(mode.strip().lower().replace("_", ""))
        if known is None:
            reader.problem(f"{where}.mode", f"unknown schedule mode {mode[:40]!r}")
        return known or "unknown"
    return None


def _parse_connectors(raw: Mapping[str, Any], where: str, reader: Reader) -> tuple[Connector, ...]:
    if "connectors" not in raw:  # legacy: one connector, its state on the charger
        if "connectorStatusType" not in raw:
            return ()
        return (Connector("1", _connector_state(raw.get("connectorStatusType"), f"{where}", reader)),)
    connectors = []
    for index, item in enumerate(reader.objects(raw, "connectors", where)):
        here = f"{where}.connectors[{index}]"
        connector_id = reader.text(item, "connectorId", here) or str(index + 1)
        connectors.append(
            Connector(connector_id, _connector_state(item.get("connectorStatusType"), here, reader))
        )
    return tuple(connectors)


def _connector_state(raw: Any, where: str, reader: Reader) -> str:
    state = raw.strip().lower() if isinstance(raw, str) else None
    if state in CONNECTOR_STATES and state != "unknown":
        return state
    reader.problem(f"{where}.connectorStatusType", f"unknown connector status {raw!r}")
    return "unknown"


# Fetched by the poller itself (exporter.poller) and rendered by the renderers' own code.
SOURCE = Source(
    name="ev_status",
    reads="ev_chargers/status: each charger's state, connector and session",
    default_interval=60,
    minimum_interval=15,
    first_run=1.0,
)
