"""The demo charger's controls: start, stop, OCPP triggers and the charge mode, as the cloud takes them.

Every regional form of seed 001 §3 is accepted (POST or PUT, ``ev_chargers`` or ``ev_charger``, camelCase or
snake_case keys, or no body), so the commands can be tried without an account. The simulation itself stays a
pure function of time; what the user did is kept here, per demo cloud, and laid over the status payload:

- a start charges at the asked (or last) current until a stop or the car leaves; a stop holds the session's
  energy where it was; both only last for the plug-in they were given in;
- start or stop while unplugged answers 409; stop while nothing charges, or start on a faulted charger, 422;
- the charge mode shows in the status payload (``mode``, ``sch_d``) and in the scheduler's preference
  endpoint. The numbers in ``mode`` are the demo's own: no public source documents them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import simulation as sim
from .answers import Response
from .answers import json_answer as _json

MIN_LEVEL_A = 6
MODE_NUMBERS = {"MANUAL_CHARGING": 0, "SCHEDULED_CHARGING": 1, "GREEN_CHARGING": 2, "SMART_CHARGING": 3}
PREFERENCE_KEYS = {
    "MANUAL_CHARGING": "manualCharging",
    "SCHEDULED_CHARGING": "scheduledCharging",
    "GREEN_CHARGING": "greenCharging",
    "SMART_CHARGING": "smartCharging",
}


@dataclass(frozen=True, slots=True)
class _Command:
    action: str  # "start" or "stop"
    at: float
    level: int


class DemoChargerControl:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session_start: float | None = None  # the plug-in the commands below were given in
        self._commands: list[_Command] = []
        self._level = sim.EV_CHARGE_LEVEL_A  # "no body" starts at the last level, as the live service does
        self.mode = "MANUAL_CHARGING"
        self.triggered: list[str] = []

    # --- requests ---

    def control(self, action: str, body: bytes, now: float) -> Response:
        fields = _fields(body)
        if fields is None:
            return _json(400, {"message": "Bad request body"})
        if action == "trigger_message":
            message = fields.get("requestedMessage", fields.get("requested_message"))
            if not isinstance(message, str) or not message:
                return _json(400, {"message": "requestedMessage is required"})
            with self._lock:
                self.triggered.append(message)
                ticket = f"TICKET-{len(self.triggered):06d}"
            details = {"initiatedAt": _iso(now), "trackingId": ticket}
            return _json(200, {"status": "accepted", "message": message, "details": details})
        level = fields.get("chargingLevel", fields.get("charging_level", self._level))
        if not isinstance(level, int) or not MIN_LEVEL_A <= level <= sim.EV_MAX_CURRENT_A:
            return _json(400, {"message": f"chargingLevel must be {MIN_LEVEL_A}-{sim.EV_MAX_CURRENT_A}"})
        with self._lock:
            state = sim.charger_state(now)
            charging = self._charging(state, now)
            if not state.plugged_in:
                return _json(409, {"message": "EV not plugged in"})
            if action == "start_charging" and state.faulted:
                return _json(422, {"message": "Charger not ready"})
            if action == "stop_charging" and not charging:
                return _json(422, {"message": "Not charging"})
            assert state.session is not None
            if self._session_start != state.session.plugged_in_at:
                self._session_start, self._commands = state.session.plugged_in_at, []
            command = "start" if action == "start_charging" else "stop"
            self._commands.append(_Command(command, now, level))
            if command == "start":
                self._level = level
        if command == "start":
            return _json(200, {"status": "accepted", "chargingLevel": level})
        return _json(200, {"status": "accepted"})

    def preference(self) -> Response:
        modes = {
            key: {"enabled": self.mode == mode, "chargingMode": mode} for mode, key in PREFERENCE_KEYS.items()
        }
        return _json(200, {"data": {"modes": modes}})

    def set_preference(self, body: bytes) -> Response:
        fields = _fields(body) or {}
        mode = fields.get("mode")
        if mode not in PREFERENCE_KEYS:
            return _json(400, {"message": f"mode must be one of {', '.join(PREFERENCE_KEYS)}"})
        with self._lock:
            self.mode = mode
        return self.preference()

    # --- the status payload ---

    def apply(self, payload: dict[str, Any], now: float) -> dict[str, Any]:
        """The simulated status payload with what the user did laid over it."""
        charger = payload["data"]["chargers"][0]
        charger["mode"] = MODE_NUMBERS[self.mode]
        if self.mode != "MANUAL_CHARGING":
            kind = self.mode.removesuffix("_CHARGING").lower() + "charging"  # e.g. greencharging
            midnight = int(now // 86400 * 86400)
            window = {"type": kind, "startTime": midnight, "endTime": midnight + 86400, "limit": 0}
            charger["sch_d"] = {"status": 1, "info": [window]}
        with self._lock:
            state = sim.charger_state(now)
            session = state.session
            if session is None or session.plugged_in_at != self._session_start or not self._commands:
                return payload
            commands = list(self._commands)
            charging = self._charging(state, now)
        end = min(now, session.unplugged_at)
        energy = session.energy_wh(session.plugged_in_at, min(end, commands[0].at))
        for command, following in zip(commands, [*commands[1:], None], strict=True):
            until = min(end, following.at if following else end)
            if command.action == "start":
                energy += _power_w(command.level) * max(0.0, until - command.at) / 3600
        session_d = charger["session_d"]
        session_d["e_c"] = round(energy, 2)
        if not state.plugged_in:
            return payload
        charger["charging"] = charging
        session_d["charge_level"] = commands[-1].level if charging else None
        if charging and session_d.get("strt_chrg") is None:
            session_d["strt_chrg"] = round(commands[-1].at * 1000)
        if not state.faulted:
            charger["connectors"][0]["connectorStatusType"] = "CHARGING" if charging else "SUSPENDED_EVSE"
        return payload

    def _charging(self, state: sim.ChargerState, now: float) -> bool:
        """Whether the charger charges at ``now``: the user's last command in this plug-in decides."""
        session = state.session
        if not state.plugged_in or session is None or session.plugged_in_at != self._session_start:
            return state.charging
        if not self._commands:
            return state.charging
        return self._commands[-1].action == "start" and not state.faulted


def _fields(body: bytes) -> dict[str, Any] | None:
    if not body.strip():
        return {}
    try:
        fields = json.loads(body)
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None


def _power_w(level: int) -> float:
    return float(sim.EV_PHASES * sim.EV_VOLTAGE_V * level)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
