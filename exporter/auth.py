"""Sessions with the Enlighten cloud: pasted browser headers, or email and password (with MFA once).

The rule that matters most: **never log in on every poll.** Enlighten answers repeated logins with "Too many
active sessions" and can block the account for hours. So a session is reused across polls and across
restarts (a 0600 session file), its token is refreshed before ``exp``, a new login happens only when the
service says the session expired — at most once per expired session — and every failed login pauses further
logins (one hour by default after "Too many active sessions", bad credentials or an MFA prompt).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporter.client import (
    AuthError,
    CloudError,
    Credentials,
    RateLimited,
    Reply,
    Transport,
    Unreachable,
    session_expired,
)
from exporter.logs import register_secret
from exporter.private import make_private_directory

log = logging.getLogger(__name__)

SESSION_COOKIE = "_enlighten_4_session"
TOKEN_COOKIE = "enlighten_manager_token_production"
OTP_NONCE_COOKIE = "login_otp_nonce"
TOKEN_REFRESH_MARGIN = 600.0  # refresh this long before the token's exp
TRANSIENT_LOGIN_PAUSE = 60.0  # after a login that failed for no stated reason; doubles each time
TOKEN_REFRESH_RETRY = 300.0  # after a refresh attempt, the next one waits at least this long
JWT_TOKEN_PATH = "/app-api/jwt_token.json"
CONTROL_FORMS = "control_forms"  # session file key: {account hash: {action: form name}}


class SessionFileError(AuthError):
    """The session file cannot be used safely (readable by others, or unreadable)."""


@dataclass(frozen=True, slots=True)
class CloudSession:
    cookies: Mapping[str, str] = field(repr=False)
    token: str | None = field(repr=False)
    token_expires_at: float | None = None
    user_id: str | None = field(default=None, repr=False)

    def headers(self, referer: str) -> dict[str, str]:
        headers = {"X-Requested-With": "XMLHttpRequest", "Referer": referer}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if self.token:
            headers["e-auth-token"] = self.token
        return headers


@dataclass(slots=True)
class AuthState:
    """What the exporter says about authentication in its own metrics."""

    ok: bool = False
    session_expires_at: float | None = None
    login_paused_until: float | None = None


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified: we only need ``exp`` and the user id, never to trust it."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def session_from_login(reply: Reply, body: Any) -> CloudSession | None:
    """A session from a login answer (JSON body with tokens, or only cookies), or None if there is none."""
    body = body if isinstance(body, Mapping) else {}
    cookies = dict(reply.cookies)
    session_id = body.get("session_id") or cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    cookies.setdefault(SESSION_COOKIE, str(session_id))
    cookies.pop(OTP_NONCE_COOKIE, None)
    token = body.get("manager_token") or cookies.get(TOKEN_COOKIE)
    return make_session(cookies, token if isinstance(token, str) else None)


def make_session(cookies: Mapping[str, str], token: str | None) -> CloudSession:
    claims = jwt_claims(token) if token else {}
    exp = claims.get("exp")
    data = claims.get("data") if isinstance(claims.get("data"), dict) else {}
    user_id = data.get("user_id") if data else None
    for secret in (token, *cookies.values(), str(user_id) if user_id is not None else None):
        register_secret(secret)  # the user id too: it travels in a URL (batterySettings?userId=)
    return CloudSession(
        cookies=dict(cookies),
        token=token,
        token_expires_at=float(exp) if isinstance(exp, int | float) else None,
        user_id=str(user_id) if user_id is not None else None,
    )


class SessionFile:
    """The saved session, mode 0600, so restarts do not log in again."""

    def __init__(self, path: Path, email: str) -> None:
        self.path = path
        # The file names its account by a hash: a file left from another account is never reused.
        self._account = hashlib.sha256(email.strip().lower().encode()).hexdigest()

    def load(self) -> CloudSession | None:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return None
        if mode & 0o077:
            raise SessionFileError(
                f"session file {self.path} is readable by other users (mode {mode & 0o777:o}); "
                f"run: chmod 600 {self.path}"
            )
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError) as error:
            log.warning("Ignoring unreadable session file %s (%s)", self.path, type(error).__name__)
            return None
        if not isinstance(saved, dict) or saved.get("account") != self._account:
            return None
        cookies = saved.get("cookies")
        if not isinstance(cookies, dict):
            return None
        token = saved.get("token")
        return make_session(
            {str(k): str(v) for k, v in cookies.items()}, token if isinstance(token, str) else None
        )

    def save(self, session: CloudSession) -> None:
        saved = self._read_quietly()
        content = {"account": self._account, "cookies": dict(session.cookies), "token": session.token}
        if isinstance(saved.get(CONTROL_FORMS), dict):
            content[CONTROL_FORMS] = saved[CONTROL_FORMS]  # a new session keeps what `charger` learnt
        self._write(content)

    def control_forms(self) -> dict[str, str]:
        """Which form of each charger control request this account's cloud accepted (action -> form name).

        Kept beside the session because it belongs to the account's region; a file written before this
        key existed simply has none."""
        forms = self._read_quietly().get(CONTROL_FORMS, {})
        mine = forms.get(self._account) if isinstance(forms, dict) else None
        return {str(k): str(v) for k, v in mine.items()} if isinstance(mine, dict) else {}

    def remember_control_form(self, action: str, form: str) -> None:
        saved = self._read_quietly()
        forms = saved.get(CONTROL_FORMS)
        forms = forms if isinstance(forms, dict) else {}
        mine = forms.get(self._account)
        mine = mine if isinstance(mine, dict) else {}
        saved[CONTROL_FORMS] = {**forms, self._account: {**mine, action: form}}
        self._write(saved)  # the session in the file, if any, is written back unchanged

    def _read_quietly(self) -> dict[str, Any]:
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return saved if isinstance(saved, dict) else {}

    def _write(self, content: Mapping[str, Any]) -> None:
        make_private_directory(self.path.parent)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(json.dumps(content))
        os.replace(temporary, self.path)  # atomic: a crash never leaves half a session

    def modified(self) -> float | None:
        try:
            return self.path.stat().st_mtime
        except FileNotFoundError:
            return None


class PastedHeaders:
    """``e-auth-token`` and ``Cookie`` copied from a logged-in browser. No login is ever attempted."""

    logs_in = False

    def __init__(self, token: str, cookie: str, referer: str) -> None:
        register_secret(token)
        register_secret(cookie)
        for part in cookie.split(";"):
            register_secret(part.partition("=")[2].strip())
        self._headers = {
            "e-auth-token": token,
            "Cookie": cookie,
            "X-Requested-With": "XMLHttpRequest",
            "Referer": referer,
        }
        claims = jwt_claims(token)
        exp = claims.get("exp")
        data = claims.get("data")
        user_id = data.get("user_id") if isinstance(data, dict) else None
        # Where the pasted token is the manager JWT it names the user; the battery settings need that.
        self._user_id = str(user_id) if isinstance(user_id, int | str) and str(user_id) else None
        register_secret(self._user_id)
        self.state = AuthState(
            ok=True, session_expires_at=float(exp) if isinstance(exp, int | float) else None
        )

    def credentials(self) -> Credentials:
        # The generation never changes: nothing can renew them.
        return Credentials(self._headers, 0, self._user_id)

    def expired(self, generation: int) -> None:
        if self.state.ok:
            log.error(
                "Enlighten rejected the pasted e-auth-token/Cookie headers: they have probably expired. "
                "Copy fresh ones from a logged-in browser session and restart the exporter."
            )
        self.state.ok = False

    def accepted(self) -> None:
        self.state.ok = True  # a rejection by one endpoint was not the end of the session after all

    def alive(self, generation: int) -> bool | None:
        return None  # nothing could renew them anyway


class PasswordLogin:
    """Email and password, a saved session reused until the service says it expired."""

    def __init__(
        self,
        transport: Transport,
        email: str,
        password: str | None,
        session_file: SessionFile | None,
        *,
        saved: CloudSession | None = None,
        login_pause: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        register_secret(password)
        self._transport = transport
        self._email = email
        self._password = password
        self._file = session_file
        self._file_seen = session_file.modified() if session_file else None
        self._login_pause = login_pause
        self._clock = clock
        self._lock = threading.Lock()
        self._session = saved  # read (and its file mode checked) at start-up, by the caller
        self._generation = 0
        self._pause_reason = ""
        self._unreachable: Unreachable | None = None  # the network failure behind the current pause
        self._transient_failures = 0
        self._next_refresh_try = 0.0
        self.state = AuthState(
            ok=saved is not None, session_expires_at=saved.token_expires_at if saved else None
        )

    def credentials(self) -> Credentials:
        with self._lock:  # one thread logs in; the others wait for its session instead of logging in too
            if self._session is None:
                self._pick_up_new_session_file()
            if self._session is not None and self._token_due():
                self._refresh_token()
            if self._session is None:
                self._adopt(self._login(), save=True)
            assert self._session is not None
            return Credentials(
                self._session.headers(self._transport.base_url + "/"), self._generation, self._session.user_id
            )

    def expired(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or self._session is None:
                return  # another request already found out, and renewed or dropped this session
            log.info("The Enlighten session expired; logging in again")
            self._drop_session()

    def accepted(self) -> None:
        self.state.ok = True

    def alive(self, generation: int) -> bool | None:
        """Whether the session of ``generation`` still works, by the token endpoint; None: cannot tell."""
        with self._lock:
            if generation != self._generation or self._session is None:
                return None  # renewed or dropped meanwhile: the next request uses what replaced it
            headers = self._session.headers(self._transport.base_url + "/")
        try:
            reply = self._transport.request("jwt_token", "GET", JWT_TOKEN_PATH, headers=headers)
        except CloudError:
            return None
        return not session_expired(reply, plain_text_is_content=True)

    # -- internals ------------------------------------------------------------------------------------

    def _adopt(self, session: CloudSession, *, save: bool) -> None:
        self._session = session
        self._generation += 1
        self._transient_failures = 0
        self.state.ok = True
        self.state.session_expires_at = session.token_expires_at
        self.state.login_paused_until = None
        if save and self._file:
            self._file.save(session)
            self._file_seen = self._file.modified()

    def _drop_session(self) -> None:
        self._session = None
        self._generation += 1
        self.state.ok = False

    def _pick_up_new_session_file(self) -> None:
        """A session saved by ``enphase-exporter login`` while this process runs is used without a restart."""
        if self._file is None or self._file.modified() in (None, self._file_seen):
            return
        self._file_seen = self._file.modified()
        session = self._file.load()
        if session is not None:
            log.info("Using the new session saved in %s", self._file.path)
            self._adopt(session, save=False)

    def _token_due(self) -> bool:
        expires = self._session.token_expires_at if self._session else None
        now = self._clock()
        return expires is not None and now >= expires - TOKEN_REFRESH_MARGIN and now >= self._next_refresh_try

    def _refresh_token(self) -> None:
        """A fresh JWT for the same session; if the session itself has expired, drop it (a login follows)."""
        assert self._session is not None
        headers = self._session.headers(self._transport.base_url + "/")
        # Whatever happens, do not ask again on every request: refreshing is worth one try per few minutes.
        self._next_refresh_try = self._clock() + TOKEN_REFRESH_RETRY
        for endpoint, path in (
            ("jwt_token", JWT_TOKEN_PATH),
            ("session_token", "/service/auth_ms_enho/api/v1/session/token"),
        ):
            try:
                reply = self._transport.request(endpoint, "GET", path, headers=headers)
            except CloudError as error:
                log.warning("Token refresh failed (%s); keeping the current token", error)
                return
            if session_expired(reply, plain_text_is_content=True):
                self._drop_session()
                return
            token = _token_from_reply(reply)
            if reply.status == 200 and token and token != self._session.token:
                cookies = {**self._session.cookies, **reply.cookies}
                if TOKEN_COOKIE in cookies:
                    cookies[TOKEN_COOKIE] = token
                self._adopt(make_session(cookies, token), save=True)
                log.info("Refreshed the Enlighten token")
                return
        log.warning("Token refresh gave no new token; keeping the current one until the service rejects it")

    def _login(self) -> CloudSession:
        now = self._clock()
        paused = self.state.login_paused_until
        if paused is not None and now < paused:
            still = AuthError(f"{self._pause_reason}; no login until {_iso(paused)}")
            still.unreachable = self._unreachable
            raise still
        if not self._password:
            raise self._pause(
                self._login_pause,
                "the saved session expired and no password is set: run `enphase-exporter login`",
            )
        try:
            answer = send_login(self._transport, self._email, self._password)
        except RateLimited as error:
            raise self._pause(error.retry_in, "login rate limited by Enlighten") from None
        except CloudError as error:
            failure = self._pause(self._transient_pause(), f"login failed: {error}")
            failure.unreachable = self._unreachable = error if isinstance(error, Unreachable) else None
            raise failure from None
        if answer.too_many_sessions:
            failure = self._pause(self._login_pause, "Enlighten answered 'Too many active sessions'")
            log.error(
                "Enlighten answered 'Too many active sessions'. No login will be attempted until %s; "
                "meanwhile make sure no other program logs in to this account repeatedly.",
                _iso(self.state.login_paused_until or now),
            )
            raise failure
        if answer.rejected:
            failure = self._pause(self._login_pause, "email or password rejected")
            log.error(
                "Enlighten rejected the email or password; fix ENPHASE_EMAIL/ENPHASE_PASSWORD. "
                "No login will be attempted until %s.",
                _iso(self.state.login_paused_until or now),
            )
            raise failure
        if answer.session is not None:
            log.info("Logged in to Enlighten")
            return answer.session
        if answer.asks_for_mfa:
            log.error(
                "This Enlighten account uses multi-factor authentication: run "
                "`enphase-exporter login` once on a terminal to create the session."
            )
            raise self._pause(self._login_pause, "MFA required: run `enphase-exporter login`")
        raise self._pause(self._transient_pause(), f"login failed: HTTP {answer.reply.status}")

    def _transient_pause(self) -> float:
        """One minute after the first unexplained failure, doubling up to the full login back-off."""
        self._transient_failures += 1
        return min(self._login_pause, TRANSIENT_LOGIN_PAUSE * 2 ** (self._transient_failures - 1))

    def _pause(self, seconds: float, reason: str) -> AuthError:
        """Stop logging in for a while; returns the error to raise now (and, with its reason, until then)."""
        self.state.login_paused_until = self._clock() + seconds
        self.state.ok = False
        self._pause_reason = reason
        self._unreachable = None  # set again by the caller when the cloud gave no answer
        return AuthError(f"{reason}; no login until {_iso(self.state.login_paused_until)}")


@dataclass(frozen=True, slots=True)
class LoginAnswer:
    """What Enlighten made of one login: a session, a one-time code to ask for, or a refusal."""

    reply: Reply
    session: CloudSession | None
    asks_for_mfa: bool
    too_many_sessions: bool
    rejected: bool  # email or password


def send_login(transport: Transport, email: str, password: str) -> LoginAnswer:
    """The one login request of ``serve`` and of the terminal ``login``: sent once, never retried.

    A retried login may leave one more session open on the server, and a few of those are how an account gets
    blocked ("Too many active sessions"). A 406 (a User-Agent the JSON endpoint dislikes) falls back to the
    HTML form, which answers the same way; that is a second endpoint, not a retry. Transport errors
    (``CloudError``, ``RateLimited``) are the caller's to handle."""
    register_secret(password)
    form = {"user[email]": email, "user[password]": password}
    reply = transport.request("login", "POST", "/login/login.json", data=form, retries=0)
    if reply.status == 406:
        reply = transport.request("login", "POST", "/login/login", data=form, retries=0)
    body = _json_or_none(reply)
    message = str(body.get("message", "")) if isinstance(body, Mapping) else ""
    session = session_from_login(reply, body) if reply.status < 400 else None
    return LoginAnswer(
        reply=reply,
        session=session,
        asks_for_mfa=session is None and reply.status < 400 and _asks_for_mfa(reply, body),
        too_many_sessions="too many active sessions" in message.lower(),
        rejected=reply.status == 401,
    )


