"""The demo Enlighten cloud: a real HTTP server that speaks the live service's shapes, login included.

``enphase-exporter serve --demo`` points the exporter at it so that anyone can try the exporter without
an account, and the tests use it as the far end of every HTTP exchange. Logins and sessions behave like
the live service's, including the four ways it answers an expired session (see ENLIGHTEN_API.md §1);
the data come from :mod:`.simulation` at the instant ``clock()`` says, so a test can move time along.
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
from dataclasses import dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import payloads
from . import simulation as sim

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
DEMO_SITE_ID = sim.SITE_ID
DEMO_CHARGER_SERIAL = sim.CHARGER_SERIAL
DEMO_USER_ID = 4242
SESSION_COOKIE = "_enlighten_4_session"
EXPIRY_FORMS = ("401", "403", "302", "html")

_JSON_TYPE = "application/json; charset=utf-8"
_HTML_TYPE = "text/html; charset=utf-8"
_LOGIN_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Enlighten | Sign in</title></head><body>"
    b'<form action="/login/login" method="post"><input name="user[email]"><input name="user[password]"'
    b' type="password"><button>Sign in</button></form></body></html>\n'
)
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = _JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def _json(status: int, body: payloads.JSON | str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    text = body if isinstance(body, str) else payloads.to_json(body)
    return Response(status, text.encode(), _JSON_TYPE, headers)


def _not_authorized() -> Response:
    return _json(401, {"message": "Not authorized"})


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
    expired_form: str | None = None  # set by DemoCloud.expire_sessions


@dataclass(frozen=True, slots=True)
class _Request:
    now: float
    query: dict[str, str]
    body: bytes
    session_id: str  # empty on routes that need no session


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    action: Callable[[DemoCloud, _Request], Response]
    needs_session: bool = True


class DemoCloud:
    """One simulated Enlighten account with one site; see the module docstring."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
        session_ttl: float = 7 * 86400,
    ) -> None:
        self.clock = clock
        self.session_ttl = session_ttl
        self.base_url = ""
        self.login_count = 0
        self.requests_seen: list[tuple[str, str]] = []
        self._address = (host, port)
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._secret = secrets.token_bytes(32)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> str:
        if self._server is None:
            self._server = _Server(self._address, self)
            host, port = self._server.server_address[:2]
            self.base_url = f"http://{host}:{port}"
            # A short poll interval keeps stop() quick; the cost is a few idle wake-ups a second.
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.1,), name="demo-enlighten", daemon=True
            )
            self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
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

    def expire_sessions(self, form: str = "401") -> None:
        """Expires every existing session; later requests with one are answered in ``form``: "401",
        "403", "302" (to the login page) or "html" (a 200 login page). New logins work normally."""
        if form not in EXPIRY_FORMS:
            raise ValueError(f"form must be one of {EXPIRY_FORMS}, not {form!r}")
        with self._lock:
            for session in self._sessions.values():
                session.expired_form = form

    def _new_session(self, now: float) -> tuple[str, str]:
        session_id = secrets.token_hex(16)
        with self._lock:
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
        expired_forms = []
        with self._lock:
            for session_id in filter(None, candidates):
                session = self._sessions.get(session_id)
                if session is None:
                    continue
                if session.expired_form:
                    expired_forms.append(session.expired_form)
                elif now < session.expires_at:
                    return session_id
        return self._expired(expired_forms[0]) if expired_forms else _not_authorized()

    def _expired(self, form: str) -> Response:
        if form == "403":
            return _json(403, {"message": "Forbidden"})
        if form == "302":
            return Response(302, b"", _HTML_TYPE, (("Location", f"{self.base_url}/login"),))
        if form == "html":
            return Response(200, _LOGIN_PAGE, _HTML_TYPE)
        return _not_authorized()

    # --- requests ---

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answers one request; ``headers`` has lower-case names."""
        url = urlsplit(target)
        with self._lock:
            self.requests_seen.append((method, url.path))
        found = _find_route(url.path)
        if found is None:
            return _json(404, {"message": "Not found"})
        route, match = found
        if route.method != method:
            return _json(405, {"message": "Method not allowed"})
        now = self.clock()
        session_id = ""
        if route.needs_session:
            authenticated = self._authenticate(headers, now)
            if isinstance(authenticated, Response):
                return authenticated
            session_id = authenticated
        if match.groupdict().get("site", DEMO_SITE_ID) != DEMO_SITE_ID:
            return _json(404, {"message": "Site not found"})
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        return route.action(self, _Request(now, query, body, session_id))

    def _login(self, request: _Request) -> Response:
        with self._lock:
            self.login_count += 1
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

    def _daily_energy(self, request: _Request) -> Response:
        try:
            first = date.fromisoformat(request.query["start_date"])
            last = date.fromisoformat(request.query["end_date"]) if "end_date" in request.query else None
        except (KeyError, ValueError):
            return _json(400, {"message": "start_date (and optional end_date) must be YYYY-MM-DD"})
        return _json(200, payloads.daily_energy_json(request.now, first, last))


def _route(
    method: str, pattern: str, action: Callable[[DemoCloud, _Request], Response], needs_session: bool = True
) -> _Route:
    return _Route(method, re.compile(pattern.replace("<site>", r"(?P<site>[^/]+)")), action, needs_session)


def _data(build: Callable[[float], payloads.JSON]) -> Callable[[DemoCloud, _Request], Response]:
    return lambda cloud, request: _json(200, build(request.now))


_ROUTES = (
    _route("POST", r"/login/login\.json", DemoCloud._login, needs_session=False),
    _route("GET", r"/login", lambda cloud, request: Response(200, _LOGIN_PAGE, _HTML_TYPE), False),
    _route("GET", r"/app-api/jwt_token\.json", DemoCloud._token),
    _route("GET", r"/service/auth_ms_enho/api/v1/session/token", DemoCloud._token),
    _route("GET", r"/app-api/search_sites\.json", _data(lambda now: payloads.search_sites())),
    _route("GET", r"/service/evse_controller/<site>/ev_chargers/status", _data(payloads.ev_status)),
    _route("GET", r"/service/evse_controller/api/v2/<site>/ev_chargers/summary", _data(payloads.ev_summary)),
    _route("GET", r"/pv/systems/<site>/today", _data(payloads.today)),
    _route("GET", r"/pv/systems/<site>/daily_energy", DemoCloud._daily_energy),
    _route("GET", r"/pv/systems/<site>/lifetime_energy", _data(payloads.lifetime_energy)),
    _route("GET", r"/app-api/<site>/get_latest_power", _data(payloads.latest_power)),
)


def _find_route(path: str) -> tuple[_Route, re.Match[str]] | None:
    for route in _ROUTES:
        match = route.pattern.fullmatch(path)
        if match:
            return route, match
    return None


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
