"""Faults the demo cloud can inject: the ways the live Enlighten service misbehaves, on demand.

From Python (the tests)::

    cloud.faults.inject("slow", endpoint="today", seconds=8, count=3)
    cloud.faults.inject("429", endpoint="ev_status", retry_after=120)
    cloud.faults.inject("expired", form="302")      # every session ends; the request is answered with a 302
    cloud.faults.clear()

From the command line, ``serve --demo --demo-faults mixed`` (or a comma list of fault names, plus ``seed=N``
and ``rate=X``): each request meets a fault with probability ``rate``, drawn from a random generator seeded
per endpoint, so the same run of requests meets the same faults every time.

Endpoints are the exporter's names for them (``today``, ``login``, ``jwt_token``, ...). A fault applies only
where it makes sense: ``too_many_sessions`` at login, ``expired`` where a session is needed, and the faults
that spoil a body on the sources the exporter polls and whose parse errors it counts.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .answers import EXPIRY_FORMS, Response, html_answer, json_answer
from .journal import Event, Journal
from .payloads import to_json

LOGIN, SESSION, SOURCE = "login", "session", "source"  # kinds of endpoint
LIVE = "live"  # the live stream's credentials route
STREAM = "stream"  # the live stream itself: a fault is drawn once per stream, when it is subscribed
_ANYWHERE = frozenset({LOGIN, SESSION, SOURCE, LIVE})

APPLIES_TO: Mapping[str, frozenset[str]] = {
    "slow": _ANYWHERE,  # answers after `seconds`, within the client's patience
    "timeout": _ANYWHERE,  # nothing for `seconds` (more than the client's read timeout), then a 504
    "5xx": _ANYWHERE,
    "429": _ANYWHERE,  # with Retry-After
    "expired": frozenset({SESSION, SOURCE, LIVE}),  # every session ends, answered in `form`
    "too_many_sessions": frozenset({LOGIN}),
    "malformed_json": frozenset({SOURCE}),
    "truncated_json": frozenset({SOURCE}),
    "schema_drift": frozenset({SOURCE}),  # missing keys, wrong types, unknown enumeration values
    "huge_payload": frozenset({SOURCE}),  # the real payload plus `size` bytes of unknown content
    "refused": frozenset({LIVE}),  # live stream credentials answered 403
    "dropped": frozenset({STREAM}),  # the broker closes the stream's connection after a few frames
    "silence": frozenset({STREAM}),  # the stream stops sending after a few frames, the connection stays
    "garbled_frame": frozenset({STREAM}),  # one frame that is not a protobuf DataMsg
    "hostile_strings": frozenset({SOURCE}),  # every string value carries one of HOSTILE_STRINGS
}
FAULT_NAMES = tuple(APPLIES_TO)
BODY_FAULTS = frozenset(
    {"malformed_json", "truncated_json", "schema_drift", "huge_payload", "hostile_strings"}
)
DEFAULT_SECONDS = {"slow": 5.0, "timeout": 35.0}
DEFAULT_RATE = 0.05
# Logins are rare (one per expired session), so at the mix's rate a demo would hardly ever show a login fault.
LOGIN_RATE_FLOOR = 0.25
HUGE_SIZES = (4 * 2**20, 40 * 2**20)  # one the exporter reads, one beyond what it accepts
# What a charger's name, a model or a serial could hold once someone types it or a firmware garbles it: text
# that cannot be encoded (lone surrogates), control characters, the three characters the exposition format
# escapes, right-to-left overrides, and a name far longer than any label should be.
HOSTILE_STRINGS = (
    "\ud800",
    "lone\udfff low surrogate",
    "nul\x00 esc\x1b[2J bell\x07 del\x7f",
    'quote" backslash\\ newline\n cr\r tab\t',
    '"}\n# HELP injected_metric x\ninjected_metric 1\n',
    "\u202eright-to-left\u200b zero-width \ufeff",
    "huge " + "x" * 20_000,
)


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    endpoint: str | None = None  # None: every endpoint where it applies
    seconds: float = 0.0  # slow, timeout
    status: int = 503  # 5xx
    retry_after: int = 60  # 429: the Retry-After header, in seconds
    form: str = "401"  # expired: 401, 403, 302 (to the login page) or html (a 200 login page)
    size: int = 8 * 2**20  # huge_payload


@dataclass(frozen=True, slots=True)
class FaultMix:
    """``--demo-faults``: the faults a mix draws from, its seed, and the share of requests it spoils."""

    names: tuple[str, ...]
    seed: int = 1
    rate: float = DEFAULT_RATE

    def __str__(self) -> str:
        names = "all faults" if set(self.names) == set(FAULT_NAMES) else ", ".join(self.names)
        return f"{names}; seed {self.seed}; {self.rate:.0%} of requests"


def parse_fault_mix(text: str) -> FaultMix:
    """``mixed`` or fault names, comma-separated, with optional ``seed=N`` and ``rate=X``.

    Raises ValueError with the reason when the text is none of these."""
    names: list[str] = []
    seed, rate = 1, DEFAULT_RATE
    for part in filter(None, (part.strip() for part in text.split(","))):
        key, equals, value = (piece.strip() for piece in part.partition("="))
        if equals and key == "seed":
            if not re.fullmatch(r"\d+", value):
                raise ValueError(f"seed must be a whole number, got {value!r}")
            seed = int(value)
        elif equals and key == "rate":
            rate = _rate(value)
        elif part == "mixed":
            names.extend(FAULT_NAMES)
        elif part in APPLIES_TO:
            names.append(part)
        else:
            raise ValueError(
                f"unknown fault {part!r}; expected mixed or some of {', '.join(FAULT_NAMES)} "
                "(plus seed=N, rate=X)"
            )
    if not names:
        raise ValueError(f"name some faults or mixed, got {text!r}")
    return FaultMix(tuple(dict.fromkeys(names)), seed, rate)


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be a share of requests above 0 and at most 1, got {text!r}")
    return rate


@dataclass(slots=True)
class _Pending:
    fault: Fault
    remaining: int | None  # None: until cleared


class Faults:
    """The faults waiting for requests, and the mix that draws new ones; see the module docstring."""

    def __init__(
        self,
        endpoints: Mapping[str, str],
        journal: Journal,
        wait: Callable[[float], object],
    ) -> None:
        self._endpoints = endpoints  # name -> kind
        self._journal = journal
        self._wait = wait  # returns early when the cloud stops, so a held answer never delays shutdown
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._mix: FaultMix | None = None
        self._random: dict[str, random.Random] = {}
        self._slow_seconds = (2.0, 8.0)
        self._timeout_seconds = DEFAULT_SECONDS["timeout"]

    def inject(
        self,
        name: str,
        *,
        endpoint: str | None = None,
        count: int | None = 1,
        seconds: float | None = None,
        status: int = 503,
        retry_after: int = 60,
        form: str = "401",
        size: int = 8 * 2**20,
    ) -> Fault:
        """Spoil the next ``count`` answers (None: all until ``clear``) of ``endpoint`` (None: any)."""
        if name not in APPLIES_TO:
            raise ValueError(f"unknown fault {name!r}; expected one of {', '.join(FAULT_NAMES)}")
        if endpoint is not None and APPLIES_TO[name].isdisjoint({self._endpoints.get(endpoint, "")}):
            raise ValueError(f"fault {name!r} does not apply to endpoint {endpoint!r}")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1, or None for every request until clear()")
        if not 500 <= status <= 599 or retry_after < 0 or form not in EXPIRY_FORMS:
            raise ValueError(f"status must be 5xx, retry_after at least 0, form one of {EXPIRY_FORMS}")
        fault = Fault(name, endpoint, DEFAULT_SECONDS.get(name, 0.0) if seconds is None else seconds)
        fault = replace(fault, status=status, retry_after=retry_after, form=form, size=size)
        with self._lock:
            self._pending.append(_Pending(fault, count))
        return fault

    def mix(
        self,
        mix: FaultMix,
        *,
        slow_seconds: tuple[float, float] = (2.0, 8.0),
        timeout_seconds: float = DEFAULT_SECONDS["timeout"],
    ) -> None:
        """Draw faults at random from now on; ``timeout_seconds`` should exceed the client's read timeout."""
        with self._lock:
            self._mix, self._random = mix, {}
            self._slow_seconds, self._timeout_seconds = slow_seconds, timeout_seconds

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self._mix = None

    def answer(
        self, endpoint: str, arrived: float, normal: Callable[[], Response], expire: Callable[[str], object]
    ) -> tuple[Response, Fault | None]:
        """The answer to one request to ``endpoint``: ``normal()``, or what a fault makes of it.

        The journal dates a fault by the request's arrival: a held-back answer is sent much later."""
        fault = self._take(endpoint)
        if fault is None:
            return normal(), None
        if fault.name in BODY_FAULTS:
            response = normal()
            if not response.is_json_ok:
                return response, None  # nothing to spoil (an expired session, say): the fault is spent
            self._journal.record(Event(arrived, "fault", endpoint, fault))
            return replace(response, body=spoil(fault, endpoint, response.body)), fault
        self._journal.record(Event(arrived, "fault", endpoint, fault))  # before any wait, so as not to lag
        if fault.name == "slow":
            self._wait(fault.seconds)
            response = normal()
        elif fault.name == "timeout":
            self._wait(fault.seconds)
            response = html_answer(504, "504 Gateway Time-out")  # the request was never handled
        elif fault.name == "5xx":
            response = _server_error(fault.status)
        elif fault.name == "429":
            headers = (("Retry-After", str(fault.retry_after)),)
            response = json_answer(429, {"message": "Too Many Requests"}, headers)
        elif fault.name == "expired":
            expire(fault.form)
            response = normal()  # answered in the expired form, like any later request with that session
        elif fault.name == "refused":
            response = json_answer(403, {"message": "Live stream is not enabled for this site"})
        else:
            response = json_answer(200, {"message": "Too many active sessions.."})
        return response, fault

    def stream_fault(self, endpoint: str, now: float) -> Fault | None:
        """The fault, if any, of one live stream that has just been subscribed (``endpoint``: a STREAM)."""
        fault = self._take(endpoint)
        if fault is not None:
            self._journal.record(Event(now, "fault", endpoint, fault))
        return fault

    def _take(self, endpoint: str) -> Fault | None:
        kind = self._endpoints[endpoint]
        with self._lock:
            for pending in self._pending:
                if pending.fault.endpoint in (None, endpoint) and kind in APPLIES_TO[pending.fault.name]:
                    if pending.remaining is not None:
                        pending.remaining -= 1
                        if pending.remaining == 0:
                            self._pending.remove(pending)
                    return pending.fault
            return self._draw(endpoint, kind) if self._mix is not None else None

    def _draw(self, endpoint: str, kind: str) -> Fault | None:
        assert self._mix is not None
        # String seeds are hashed with SHA-512: the same on every run, whatever PYTHONHASHSEED says.
        rng = self._random.setdefault(endpoint, random.Random(f"{self._mix.seed}/{endpoint}"))
        rate = max(self._mix.rate, LOGIN_RATE_FLOOR) if kind == LOGIN else self._mix.rate
        names = [name for name in self._mix.names if kind in APPLIES_TO[name]]
        if rng.random() >= rate or not names:
            return None
        name = rng.choice(names)
        fault, burst = Fault(name, endpoint), 1
        if name == "slow":
            fault, burst = replace(fault, seconds=rng.uniform(*self._slow_seconds)), rng.randint(1, 3)
        elif name == "timeout":
            fault, burst = replace(fault, seconds=self._timeout_seconds), rng.randint(1, 2)
        elif name == "5xx":
            fault, burst = replace(fault, status=rng.choice((500, 502, 503, 504))), rng.randint(1, 6)
        elif name == "429":
            fault = replace(fault, retry_after=rng.randint(30, 600))
        elif name == "expired":
            fault = replace(fault, form=rng.choice(EXPIRY_FORMS))
        elif name == "huge_payload":
            fault = replace(fault, size=rng.choice(HUGE_SIZES))
        if burst > 1:
            self._pending.append(_Pending(fault, burst - 1))
        return fault


