"""All HTTP to the Enlighten cloud. Nothing else in the package imports ``requests``.

Two layers:

- ``Transport`` sends one logical request: timeouts on every call, retries with jittered exponential back-off
  on timeouts, connection errors and 5xx, ``Retry-After`` honoured on 429 (no request to that endpoint before
  it has passed), the account-wide request budget, and the upstream request metrics.
- ``CloudClient`` adds the session: it asks the ``Authenticator`` for headers, recognises an expired
  session in every form the service uses (401, 403, a 302 to the login page, or a 200 whose body is an
  HTML page), and renews it at most once per expired session.

Exception messages never contain header values, cookies or bodies: only endpoints, status codes and
exception type names.
"""

from __future__ import annotations

import collections
import json
import random
import re
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3
from prometheus_client import CollectorRegistry, Counter, Histogram

from exporter import __version__
from exporter.logs import register_secret
from exporter.values import PayloadError

USER_AGENT = f"Mozilla/5.0 (compatible; enphase-exporter/{__version__})"
DEFAULT_RETRY_AFTER = 60.0  # a 429 without Retry-After still pauses the endpoint
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 6 * 3600.0  # a hostile or broken Retry-After must not silence an endpoint forever
# Years of daily_energy are a few MB; an answer many times that is broken, and reading it whole could cost
# the process all its memory.
MAX_BODY_BYTES = 32 * 2**20


class CloudError(Exception):
    """A request that did not produce a usable answer. The message is safe to log and show."""


class UpstreamUnavailable(CloudError):
    """Timeouts, connection errors and 5xx answers, after the retries."""


class Unreachable(UpstreamUnavailable):
    """No answer at all: connection refused, DNS, TLS or a timeout. The message names the cause and the
    host, which is what a person needs to fix it (a typo in the URL, a firewall, no network yet)."""

    def __init__(self, endpoint: str, cause: str, host: str) -> None:
        super().__init__(f"{endpoint}: {cause} ({host})")
        self.cause = cause
        self.host = host


class UpstreamError(CloudError):
    """An answer we cannot use that retrying will not fix (most 4xx)."""

    def __init__(self, endpoint: str, status: int) -> None:
        super().__init__(f"{endpoint}: HTTP {status}")
        self.status = status


