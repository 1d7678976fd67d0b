"""A scripted Enlighten cloud on 127.0.0.1 that serves fixture files, for end-to-end tests of ``once``.

Unlike the demo cloud it has no simulation: each path answers with a fixed file, so expected values can be
worked out by hand from the fixtures.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from conftest import FIXTURES

SITE = "7654321"
EMAIL = "owner@example.com"
PASSWORD = "fixture-password-5150"
SESSION_ID = "fixture-session-8e1f"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDAsImRhdGEiOnsidXNlcl9pZCI6NDJ9fQ.c2lnbmF0dXJl"  # exp 2100
USER_ID = "42"  # in both tokens' data claim: the battery settings service wants it as a Username header
OTP_NONCE = "otp-nonce-4c21"
OTP_CODE = "482913"
# A pasted e-auth-token is the manager JWT too (another signature: another session of the same user).
PASTED_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDAsImRhdGEiOnsidXNlcl9pZCI6NDJ9fQ.cGFzdGVkLTc3YWE"
PASTED_COOKIE = "_enlighten_4_session=pasted-cookie-99bb"

ROUTES = {
    "/app-api/search_sites.json": "search_sites_live.json",
    f"/service/evse_controller/{SITE}/ev_chargers/status": "ev_status_live_charging.json",
    f"/service/evse_controller/api/v2/{SITE}/ev_chargers/summary": "ev_summary_live.json",
    f"/pv/systems/{SITE}/today": "today_live.json",
    f"/pv/systems/{SITE}/daily_energy": "daily_energy_live.json",
    f"/pv/systems/{SITE}/lifetime_energy": "lifetime_energy_live.json",
    f"/app-api/{SITE}/get_latest_power": "latest_power_live.json",
    f"/app-api/{SITE}/devices.json": "devices_live.json",
    f"/pv/settings/{SITE}/battery_status.json": "battery_status_live.json",
    f"/service/batteryConfig/api/v1/batterySettings/{SITE}": "battery_settings_live.json",
    f"/service/evse_scheduler/api/v1/iqevc/charging-mode/{SITE}/EV1111111111/preference": (
        "charge_mode_preference_live.json"
    ),
    # The three pages of tests/test_inverters.py, served as one list that the cloud pages by limit and offset.
    f"/service/evse_scheduler/api/v1/iqevc/charging-mode/{SITE}/EV2222222222/preference": {
        "data": {"modes": {"manualCharging": {"enabled": True}, "greenCharging": {"enabled": False}}}
    },
    f"/app-api/{SITE}/inverters.json": (
        "inverters_live_page1.json",
        "inverters_live_page2.json",
        "inverters_live_page3.json",
    ),
    f"/systems/{SITE}/inverter_data_x/energy.json": "inverter_energy_live.json",
}
# What these services want beyond the session, as the live ones do: a Username header, a bearer token.
NEEDS_USERNAME = "/service/batteryConfig/"
NEEDS_BEARER = "/service/evse_scheduler/"


class FixtureCloud:
    def __init__(self, routes: dict[str, object] | None = None, mfa: bool = False) -> None:
        """``routes``: path -> a fixture file's name, the payload itself, or a tuple of inverter pages."""
        self.routes = dict(ROUTES if routes is None else routes)
        self.mfa = mfa
        self.requests: list[tuple[str, str]] = []
        self.canned: dict[tuple[str, str], list[tuple[int, str, bytes]]] = {}  # see answer_next
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                cloud.requests.append(("GET", self.path))
                if cloud.give_canned(self, "GET", path):
                    return
                cookie = self.headers.get("Cookie", "")
                token = self.headers.get("e-auth-token")
                authorised = token in (TOKEN, PASTED_TOKEN) and (
                    SESSION_ID in cookie or cookie == PASTED_COOKIE
                )
                if not authorised:
                    return self._send(401, {"message": "Not authorized"})
                if path.startswith(NEEDS_USERNAME) and self.headers.get("Username") != USER_ID:
                    return self._send_html(302)
                if path.startswith(NEEDS_BEARER) and self.headers.get("Authorization") != f"Bearer {token}":
                    return self._send(401, {"message": "Bearer token required"})
                route = cloud.routes.get(path)
                if route is None:
                    return self._send(404, {"message": "not found"})
                payload = _payload(route)
                self._send(200, _page(payload, parse_qs(self.path.partition("?")[2])))

            def do_POST(self) -> None:
                cloud.requests.append(("POST", self.path))
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                if cloud.give_canned(self, "POST", self.path):
                    return
                if self.path == "/app-api/validate_login_otp":
                    nonce_ok = f"login_otp_nonce={OTP_NONCE}" in self.headers.get("Cookie", "")
                    code = base64.b64decode(form.get("otp", [""])[0]).decode()
                    email = base64.b64decode(form.get("email", [""])[0]).decode()
                    if nonce_ok and code == OTP_CODE and email == EMAIL:
                        return self._logged_in()
                    return self._send(200, {"isValid": False, "isBlocked": False})
                if self.path != "/login/login.json" or form.get("user[password]") != [PASSWORD]:
                    return self._send(401, {"message": "Invalid"})
                if cloud.mfa:
                    return self._send(
                        200, {"success": True, "isBlocked": False}, cookies=[f"login_otp_nonce={OTP_NONCE}"]
                    )
                self._logged_in()

            def _logged_in(self) -> None:
                body = {
                    "message": "success",
                    "session_id": SESSION_ID,
                    "manager_token": TOKEN,
                    "is_consumer": True,
                    "system_id": int(SITE),
                    "redirect_url": "",
                }
                self._send(
                    200,
                    body,
                    cookies=[
                        f"_enlighten_4_session={SESSION_ID}",
                        f"enlighten_manager_token_production={TOKEN}",
                    ],
                )

            def _send_html(self, status: int) -> None:
                data = b"<html><body>Sign in</body></html>"
                self.send_response(status)
                self.send_header("Location", "/login")
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send(self, status: int, body: object, cookies: list[str] = ()) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for cookie in cookies:
                    self.send_header("Set-Cookie", f"{cookie}; Path=/")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def answer_next(
        self, method: str, path: str, status: int, body: str, content_type: str = "application/json"
    ) -> None:
        """Queue one answer that ``method path`` gives before its usual ones: faults, HTML pages, refusals."""
        self.canned.setdefault((method, path), []).append((status, content_type, body.encode()))

    def give_canned(self, handler: BaseHTTPRequestHandler, method: str, path: str) -> bool:
        queue = self.canned.get((method, path))
        if not queue:
            return False
        status, content_type, body = queue.pop(0)
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        return True

    def __enter__(self) -> FixtureCloud:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _payload(route: object) -> object:
    """A fixture file's payload; the payload itself; or, for a tuple of ``inverters.json`` pages, one list."""
    if isinstance(route, str):
        return json.loads((FIXTURES / route).read_text())
    if isinstance(route, tuple):
        pages = [json.loads((FIXTURES / name).read_text()) for name in route]
        return {**pages[0], "inverters": [item for page in pages for item in page["inverters"]]}
    return route


def _page(payload: object, query: dict[str, list[str]]) -> object:
    """``inverters.json`` answers ``limit`` items from ``offset``, as the live service pages its list."""
    if not (isinstance(payload, dict) and isinstance(payload.get("inverters"), list) and "limit" in query):
        return payload
    offset, limit = int(query.get("offset", ["0"])[0]), int(query["limit"][0])
    return {**payload, "inverters": payload["inverters"][offset : offset + limit]}


def pasted_headers(cloud: FixtureCloud, **settings: str) -> dict[str, str]:
    """The environment of a user who pasted browser headers, pointed at ``cloud``, plus any settings."""
    return {
        "ENPHASE_BASE_URL": cloud.base_url,
        "ENPHASE_E_AUTH_TOKEN": PASTED_TOKEN,
        "ENPHASE_COOKIE": PASTED_COOKIE,
        **settings,
    }