_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
}


def _server_error(status: int) -> Response:
    """Gateways answer with HTML pages, the application with a JSON message."""
    reason = _REASONS.get(status, "Server Error")
    if status in (502, 504):
        return html_answer(status, f"{status} {reason}")
    return json_answer(status, {"message": reason})


def spoil(fault: Fault, endpoint: str, body: bytes) -> bytes:
    """A 200 JSON body as one of the body faults leaves it."""
    if fault.name == "malformed_json":
        return body.replace(b'":', b'"=', 1)  # one garbled key/value separator
    if fault.name == "truncated_json":
        return body[: len(body) // 2]
    if fault.name == "schema_drift":
        return to_json(DRIFTS[endpoint](json.loads(body))).encode()
    if fault.name == "hostile_strings":
        return to_json(_hostile(json.loads(body), iter(range(1_000_000)))).encode()
    if fault.name == "huge_payload":
        filler = b'"padding-padding",' * (fault.size // 18)  # many small items, like a long list would be
        return body[:-1] + b',"diagnostics":[' + filler + b'"end"]}'
    raise ValueError(f"{fault.name} does not spoil bodies")


def _hostile(value: Any, counter: Iterator[int]) -> Any:
    """``value`` with each string it holds followed by the next of HOSTILE_STRINGS, in turn."""
    if isinstance(value, str):
        return value + HOSTILE_STRINGS[next(counter) % len(HOSTILE_STRINGS)]
    if isinstance(value, dict):
        return {key: _hostile(item, counter) for key, item in value.items()}
    if isinstance(value, list):
        return [_hostile(item, counter) for item in value]
    return value


# Schema drift per source: what a new firmware or a new release of the service might send. Each change is
# one the parsers count as a problem; the rest of the payload stays as it was.


def _drift_ev_status(body: dict[str, Any]) -> dict[str, Any]:
    charger = body["data"]["chargers"][0]
    del charger["pluggedIn"]  # a key every known shape carries
    charger["charging"] = "maybe"  # a boolean that is not one
    charger["connectors"][0]["connectorStatusType"] = "HIBERNATING"  # a state nobody documented
    return body


def _drift_ev_summary(body: dict[str, Any]) -> dict[str, Any]:
    charger = body["data"][0]
    charger["maxCurrent"] = "thirty-two"
    charger["chargeLevelDetails"] = "6-32"  # an object flattened into a string
    return body


def _drift_today(body: dict[str, Any]) -> dict[str, Any]:
    body["batteryConfig"]["usage"] = "storm-guard-plus"  # a profile nobody documented
    body["battery_details"]["aggregate_soc"] = "62%"
    return body


def _drift_lifetime_energy(body: dict[str, Any]) -> dict[str, Any]:
    body["production"][-2] = "N/A"  # a day as a word
    body["consumption"][0] = -5  # energy below zero: a broken value
    return body


def _drift_daily_energy(body: dict[str, Any]) -> dict[str, Any]:
    del body["stats"][-1]["interval_length"]  # the newest day loses its time axis
    return body


def _drift_latest_power(body: dict[str, Any]) -> dict[str, Any]:
    body["latest_power"]["units"] = "kW"  # a unit nobody documented for it
    return body


def _drift_devices(body: dict[str, Any]) -> dict[str, Any]:
    body["result"][0]["devices"][0]["last_report"] = "yesterday"
    body["result"].insert(0, {"type": "heat_pump_controller", "devices": "none"})  # a group that is no group
    return body


def _drift_battery_status(body: dict[str, Any]) -> dict[str, Any]:
    body["current_charge"] = 48.5  # a number where "48%" is due
    body["storages"][0]["battery_soh"] = "excellent"
    return body


def _drift_battery_settings(body: dict[str, Any]) -> dict[str, Any]:
    body["data"]["stormGuardState"] = "armed"
    body["data"]["requestedConfig"] = "pending"
    return body


def _drift_inverters(body: dict[str, Any]) -> dict[str, Any]:
    body["total"] = str(body["total"])
    del body["inverters"][0]["serial_number"]
    return body


def _drift_inverter_energy(body: dict[str, Any]) -> dict[str, Any]:
    first = next(iter(body["production"]))
    body["production"][first] = "N/A"
    return body


DRIFTS: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ev_status": _drift_ev_status,
    "ev_summary": _drift_ev_summary,
    "today": _drift_today,
    "lifetime_energy": _drift_lifetime_energy,
    "daily_energy": _drift_daily_energy,
    "latest_power": _drift_latest_power,
    "devices": _drift_devices,
    "battery_status": _drift_battery_status,
    "battery_settings": _drift_battery_settings,
    "inverters": _drift_inverters,
    "inverter_energy": _drift_inverter_energy,
}
