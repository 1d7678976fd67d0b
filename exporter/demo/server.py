"""The demo Enlighten cloud: a real HTTP server that speaks the live service's shapes, login included.

``enphase-exporter serve --demo`` points the exporter at it so that anyone can try the exporter without
an account, and the tests use it as the far end of every HTTP exchange. Logins and sessions behave like
the live service's, including the four ways it answers an expired session (see ENLIGHTEN_API.md §1);
the data come from :mod:`.simulation` at the instant ``clock()`` says, so a test can move time along.
``faults`` spoils answers on demand (see :mod:`.faults`), and ``journal`` records what happened.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import equipment, payloads
from . import simulation as sim
from .answers import EXPIRY_FORMS, HTML_TYPE, LOGIN_PAGE, Response, expired_answer, not_authorized
from .answers import json_answer as _json
from .charger_control import DemoChargerControl
from .faults import LIVE, LOGIN, SESSION, SOURCE, STREAM, Faults
from .journal import KEEP, Event, Journal
from .live import GATEWAY_SERIAL, STREAM_FAULTS_ENDPOINT, DemoBroker, LiveGrants

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
DEMO_SITE_ID = sim.SITE_ID
DEMO_CHARGER_SERIAL = sim.CHARGER_SERIAL
DEMO_USER_ID = 4242
SESSION_COOKIE = "_enlighten_4_session"
MAX_SESSIONS = 1000  # the oldest are forgotten beyond this: a long demo run must not grow without bound

_log = logging.getLogger(__name__)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _cookies(header: str) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in header.split(";"))
    return {name: value for name, _, value in pairs if name}


@dataclass(slots=True)
class _Session:
    expires_at: float
    expired_form: str | None = None  # set by DemoCloud.expire_sessions, or "401" once the TTL has passed
    used: bool = False  # a request has carried it: the client did receive it


@dataclass(frozen=True, slots=True)
class _Request:
    now: float
    query: dict[str, str]
    body: bytes
    session_id: str  # empty on routes that need no session
    method: str = "GET"
    match: Mapping[str, str] = field(default_factory=dict)  # the path's named parts
    bearer: bool = False  # an Authorization: Bearer header with a manager JWT of a valid session came along
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    action: Callable[[DemoCloud, _Request], Response]
    endpoint: str  # the exporter's name for it; "" for the login page, which no fault touches
    kind: str = SESSION  # LOGIN, SESSION or SOURCE: decides which faults apply


class DemoCloud:
    """One simulated Enlighten account with one site; see the module docstring."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
        session_ttl: float = 7 * 86400,
        keep_events: int = KEEP,
        more_site_ids: tuple[str, ...] = (),
    ) -> None:
        self.clock = clock
        # More ids serve the same simulated site under each (benchmarks/many_sites.py); discovery lists one.
        self.site_ids = frozenset((DEMO_SITE_ID, *more_site_ids))
        self.session_ttl = session_ttl
        self.base_url = ""
        self.login_count = 0  # login attempts, whatever their answer
        self.requests_seen: list[tuple[str, str]] = []  # (method, path), about the latest keep_events
        self.journal = Journal(keep_events)
        self.charger = DemoChargerControl()  # what `enphase-exporter charger` did to this cloud's charger
        self._keep = keep_events
        self._address = (host, port)
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._secret = secrets.token_bytes(32)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        endpoints = {route.endpoint: route.kind for route in _ROUTES if route.endpoint}
        endpoints[STREAM_FAULTS_ENDPOINT] = STREAM
        self.faults = Faults(endpoints, self.journal, self._stopping.wait)
        self.live_grants = LiveGrants(clock)
        self.broker = DemoBroker(self.live_grants, lambda: self.site_ids, self.faults, clock, host)

    # --- lifecycle ---

    def start(self) -> str:
        if self._server is None:
            self._stopping.clear()
            self._server = _Server(self._address, self)
            host, port = self._server.server_address[:2]
            self.base_url = f"http://{host!s}:{port}"
            # A short poll interval keeps stop() quick; the cost is a few idle wake-ups a second.
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.1,), name="demo-enlighten", daemon=True
            )
            self._thread.start()
            self.broker.start()
            # The walk through years of simulated days takes seconds of CPU; begun now, at most the first
            # answers wait for it (lifetime_energy, asked first, needs all of it; live power needs today).
            day = sim.local_day(self.clock())
            threading.Thread(target=sim.warm_up, args=(day,), name="demo-warm-up", daemon=True).start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self.broker.stop()
            self._stopping.set()  # answers held back by a fault end now
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> DemoCloud:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # --- sessions ---

    def browser_session(self) -> tuple[str, str]:
        """A valid session as a user would copy it from a browser: (e-auth-token, Cookie header)."""
        session_id, token = self._new_session(self.clock())
        cookie = (
            f"{SESSION_COOKIE}={session_id}; enlighten_manager_token_production={token}; "
            f"XSRF-TOKEN={secrets.token_urlsafe(24)}; locale=en"
        )
        return token, cookie

    def expire_sessions(self, form: str = "401", cause: str = "expire_sessions") -> int:
        """Expires every existing session; later requests with one are answered in ``form``: "401",
        "403", "302" (to the login page) or "html" (a 200 login page). New logins work normally.
        Returns how many sessions were still alive."""
        if form not in EXPIRY_FORMS:
            raise ValueError(f"form must be one of {EXPIRY_FORMS}, not {form!r}")
        now = self.clock()
        with self._lock:
            alive = sum(1 for s in self._sessions.values() if not s.expired_form and now < s.expires_at)
            for session in self._sessions.values():
                session.expired_form = form
        if alive:
            self.journal.record(Event(now, "expiry", outcome=cause, sessions=alive))
        return alive

    def session_used(self, session_id: str) -> bool:
        """Whether any request carried the session (one forgotten among the oldest counts as used)."""
        with self._lock:
            session = self._sessions.get(session_id)
            return session is None or session.used

    def _new_session(self, now: float) -> tuple[str, str]:
        session_id = secrets.token_hex(16)
        with self._lock:
            while len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[next(iter(self._sessions))]  # dicts keep order: this is the oldest
            self._sessions[session_id] = _Session(expires_at=now + self.session_ttl)
        return session_id, self._jwt(session_id, now)

    def _jwt(self, session_id: str, now: float) -> str:
        header = _b64url(payloads.to_json({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {
            "data": {"user_id": DEMO_USER_ID, "session_id": session_id},
            "exp": int(now + self.session_ttl),
            "iat": int(now),
        }
        signing_input = f"{header}.{_b64url(payloads.to_json(claims).encode())}"
        signature = hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64url(signature)}"

    def _session_of_token(self, token: str, now: float) -> str | None:
        """The session a JWT we issued (and that has not run out) stands for; any other token is taken
        to be a session id, as the live service also accepts those."""
        if token.count(".") != 2:
            return token
        signing_input, _, signature = token.rpartition(".")
        expected = hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(_b64url_decode(signature), expected):
                return None
            claims = json.loads(_b64url_decode(signing_input.split(".")[1]))
        except ValueError:
            return None
        return claims["data"]["session_id"] if now < claims["exp"] else None

    def _authenticate(self, headers: Mapping[str, str], now: float) -> str | Response:
        """The id of a valid session the request carries, or the refusal to send."""
        candidates = [_cookies(headers.get("cookie", "")).get(SESSION_COOKIE)]
        bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
        for token in (headers.get("e-auth-token", "").strip(), bearer):
            if token:
                candidates.append(self._session_of_token(token, now))
        expired_forms, ran_out = [], 0
        with self._lock:
            for session_id in filter(None, candidates):
                session = self._sessions.get(session_id)
                if session is None:
                    continue
                if not session.expired_form and now >= session.expires_at:
                    session.expired_form, ran_out = "401", ran_out + 1  # the TTL passed: noted once
                if session.expired_form:
                    expired_forms.append(session.expired_form)
                else:
                    session.used = True
                    return session_id
        if ran_out:
            self.journal.record(Event(now, "expiry", outcome="ttl", sessions=ran_out))
        return expired_answer(expired_forms[0], self.base_url) if expired_forms else not_authorized()

    def _valid_bearer(self, headers: Mapping[str, str], now: float) -> bool:
        """Whether ``Authorization: Bearer`` carries a JWT we issued for a session that is still valid."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme != "Bearer" or token.count(".") != 2:
            return False
        session_id = self._session_of_token(token, now)
        with self._lock:
            session = self._sessions.get(session_id or "")
            return session is not None and not session.expired_form and now < session.expires_at

    # --- requests ---

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answers one request; ``headers`` has lower-case names."""
        url = urlsplit(target)
        arrived = self.clock()
        found = _find_route(method, url.path)
        endpoint = found[0].endpoint if found else ""
        with self._lock:
            self.requests_seen.append((method, url.path))
            if len(self.requests_seen) > self._keep:
                del self.requests_seen[: len(self.requests_seen) - self._keep // 2]
            if endpoint == "login":
                self.login_count += 1
        self.journal.record(Event(arrived, "request", endpoint))
        if found is None:
            return _json(404, {"message": "Not found"})
        route, match = found
        if route.method not in (method, "*"):
            return _json(405, {"message": "Method not allowed"})

        def normal() -> Response:
            return self._respond(route, match, url.query, headers, body, method)

        if not endpoint:
            return normal()
        response, fault = self.faults.answer(endpoint, arrived, normal, self._expire_by_fault)
        if route.kind == LOGIN:
            outcome = "success" if response.status == 200 else "invalid"
            if fault is not None and fault.name != "slow":  # a slow login still gets its normal answer
                outcome = fault.name
            session = json.loads(response.body)["session_id"] if outcome == "success" else ""
            self.journal.record(Event(arrived, "login", endpoint, outcome=outcome, session=session))
        return response

    def _respond(
        self,
        route: _Route,
        match: re.Match[str],
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        method: str = "GET",
    ) -> Response:
        now = self.clock()  # read after any delay a fault put in
        session_id = ""
        if route.kind != LOGIN and route.endpoint:
            authenticated = self._authenticate(headers, now)
            if isinstance(authenticated, Response):
                return authenticated
            session_id = authenticated
        if match.groupdict().get("site", DEMO_SITE_ID) not in self.site_ids:
            return _json(404, {"message": "Site not found"})
        arguments = {name: values[0] for name, values in parse_qs(query).items()}
        bearer = self._valid_bearer(headers, now)
        request = _Request(now, arguments, body, session_id, method, match.groupdict(), bearer, headers)
        return route.action(self, request)

    def _expire_by_fault(self, form: str) -> None:
        self.expire_sessions(form, cause="fault")

    def _login(self, request: _Request) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"))
        email = form.get("user[email]", [""])[0].strip().lower()
        password = form.get("user[password]", [""])[0]
        if not (email == DEMO_EMAIL and hmac.compare_digest(password.encode(), DEMO_PASSWORD.encode())):
            return _json(401, {"message": "Invalid"})
        session_id, token = self._new_session(request.now)
        body = {
            "message": "success",
            "session_id": session_id,
            "manager_token": token,
            "is_consumer": True,
            "system_id": int(DEMO_SITE_ID),
            "redirect_url": "",
        }
        cookies = (
            f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly",
            f"enlighten_manager_token_production={token}; Path=/",
            f"XSRF-TOKEN={secrets.token_urlsafe(24)}; Path=/",
        )
        return _json(200, body, tuple(("Set-Cookie", cookie) for cookie in cookies))

    def _token(self, request: _Request) -> Response:
        """A fresh JWT; refreshing also extends the session to the new token's expiry."""
        with self._lock:
            self._sessions[request.session_id].expires_at = request.now + self.session_ttl
        return _json(200, {"token": self._jwt(request.session_id, request.now)})

    def _ev_status(self, request: _Request) -> Response:
        return _json(200, self.charger.apply(payloads.ev_status(request.now), request.now))

    def _control(self, request: _Request) -> Response:
        if request.match["sn"] != DEMO_CHARGER_SERIAL:
            return _json(404, {"message": "Charger not found"})
        return self.charger.control(request.match["action"], request.body, request.now)

    def _preference(self, request: _Request) -> Response:
        # The scheduler service wants the bearer token besides the session (ENLIGHTEN_API.md §1).
        if not request.bearer:
            return not_authorized()
        if request.match["sn"] != DEMO_CHARGER_SERIAL:
            return _json(404, {"message": "Charger not found"})
        if request.method == "GET":
            return self.charger.preference()
        return self.charger.set_preference(request.body)

    def _battery_settings(self, request: _Request) -> Response:
        """Like the live service, wants the session cookie and ``Username: <user id>`` besides; without
        them it sends the browser to the login page (302 with an HTML body), even with a valid token."""
        cookie = _cookies(request.headers.get("cookie", "")).get(SESSION_COOKIE)
        if cookie != request.session_id or request.headers.get("username") != str(DEMO_USER_ID):
            location = (("Location", f"{self.base_url}/login"),)
            return Response(302, LOGIN_PAGE, HTML_TYPE, location)
        # The demo's own answer to a wrong userId: no public source shows the live one.
        if request.query.get("userId") != str(DEMO_USER_ID):
            return _json(400, {"message": "userId does not match the session"})
        return _json(200, equipment.battery_settings(request.now))

    def _inverters(self, request: _Request) -> Response:
        try:
            limit = int(request.query.get("limit", equipment.DEFAULT_PAGE))
            offset = int(request.query.get("offset", 0))
        except ValueError:
            limit = offset = -1
        if limit < 1 or offset < 0:
            return _json(400, {"message": "limit must be at least 1 and offset at least 0"})
        return _json(200, equipment.inverters(request.now, limit, offset))

    def _inverter_energy(self, request: _Request) -> Response:
        try:
            first = date.fromisoformat(request.query["start_date"])
            last = date.fromisoformat(request.query.get("end_date", request.query["start_date"]))
        except (KeyError, ValueError):
            return _json(400, {"message": "start_date (and optional end_date) must be YYYY-MM-DD"})
        if last < first:
            return _json(400, {"message": "end_date is before start_date"})
        return _json(200, equipment.inverter_energy(request.now, first, last))

    def _live_stream(self, request: _Request) -> Response:
        """Credentials for the live stream of the gateway named in ``serial_num`` (§7.2)."""
        if request.query.get("serial_num") != GATEWAY_SERIAL:
            return _json(400, {"message": "Envoy not found"})
        return _json(200, self.live_grants.issue(self.broker.endpoint))

    def _daily_energy(self, request: _Request) -> Response:
        try:
            first = date.fromisoformat(request.query["start_date"])
            last = date.fromisoformat(request.query["end_date"]) if "end_date" in request.query else None
        except (KeyError, ValueError):
            return _json(400, {"message": "start_date (and optional end_date) must be YYYY-MM-DD"})
        return _json(200, payloads.daily_energy_json(request.now, first, last))


def _route(
    method: str,
    pattern: str,
    action: Callable[[DemoCloud, _Request], Response],
    endpoint: str,
    kind: str = SESSION,
) -> _Route:
    return _Route(method, re.compile(pattern.replace("<site>", r"(?P<site>[^/]+)")), action, endpoint, kind)


def _data(build: Callable[[float], payloads.JSON]) -> Callable[[DemoCloud, _Request], Response]:
    return lambda cloud, request: _json(200, build(request.now))


_ROUTES = (
    _route("POST", r"/login/login\.json", DemoCloud._login, "login", LOGIN),
    _route("GET", r"/login", lambda cloud, request: Response(200, LOGIN_PAGE, HTML_TYPE), ""),
    _route("GET", r"/app-api/jwt_token\.json", DemoCloud._token, "jwt_token"),
    _route("GET", r"/service/auth_ms_enho/api/v1/session/token", DemoCloud._token, "session_token"),
    _route("GET", r"/app-api/search_sites\.json", _data(lambda now: payloads.search_sites()), "search_sites"),
    _route(
        "GET",
        r"/service/evse_controller/<site>/ev_chargers/status",
        DemoCloud._ev_status,
        "ev_status",
        SOURCE,
    ),
    # Control: every regional form (seed 001 §3), so any method and either collection name.
    *(
        _route(
            "*",
            rf"/service/evse_controller/<site>/ev_chargers?/(?P<sn>[^/]+)/(?P<action>{action})",
            DemoCloud._control,
            action,
        )
        for action in ("start_charging", "stop_charging", "trigger_message")
    ),
    # SESSION, not SOURCE: the control's PUT shares the endpoint name, and a garbled answer to a command
    # would test nothing the GET's faults do not.
    *(
        _route(
            method,
            r"/service/evse_scheduler/api/v1/iqevc/charging-mode/<site>/(?P<sn>[^/]+)/preference",
            DemoCloud._preference,
            "charge_mode",
        )
        for method in ("GET", "PUT")
    ),
    _route(
        "GET",
        r"/service/evse_controller/api/v2/<site>/ev_chargers/summary",
        _data(payloads.ev_summary),
        "ev_summary",
        SOURCE,
    ),
    _route("GET", r"/pv/systems/<site>/today", _data(payloads.today), "today", SOURCE),
    _route("GET", r"/pv/systems/<site>/daily_energy", DemoCloud._daily_energy, "daily_energy", SOURCE),
    _route(
        "GET",
        r"/pv/systems/<site>/lifetime_energy",
        _data(payloads.lifetime_energy),
        "lifetime_energy",
        SOURCE,
    ),
    _route("GET", r"/app-api/<site>/get_latest_power", _data(payloads.latest_power), "latest_power", SOURCE),
    _route("GET", r"/pv/aws_sigv4/livestream\.json", DemoCloud._live_stream, "live_stream", LIVE),
    _route("GET", r"/app-api/<site>/devices\.json", _data(equipment.devices), "devices", SOURCE),
    _route(
        "GET",
        r"/pv/settings/<site>/battery_status\.json",
        _data(equipment.battery_status),
        "battery_status",
        SOURCE,
    ),
    _route(
        "GET",
        r"/service/batteryConfig/api/v1/batterySettings/<site>",
        DemoCloud._battery_settings,
        "battery_settings",
        SOURCE,
    ),
    _route("GET", r"/app-api/<site>/inverters\.json", DemoCloud._inverters, "inverters", SOURCE),
    _route(
        "GET",
        r"/systems/<site>/inverter_data_x/energy\.json",
        DemoCloud._inverter_energy,
        "inverter_energy",
        SOURCE,
    ),
    _route(
        "GET",
        r"/app-api/<site>/show_livestream",
        _data(lambda now: {"live_status": True, "live_vitals": True}),
        "show_livestream",
    ),
)


def _find_route(method: str, path: str) -> tuple[_Route, re.Match[str]] | None:
    """The route for ``method`` and ``path``; else one for the path alone (answered 405), else None."""
    found = [(route, match) for route in _ROUTES if (match := route.pattern.fullmatch(path))]
    for route, match in found:
        if route.method in (method, "*"):
            return route, match
    return found[0] if found else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], cloud: DemoCloud) -> None:
        super().__init__(address, _Handler)
        self.cloud = cloud

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("demo cloud: error while serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "DemoEnlighten/1.0"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            response = self.server.cloud.handle(method, self.path, headers, body)
        except Exception:
            _log.exception("demo cloud: %s %s failed", method, self.path)
            response = _json(500, {"message": "Internal error"})
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the demo's users watch the exporter's log, and stderr belongs to the exporter."""
