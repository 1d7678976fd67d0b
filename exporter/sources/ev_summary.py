"""EV charger summary.

``GET /service/evse_controller/api/v2/<site_id>/ev_chargers/summary?filter_retired=true``.

Refreshed every 15 minutes: it describes the hardware, which rarely changes. Sample output::

    enphase_ev_charger_info{firmware_version="25.37.1.13",model="IQ-EVSE-EU-3032",name="Garage",...} 1.0
    enphase_ev_charger_charge_level_max_amperes{serial="EV0000000001",site_id="1234567"} 32.0
    enphase_ev_charger_energy_delivered_joules_total{serial="EV0000000001",site_id="1234567"} 4.1e+09

Units, per field: currents are A and ``operatingVoltage`` is V, but ``ratedCurrent``, ``operatingVoltage`` and
``chargeLevelDetails`` arrive as strings; ``lifeTimeConsumption`` is Wh (a lifetime counter);
``lastReportedAt`` is ISO with up to nanoseconds. ``displayName`` is sometimes absent (the status
payload's name is used then).
``networkConfig`` is a string holding a JSON array of ``k=v,k=v`` strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.sources.source import Source
from exporter.values import WH_TO_JOULES, Parsed, PayloadError, Reader, require_object

ENDPOINT = "ev_summary"


@dataclass(frozen=True, slots=True)
class NetworkInterface:
    name: str
    connected: bool | None


@dataclass(frozen=True, slots=True)
class ChargerSummary:
    serial: str
    name: str | None
    model: str | None
    firmware_version: str | None
    max_current_amperes: float | None
    charge_level_min_amperes: float | None
    charge_level_max_amperes: float | None
    operating_voltage_volts: float | None
    phases: float | None
    energy_delivered_joules: float | None  # lifetime, monotonic upstream; guarded again downstream
    last_report_timestamp: float | None
    network_interfaces: tuple[NetworkInterface, ...]


@dataclass(frozen=True, slots=True)
class EvSummary:
    chargers: tuple[ChargerSummary, ...]


def path(site_id: str) -> str:
    return f"/service/evse_controller/api/v2/{site_id}/ev_chargers/summary"


QUERY = {"filter_retired": "true"}


def parse(payload: Any) -> Parsed[EvSummary]:
    body = require_object(payload, "ev_summary")
    if not isinstance(body.get("data"), list):
        raise PayloadError("ev_summary: no data[] in the payload")
    reader = Reader()
    chargers = []
    for index, raw in enumerate(reader.objects(body, "data", "ev_summary")):
        charger = _parse_charger(raw, f"data[{index}]", reader)
        if charger is not None:
            chargers.append(charger)
    return Parsed(EvSummary(tuple(chargers)), tuple(reader.problems))


def _parse_charger(raw: Mapping[str, Any], where: str, reader: Reader) -> ChargerSummary | None:
    serial = reader.text(raw, "serialNumber", where, required=True)
    if not serial:
        return None
    levels = reader.mapping(raw, "chargeLevelDetails", where)
    # A charger has one to three phases; anything else is a broken value, counted and left out.
    phase_key = "phaseCount" if raw.get("phaseCount") is not None else "phaseMode"
    phases = reader.number(raw, phase_key, where, minimum=1, maximum=3)
    return ChargerSummary(
        serial=serial,
        name=reader.text(raw, "displayName", where),
        model=reader.text(raw, "modelName", where),
        firmware_version=reader.text(raw, "firmwareVersion", where),
        max_current_amperes=reader.number(raw, "maxCurrent", where, minimum=0),
        charge_level_min_amperes=reader.number(levels, "min", f"{where}.chargeLevelDetails", minimum=0),
        charge_level_max_amperes=reader.number(levels, "max", f"{where}.chargeLevelDetails", minimum=0),
        operating_voltage_volts=reader.number(raw, "operatingVoltage", where, minimum=0),
        phases=phases,
        # A lifetime counter below zero is broken, never a reading.
        energy_delivered_joules=reader.number(
            raw, "lifeTimeConsumption", where, scale=WH_TO_JOULES, minimum=0
        ),
        last_report_timestamp=reader.timestamp(raw, "lastReportedAt", where, epoch_unit="ms"),
        network_interfaces=_parse_network(raw.get("networkConfig"), f"{where}.networkConfig", reader),
    )


def _parse_network(raw: Any, where: str, reader: Reader) -> tuple[NetworkInterface, ...]:
    """``"[\\"netmask=…,interface_name=eth0,connectionStatus=1,ipaddr=…\\"]"`` → interfaces and link state.

    Addresses are deliberately dropped: they say nothing about health and do not belong in metrics.
    """
    if raw is None or raw == "":
        return ()
    entries: Any = raw
    if isinstance(raw, str):
        try:
            entries = json.loads(raw)
        except (ValueError, RecursionError):
            reader.problem(where, "not a JSON array string")
            return ()
    if not isinstance(entries, list):
        reader.problem(where, f"expected a list of interfaces, got {type(entries).__name__}")
        return ()
    interfaces = []
    for entry in entries:
        if not isinstance(entry, str):
            reader.problem(where, f"expected 'k=v,…' strings, got {type(entry).__name__}")
            continue
        fields = dict(part.split("=", 1) for part in entry.split(",") if "=" in part)
        name = reader.safe_text(fields.get("interface_name", "").strip(), where)
        if not name:
            continue
        status = fields.get("connectionStatus", "").strip()
        interfaces.append(NetworkInterface(name, {"1": True, "0": False}.get(status)))
    return tuple(interfaces)


# Fetched by the poller itself (exporter.poller) and rendered by the renderers' own code.
SOURCE = Source(
    name="ev_summary",
    reads="ev_chargers/summary: each charger's hardware, firmware and lifetime energy",
    default_interval=1800,
    minimum_interval=60,
    first_run=1.5,
)