class PayloadTooLarge(CloudError):
    """An answer beyond ``MAX_BODY_BYTES``; it was not read."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(f"{endpoint}: the answer is larger than {MAX_BODY_BYTES // 2**20} MiB; not read")


class RateLimited(CloudError):
    def __init__(self, endpoint: str, retry_in: float, resume_at: float) -> None:
        # The end of the pause rather than the time left: the message stays the same for the whole pause,
        # so the poller logs one line for it, not one per poll.
        moment = datetime.fromtimestamp(resume_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        super().__init__(f"{endpoint}: rate limited, no request before {moment}")
        self.retry_in = retry_in


class BudgetExhausted(CloudError):
    """The account-wide hourly request budget is spent; the request was not sent."""


class AuthError(CloudError):
    """No usable session: bad credentials, MFA needed, login paused, or pasted headers rejected."""

    # Set when the login got no answer at all: the caller can then say the cloud is unreachable, not that
    # the account is wrong.
    unreachable: Unreachable | None = None


class SessionExpired(AuthError):
    pass


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str] = field(repr=False)  # lower-case names; may carry Set-Cookie
    body: bytes = field(repr=False)  # a login answer holds the session id and token
    cookies: Mapping[str, str] = field(repr=False)

    def json(self, endpoint: str) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise PayloadError(f"{endpoint}: the body is not valid JSON ({len(self.body)} bytes)") from None

    @property
    def is_html(self) -> bool:
        return "html" in self.headers.get("content-type", "") or self.body.lstrip()[:1] == b"<"

    @property
    def is_json(self) -> bool:
        return "json" in self.headers.get("content-type", "") and not self.is_html


class RequestMetrics:
    """``enphase_api_requests_total`` and ``enphase_api_request_duration_seconds``, one per attempt."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "enphase_api_requests",
            "Requests to the Enlighten cloud by endpoint and HTTP status (timeout or error: no status).",
            ["endpoint", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "enphase_api_request_duration_seconds",
            "Latency of requests to the Enlighten cloud.",
            ["endpoint"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
            registry=registry,
        )

    def observe(self, endpoint: str, code: str, seconds: float) -> None:
        self.requests.labels(endpoint, code).inc()
        self.duration.labels(endpoint).observe(seconds)


class RequestBudget:
    """At most ``per_hour`` requests in any sliding hour, for the whole account.

    The scheduler stretches intervals so that polling plans stay well inside the budget; this is the hard
    stop for what planning cannot see (retries, logins, token refreshes).
    """

    def __init__(self, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_hour = per_hour
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def try_take(self) -> bool:
        with self._lock:
            now = self._clock()
            while self._sent and self._sent[0] <= now - 3600:
                self._sent.popleft()
            if len(self._sent) >= self.per_hour:
                return False
            self._sent.append(now)
            return True

    def used(self) -> int:
        with self._lock:
            return len(self._sent)


class Transport:
    def __init__(
        self,
        base_url: str,
        metrics: RequestMetrics,
        *,
        budget: RequestBudget | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retries: int = 3,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._metrics = metrics
        self._budget = budget
        self._timeout = (connect_timeout, read_timeout)
        self._retries = retries
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._not_before: dict[str, float] = {}  # endpoint -> monotonic time of the next allowed request
        self._resume_at: dict[str, float] = {}  # endpoint -> the same as Unix time, for messages
        self._pause_lock = threading.Lock()
        self._local = threading.local()  # a requests.Session per thread: pooling without sharing state

    def request(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retries: int | None = None,
        json_body: Any = None,
    ) -> Reply:
        """Send with retries; 429 raises ``RateLimited`` and pauses the endpoint; other statuses return.

        ``retries=0`` is for logins and charger control: a retried login may leave one more session open on
        the server, and a retried start or stop may act twice, or act after the user gave up.
        """
        retries = self._retries if retries is None else retries
        for attempt in range(retries + 1):
            last_try = attempt == retries
            self._check_not_paused(endpoint)  # before every attempt: another thread may have met a 429
            if self._budget is not None and not self._budget.try_take():
                raise BudgetExhausted(f"{endpoint}: hourly request budget spent, request not sent")
            try:
                reply = self._send_once(endpoint, method, path, params, data, headers, json_body)
            except UpstreamUnavailable:
                if last_try:
                    raise
                self._back_off(attempt)
                continue
            if reply.status == 429:
                retry_in = min(
                    MAX_RETRY_AFTER, _retry_after_seconds(reply.headers.get("retry-after"), time.time())
                )
                with self._pause_lock:
                    if self._clock() + retry_in > self._not_before.get(endpoint, 0.0):
                        self._not_before[endpoint] = self._clock() + retry_in
                        self._resume_at[endpoint] = time.time() + retry_in
                    resume_at = self._resume_at.get(endpoint, time.time() + retry_in)
                raise RateLimited(endpoint, retry_in, resume_at)
            if reply.status >= 500 and not last_try:
                self._back_off(attempt)
                continue
            if reply.status >= 500:
                raise UpstreamUnavailable(f"{endpoint}: HTTP {reply.status} after {attempt + 1} attempts")
            return reply
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _check_not_paused(self, endpoint: str) -> None:
        with self._pause_lock:
            remaining = self._not_before.get(endpoint, 0.0) - self._clock()
            resume_at = self._resume_at.get(endpoint, time.time() + remaining)
        if remaining > 0:
            raise RateLimited(endpoint, remaining, resume_at)

    def _send_once(
        self,
        endpoint: str,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        json_body: Any = None,
    ) -> Reply:
        session = self._session()
        started = time.perf_counter()
        code = "error"
        try:
            response = session.request(
                method,
                self.base_url + path,
                params=params,
                data=data,
                json=json_body,
                headers=dict(headers or {}),
                timeout=self._timeout,
                allow_redirects=False,  # a redirect to the login page is an expired session, not content
                stream=True,  # read below, within MAX_BODY_BYTES
            )
            code = str(response.status_code)
            body = _read_body(response, endpoint)
        except requests.Timeout as error:
            code = "timeout"
            raise Unreachable(endpoint, "timed out", self.host) from error
        except requests.ConnectionError as error:
            raise Unreachable(endpoint, network_cause(error), self.host) from error
        except requests.RequestException as error:
            raise UpstreamUnavailable(f"{endpoint}: {type(error).__name__}") from error
        finally:
            self._metrics.observe(endpoint, code, time.perf_counter() - started)
        return Reply(
            status=response.status_code,
            headers={name.lower(): value for name, value in response.headers.items()},
            body=body,
            cookies=dict(response.cookies.items()),
        )

    @property
    def host(self) -> str:
        """The cloud's host (and port), for messages: never the user part a URL may carry."""
        return host_of(self.base_url)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            session.trust_env = False  # no .netrc credentials or proxies picked up behind the user's back
            self._local.session = session
        return session

    def _back_off(self, attempt: int) -> None:
        """Full jitter: spreads retries of many sites so they do not hit the cloud together."""
        self._sleep(self._jitter(0, min(MAX_BACKOFF, 2.0**attempt)))


def host_of(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    return f"{host}:{port}" if port else host


def network_cause(error: BaseException) -> str:
    """Why a request got no answer, in words a person can act on. requests wraps the socket's error a few
    layers deep (ConnectionError -> MaxRetryError -> NewConnectionError -> ConnectionRefusedError), so the
    whole chain is searched, the most specific cause first (urllib3 files a refused connection under its
    connect timeouts). Only fixed phrases come out, never an exception's own text."""
    chain: list[BaseException] = []
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if isinstance(current, BaseException) and all(current is not known for known in chain):
            chain.append(current)
            pending += [
                *current.args,
                getattr(current, "reason", None),
                current.__cause__,
                current.__context__,
            ]
    causes: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
        ((ConnectionRefusedError,), "connection refused"),
        ((socket.gaierror, urllib3.exceptions.NameResolutionError), "DNS lookup failed"),
        ((ssl.SSLError, requests.exceptions.SSLError), "TLS failed"),
        ((ConnectionResetError,), "connection reset"),
        ((TimeoutError, urllib3.exceptions.TimeoutError, requests.Timeout), "timed out"),
    )
    for kinds, cause in causes:
        if any(isinstance(link, kinds) for link in chain):
            return cause
    return f"connection failed ({type(error).__name__})"


def _read_body(response: requests.Response, endpoint: str) -> bytes:
    """The body; one larger than ``MAX_BODY_BYTES`` (declared or found so) is not read to its end."""
    declared = response.headers.get("Content-Length", "")
    if not (declared.isdigit() and int(declared) > MAX_BODY_BYTES):
        chunks, size = [], 0
        for chunk in response.iter_content(2**16):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                break
        else:
            return b"".join(chunks)
    response.close()  # drops the connection rather than reading the rest
    raise PayloadTooLarge(endpoint)


def _retry_after_seconds(header: str | None, now: float) -> float:
    """``Retry-After`` as seconds or as an HTTP date; a missing or broken header gets a default pause."""
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(header).timestamp() - now)
        except (TypeError, ValueError):
            pass
    return DEFAULT_RETRY_AFTER


@dataclass(frozen=True, slots=True)
class Credentials:
    headers: Mapping[str, str] = field(repr=False)
    generation: int  # which session these belong to, so an expiry renews that session only once
    user_id: str | None = field(default=None, repr=False)  # from the login JWT, where it has one


class Authenticator(Protocol):
    def credentials(self) -> Credentials: ...

    def expired(self, generation: int) -> None: ...

    def accepted(self) -> None: ...

    def alive(self, generation: int) -> bool | None: ...  # None: cannot tell


@dataclass(frozen=True, slots=True)
class Answer:
    """What a control request got back: the status, and the JSON body where there is one."""

    status: int
    payload: Any = field(default=None, repr=False)  # a refusal may echo what it was sent


class CloudClient:
    def __init__(self, transport: Transport, auth: Authenticator) -> None:
        self.transport = transport
        self.auth = auth
        # Paths (one site's endpoint) that rejected a session right after it was renewed: for them a
        # rejection means "not for this account" (a site without a charger answers 403), not "expired".
        # Logging in again on every poll would get the account blocked, so they fail alone until they
        # accept a session again. Keyed by path, so one site's refusal never blocks another site's renewal.
        self._rejecting: set[str] = set()
        self._alive_generation: int | None = None  # a session some request accepted, or the cloud confirmed

    @property
    def logs_in(self) -> bool:
        """Whether a new session can come (a login); pasted headers stay what they are."""
        return bool(getattr(self.auth, "logs_in", True))

    def user_id(self) -> str | None:
        """The account's user id (from the login JWT), which the battery settings service asks for."""
        return self.auth.credentials().user_id

    def get_json(
        self,
        endpoint: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        bearer: bool = False,
        as_user: bool = False,
    ) -> Any:
        """GET a JSON payload. ``bearer``: the session token also as ``Authorization: Bearer`` (the scheduler
        service wants it); ``as_user``: the user id as a ``Username`` header (the battery config service)."""
        credentials = used = self.auth.credentials()
        reply = self.transport.request(
            endpoint, "GET", path, params=params, headers=_headers(credentials, bearer, as_user)
        )
        if session_expired(reply):
            if path in self._rejecting and not self._session_ended(credentials.generation):
                raise UpstreamError(endpoint, reply.status)
            self.auth.expired(credentials.generation)
            renewed = self.auth.credentials()
            if renewed.generation == credentials.generation:
                raise SessionExpired(f"{endpoint}: the session was rejected (HTTP {reply.status})")
            reply = self.transport.request(
                endpoint, "GET", path, params=params, headers=_headers(renewed, bearer, as_user)
            )
            if session_expired(reply):
                self._rejecting.add(path)
                raise UpstreamError(endpoint, reply.status)
            used = renewed
        if reply.status >= 300:
            raise UpstreamError(endpoint, reply.status)
        payload = reply.json(endpoint)
        self._rejecting.discard(path)
        self._alive_generation = used.generation
        self.auth.accepted()
        return payload

    def send_json(self, endpoint: str, method: str, path: str, body: Any = None) -> Answer:
        """A request that changes something (charger control), sent once: never retried.

        A timeout, a connection error or a 5xx raises ``UpstreamUnavailable`` after that single attempt. The
        cloud may have acted on it, and sending it again could start or stop a charge twice, or long after
        the user gave up. The one exception is a rejected session: a rejected request was not carried out,
        so it goes again once with the renewed session. Every other answer returns, for the caller to judge
        (for control, 400/404/405 mean "another form of the request", 409/422 "nothing to do").
        The session token also travels as a bearer token: the scheduler and control services want it.
        """
        credentials = self.auth.credentials()
        reply = self._send_once(endpoint, method, path, body, credentials)
        # A 200 that is not JSON is a plain success here (some control answers have no body); only a
        # login page means the session ended.
        if session_expired(reply, plain_text_is_content=True):
            self.auth.expired(credentials.generation)
            renewed = self.auth.credentials()
            if renewed.generation == credentials.generation:
                raise SessionExpired(f"{endpoint}: the session was rejected (HTTP {reply.status})")
            reply = self._send_once(endpoint, method, path, body, renewed)
        try:
            payload = json.loads(reply.body) if reply.body.strip() and not reply.is_html else None
        except (ValueError, RecursionError):
            payload = None
        if reply.status < 300:
            self.auth.accepted()
        return Answer(reply.status, payload)

    def _send_once(self, endpoint: str, method: str, path: str, body: Any, credentials: Credentials) -> Reply:
        headers = _headers(credentials, bearer=True, as_user=False)
        return self.transport.request(endpoint, method, path, headers=headers, json_body=body, retries=0)

    def _session_ended(self, generation: int) -> bool:
        """Whether a rejecting path met an ended session this time, rather than its usual refusal.

        Without asking, a session that ends while no other path is polled (one source enabled) would never
        be renewed. Asked only about a session that nothing has accepted, and then once per session.
        """
        if generation == self._alive_generation:
            return False
        alive = self.auth.alive(generation)
        if alive:
            self._alive_generation = generation
        return alive is False


def _headers(credentials: Credentials, bearer: bool, as_user: bool) -> Mapping[str, str]:
    if not (bearer or as_user):
        return credentials.headers
    headers = dict(credentials.headers)
    token = headers.get("e-auth-token")
    if bearer and token:
        headers["Authorization"] = f"Bearer {token}"
    if as_user and credentials.user_id:
        headers["Username"] = credentials.user_id
    return headers


def session_expired(reply: Reply, *, plain_text_is_content: bool = False) -> bool:
    """The service's ways of saying "log in again": 401, 403, a redirect, or a 200 that is not JSON.

    A 200 labelled JSON that does not parse is a broken payload (a parse error), not a login page. The token
    endpoint may answer with the bare token as text, so there only an HTML page means "expired".
    """
    if reply.status in (401, 403) or 300 <= reply.status < 400:
        return True
    if reply.status != 200:
        return False
    return reply.is_html if plain_text_is_content else not reply.is_json


# -- the IQ Gateway on the local network ---------------------------------------------------------------------
#
# A separate transport, because almost everything differs from the cloud's: the gateway's certificate is
# self-signed (pinned by fingerprint, or knowingly not checked), its token is a bearer token of its own, it
# costs no cloud budget, and it is never retried (the cloud is the fallback the moment it fails, and a
# gateway that does not answer within seconds would only hold the poll up). What stays the same lives here
# too: timeouts, the body size limit, no credentials from the environment, secret-free messages.

GATEWAY_TIMEOUT = (3.0, 10.0)  # (connect, read): it is on the local network


class GatewayError(Exception):
    """The gateway gave no usable answer. The message is safe to log and show."""


class GatewayUnauthorized(GatewayError):
    """401/403: the token lacks the scope (owner tokens today: installer scope is needed)."""


class GatewayCertificateMismatch(GatewayError):
    """The gateway presented a certificate other than the pinned one: nothing was sent to it."""


class _PinnedAdapter(requests.adapters.HTTPAdapter):
    """Accepts exactly one certificate, by its SHA-256; chain and host name are not what is trusted."""

    def __init__(self, fingerprint: str) -> None:
        self._fingerprint = fingerprint
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(*args, **kwargs)


class GatewayTransport:
    def __init__(
        self,
        base_url: str,
        token: str,
        registry: CollectorRegistry,
        *,
        cert_sha256: str | None,
        timeout: tuple[float, float] = GATEWAY_TIMEOUT,
    ) -> None:
        """``cert_sha256=None`` accepts any certificate: only when the user asked for it (config checks)."""
        register_secret(token)
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.verify = False  # the fingerprint below is the check; a self-signed chain never verifies
        if cert_sha256 is not None:
            self._session.mount("https://", _PinnedAdapter(cert_sha256))  # every request, whatever the URL
        else:
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        self._lock = threading.Lock()  # one requests.Session, used by one poll at a time
        self.duration = Histogram(
            "enphase_gateway_request_duration_seconds",
            "Latency of requests to the local IQ Gateway, by endpoint (failures included).",
            ["endpoint"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8),
            registry=registry,
        )

    def get_json(self, endpoint: str, path: str) -> Any:
        started = time.perf_counter()
        try:
            with self._lock:
                response = self._session.get(
                    self.base_url + path,
                    headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
                    timeout=self._timeout,
                    allow_redirects=False,
                    stream=True,
                )
                body = _read_body(response, endpoint)
        except requests.exceptions.SSLError as error:
            if "fingerprint" in str(error).lower():
                got = re.search(r'got "?([0-9a-fA-F:]{40,})', str(error))
                seen = f" (it presented {got[1].replace(':', '').lower()})" if got else ""
                raise GatewayCertificateMismatch(
                    f"{endpoint}: the gateway's certificate does not match "
                    f"ENPHASE_GATEWAY_CERT_SHA256{seen}; nothing was sent"
                ) from None
            raise GatewayError(f"{endpoint}: TLS error ({type(error).__name__})") from None
        except requests.Timeout:
            raise GatewayError(f"{endpoint}: timed out") from None
        except (requests.RequestException, PayloadTooLarge) as error:
            raise GatewayError(f"{endpoint}: {type(error).__name__}") from None
        finally:
            self.duration.labels(endpoint).observe(time.perf_counter() - started)
        if response.status_code in (401, 403):
            raise GatewayUnauthorized(f"{endpoint}: HTTP {response.status_code}")
        if response.status_code != 200:
            raise GatewayError(f"{endpoint}: HTTP {response.status_code}")
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise GatewayError(f"{endpoint}: the body is not valid JSON ({len(body)} bytes)") from None
