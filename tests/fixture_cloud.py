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
OTP_NONCE = "otp-nonce-4c21"
OTP_CODE = "482913"
PASTED_TOKEN = "pasted-token-77aa"
PASTED_COOKIE = "_enlighten_4_session=pasted-cookie-99bb"

ROUTES = {
    "/app-api/search_sites.json": "search_sites_live.json",
    f"/service/evse_controller/{SITE}/ev_chargers/status": "ev_status_live_charging.json",
    f"/service/evse_controller/api/v2/{SITE}/ev_chargers/summary": "ev_summary_live.json",
    f"/pv/systems/{SITE}/today": "today_live.json",
    f"/pv/systems/{SITE}/daily_energy": "daily_energy_live.json",
    f"/pv/systems/{SITE}/lifetime_energy": "lifetime_energy_live.json",
}


class FixtureCloud:
    def __init__(self, routes: dict[str, str] | None = None, mfa: bool = False) -> None:
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
                authorised = self.headers.get("e-auth-token") in (TOKEN, PASTED_TOKEN) and (
                    SESSION_ID in cookie or cookie == PASTED_COOKIE
                )
                if not authorised:
                    return self._send(401, {"message": "Not authorized"})
                name = cloud.routes.get(path)
                if name is None:
                    return self._send(404, {"message": "not found"})
                self._send(200, json.loads((FIXTURES / name).read_text()))

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


def pasted_headers(cloud: FixtureCloud, **settings: str) -> dict[str, str]:
    """The environment of a user who pasted browser headers, pointed at ``cloud``, plus any settings."""
    return {
        "ENPHASE_BASE_URL": cloud.base_url,
        "ENPHASE_E_AUTH_TOKEN": PASTED_TOKEN,
        "ENPHASE_COOKIE": PASTED_COOKIE,
        **settings,
    }
