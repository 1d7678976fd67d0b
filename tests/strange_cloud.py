"""A small scripted Enlighten cloud on 127.0.0.1 that the exporter has never met: its own hand-written
payloads in the live shapes (ENLIGHTEN_API.md), two sites, and one script of misbehaviour:

1. the first EV status request is answered 429 with ``Retry-After: 12``;
2. the first EV summary request of the first site takes 8 s, then its body is malformed JSON;
3. the first daily-energy request ends the session: it, and every later request with that session, gets a
   302 to the login page;
4. the first EV status request that carries the second session (at least 2 s after it was issued, so not
   the retry right after the login) ends that one too, answered as a 200 HTML login page; from then on
   every login is answered "Too many active sessions".

It records what it saw on its own monotonic clock, for the test to check against.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SITES = ("31337", "42421")
EMAIL = "strange@example.org"
PASSWORD = "never-seen-before-8d1c"
SERIAL = "EV9000000042"
RETRY_AFTER = 12
SLOW_SECONDS = 8.0
LOGIN_PAGE = b"<!DOCTYPE html><html><body><form action='/login/login'>Sign in</form></body></html>"
MALFORMED = b'{"meta": {"serverTimeStamp": 1774675080415, "rowCount": 1}, "data": [{"serialNumber": "EV9'


@dataclass(frozen=True, slots=True)
class Seen:
    at: float  # time.monotonic() on arrival
    endpoint: str
    site: str
    session: str


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _token(session: str) -> str:
    claims = {"data": {"user_id": 77, "session_id": session}, "exp": int(time.time()) + 7 * 86400}
    return f"{_b64({'alg': 'HS256'})}.{_b64(claims)}.c3RyYW5nZQ"


def _endpoint(path: str) -> tuple[str, str]:
    parts = path.strip("/").split("/")
    if path.endswith("/ev_chargers/status"):
        return "ev_status", parts[2]
    if path.endswith("/ev_chargers/summary"):
        return "ev_summary", parts[4]
    if path.startswith("/pv/systems/") and len(parts) == 4:
        return parts[3], parts[2]  # today, daily_energy
    return path, ""


def _today(site: str, now: float) -> dict[str, Any]:
    midnight = int(now // 86400 * 86400)
    return {
        "system_id": int(site),
        "start_date": "2024-04-02",
        "last_report_date": int(now) - 120,
        "siteStatus": "normal",
        "battery_details": {"aggregate_soc": 71, "estimated_time": 412, "last_24h_consumption": 11.8},
        "batteryConfig": {
            "battery_backup_percentage": 15,
            "very_low_soc": 5,
            "charge_from_grid": True,
            "usage": "cost_savings",
        },
        "connectionDetails": {"ethernet": False, "wifi": True, "cellular": False},
        "stats": [_day(midnight)],
    }


def _day(start: int) -> dict[str, Any]:
    return {
        "start_time": start,
        "interval_length": 900,
        "production": [0, 0, 41, 130],
        "consumption": [210, 190, 205, 260],
        "import": [210, 190, 164, 130],
        "export": [0, 0, 0, 0],
        "charge": [0, 0, 0, 0],
        "discharge": [0, 0, 0, 0],
        "soc": [71, 71, 71, 71],
        "solar_home": [],
        "grid_home": [],
        "evse": [],
        "heatpump": [],
        "totals": {"production": 171, "consumption": 865, "import": 694, "soc": 284, "grid_import": 999},
    }


def _ev_status(site: str, now: float) -> dict[str, Any]:
    charger = {
        "sn": SERIAL,
        "name": "Carport",
        "connected": True,
        "pluggedIn": False,
        "charging": False,
        "faulted": False,
        "lst_rpt_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z[UTC]", time.gmtime(now - 40)),
        "session_d": {
            "plg_in_at": None,
            "plg_out_at": None,
            "strt_chrg": None,
            "e_c": 812.5,
            "charge_level": None,
        },
        "connectors": [{"connectorId": 1, "connectorStatusType": "AVAILABLE", "pluggedIn": False}],
    }
    return {
        "meta": {"serverTimeStamp": int(now * 1000)},
        "data": {"site": site, "chargers": [charger]},
        "error": {},
    }


def _ev_summary(now: float) -> dict[str, Any]:
    charger = {
        "serialNumber": SERIAL,
        "modelName": "IQ-EVSE-NA-1040",
        "firmwareVersion": "25.41.2.3",
        "maxCurrent": 40,
        "operatingVoltage": "240",
        "chargeLevelDetails": {"min": "6", "max": "40", "granularity": "1"},
        "phaseCount": 1,
        "lifeTimeConsumption": 1234567.5,
    }
    return {"meta": {"serverTimeStamp": int(now * 1000), "rowCount": 1}, "data": [charger], "error": {}}


class StrangeCloud:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.logins: list[tuple[float, str]] = []  # (time.monotonic(), "success" or "too_many_sessions")
        self.rate_limited_at: float | None = None
        self.slow: tuple[float, float | None] | None = None  # (started, answered) of the 8 s answer
        self._sessions: dict[str, tuple[float, str]] = {}  # id -> (issued, "ok", "302" or "html")
        self._ended = 0  # sessions the script has ended
        self._lock = threading.Lock()
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = parse_qs(body)
                if self.path != "/login/login.json":
                    return self._send(404, b'{"message":"Not found"}')
                if form.get("user[email]") != [EMAIL] or form.get("user[password]") != [PASSWORD]:
                    return self._send(401, b'{"message":"Invalid"}')
                self._send(*cloud.login())

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                cookies = dict(
                    part.strip().partition("=")[::2] for part in self.headers.get("Cookie", "").split(";")
                )
                self._send(*cloud.answer(url.path, cookies.get("_enlighten_4_session", "")))

            def _send(self, status: int, body: bytes, kind: str = "json", headers: tuple = ()) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if kind == "html" else "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StrangeCloud:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def login(self) -> tuple[int, bytes, str, tuple]:
        with self._lock:
            if self._ended >= 2:
                self.logins.append((time.monotonic(), "too_many_sessions"))
                return 200, b'{"message":"Too many active sessions.."}', "json", ()
            session = secrets.token_hex(12)
            self._sessions[session] = (time.monotonic(), "ok")
            self.logins.append((time.monotonic(), "success"))
        body = {
            "message": "success",
            "session_id": session,
            "manager_token": _token(session),
            "system_id": 31337,
        }
        cookie = ("Set-Cookie", f"_enlighten_4_session={session}; Path=/; HttpOnly")
        return 200, json.dumps(body).encode(), "json", (cookie,)

    def answer(self, path: str, session: str) -> tuple[int, bytes, str, tuple]:
        endpoint, site = _endpoint(path)
        now = time.monotonic()
        with self._lock:
            self.seen.append(Seen(now, endpoint, site, session))
            issued, state = self._sessions.get(session, (0.0, ""))
            if state == "ok" and self._ends_session(endpoint, issued, now):
                self._ended += 1
                state = "302" if self._ended == 1 else "html"
                self._sessions[session] = (issued, state)
            first_of_kind = sum(1 for seen in self.seen if seen.endpoint == endpoint) == 1
        if state == "302":
            return 302, b"", "html", (("Location", f"{self.base_url}/login"),)
        if state == "html":
            return 200, LOGIN_PAGE, "html", ()
        if state != "ok":
            return 401, b'{"message":"Not authorized"}', "json", ()
        if site not in SITES:
            return 404, b'{"message":"Not found"}', "json", ()
        if endpoint == "ev_status" and first_of_kind:
            self.rate_limited_at = now
            return 429, b'{"message":"Too Many Requests"}', "json", (("Retry-After", str(RETRY_AFTER)),)
        if endpoint == "ev_summary" and first_of_kind:
            self.slow = (now, None)
            time.sleep(SLOW_SECONDS)  # the script's point: the cloud takes 8 s, and the exporter must not
            self.slow = (now, time.monotonic())
            return 200, MALFORMED, "json", ()
        wall = time.time()
        payloads = {
            "today": lambda: _today(site, wall),
            "daily_energy": lambda: {"system_id": int(site), "stats": [_day(int(wall // 86400 * 86400))]},
            "ev_status": lambda: _ev_status(site, wall),
            "ev_summary": lambda: _ev_summary(wall),
        }
        if endpoint not in payloads:
            return 404, b'{"message":"Not found"}', "json", ()
        return 200, json.dumps(payloads[endpoint]()).encode(), "json", ()

    def _ends_session(self, endpoint: str, issued: float, now: float) -> bool:
        if self._ended == 0:
            return endpoint == "daily_energy"
        return self._ended == 1 and endpoint == "ev_status" and now - issued >= 2.0