def interactive_login(
    transport: Transport,
    email: str,
    password: str,
    ask_code: Callable[[], str],
    session_file: SessionFile,
    attempts: int = 3,
) -> CloudSession:
    """Log in once on a terminal, answering an MFA prompt, and save the session for ``serve``."""
    answer = send_login(transport, email, password)
    if answer.too_many_sessions:
        raise AuthError("Enlighten answered 'Too many active sessions': wait an hour or more, then try again")
    if answer.rejected:
        raise AuthError("email or password rejected")
    session = answer.session
    if session is None and answer.asks_for_mfa:
        session = _answer_mfa(transport, email, answer.reply.cookies, ask_code, attempts)
    if session is None:
        raise AuthError(f"login failed: HTTP {answer.reply.status}")
    session_file.save(session)
    return session


def _answer_mfa(
    transport: Transport, email: str, cookies: Mapping[str, str], ask_code: Callable[[], str], attempts: int
) -> CloudSession:
    for secret in cookies.values():
        register_secret(secret)
    cookie_header = "; ".join(f"{name}={value}" for name, value in cookies.items())
    for _ in range(attempts):
        code = ask_code().strip()
        register_secret(code)
        form = {"email": _b64(email), "otp": _b64(code)}
        # Never retried: a code sent twice counts twice towards the account's block for wrong codes.
        reply = transport.request(
            "validate_otp",
            "POST",
            "/app-api/validate_login_otp",
            data=form,
            headers={"Cookie": cookie_header},
            retries=0,
        )
        if reply.status >= 400:
            raise AuthError(f"Enlighten did not check the code (HTTP {reply.status}); run login again later")
        body = _json_or_none(reply)
        session = session_from_login(reply, body)
        if session is not None:
            return session
        if isinstance(body, Mapping) and body.get("isBlocked"):
            raise AuthError("Enlighten blocked the account after wrong codes; try again later")
        print("The code was not accepted.")
    raise AuthError("no valid one-time code was given")


def _asks_for_mfa(reply: Reply, body: Any) -> bool:
    if isinstance(body, Mapping) and body.get("requires_mfa"):
        return True
    return OTP_NONCE_COOKIE in reply.cookies


def _token_from_reply(reply: Reply) -> str | None:
    """``{"token": "…"}`` or the bare token as text; both forms are in use."""
    body = _json_or_none(reply)
    if isinstance(body, Mapping) and isinstance(body.get("token"), str):
        return body["token"]
    text = reply.body.decode("utf-8", "replace").strip().strip('"')
    return text if text.count(".") == 2 and " " not in text and "<" not in text else None


def _json_or_none(reply: Reply) -> Any:
    try:
        return json.loads(reply.body) if reply.body.strip() else None
    except ValueError:
        return None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
