"""Checks, event by event, that a client treats the demo cloud the way the live service must be treated.

The rules (README, "How it polls the cloud" and "Too many active sessions"):

- ``retry_after``: no request to an endpoint before the ``Retry-After`` of its latest 429 has passed;
- ``login_backoff``: no login attempt during the back-off after "Too many active sessions" or bad
  credentials, and none within ``transient_pause`` after any other failed login;
- ``one_login_per_expiry``: between two successful logins, some session must have expired (or the first
  login's answer never reached the client: no request ever carried its session).

Subscribe it to a ``DemoCloud``'s journal before the client starts. Times are the cloud's arrival times, so
on a real clock the checks are slightly lenient (a client learns of a 429 a little after the cloud sent it),
never too strict. Only one request per endpoint may be under way at a time for ``retry_after`` to be exact:
a request sent before the 429 reached the client would be counted against it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from exporter.demo.journal import Event

KEEP_VIOLATIONS = 100


@dataclass(frozen=True, slots=True)
class Violation:
    at: float
    rule: str
    detail: str


class Referee:
    def __init__(
        self,
        login_backoff: float,
        transient_pause: float = 60.0,
        session_used: Callable[[str], bool] = lambda session: True,
    ) -> None:
        self.login_backoff = login_backoff
        self.transient_pause = transient_pause
        self._session_used = session_used  # DemoCloud.session_used
        self.violations: list[Violation] = []  # the first KEEP_VIOLATIONS
        # "request", "fault:<name>", "login:<outcome>", "expiry:<cause>", "violation:<rule>"
        self.counts: Counter[str] = Counter()
        self._not_before: dict[str, float] = {}  # endpoint -> end of its Retry-After
        self._logins_allowed_from = float("-inf")
        self._expired_since_login = True  # the first login needs no expiry before it
        self._last_session = ""
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if event.kind == "request":
                self._request(event)
            elif event.kind == "fault" and event.fault is not None:
                self.counts[f"fault:{event.fault.name}"] += 1
                if event.fault.name == "429":
                    end = event.at + event.fault.retry_after
                    self._not_before[event.endpoint] = max(self._not_before.get(event.endpoint, end), end)
            elif event.kind == "login":
                self._login(event)
            elif event.kind == "expiry":
                self.counts[f"expiry:{event.outcome}"] += 1
                self._expired_since_login = True

    def _request(self, event: Event) -> None:
        self.counts["request"] += 1
        not_before = self._not_before.get(event.endpoint, float("-inf"))
        if event.at < not_before:
            self._violation(event, "retry_after", f"{event.endpoint} {not_before - event.at:.1f} s early")
        if event.endpoint == "login" and event.at < self._logins_allowed_from:
            early = self._logins_allowed_from - event.at
            self._violation(event, "login_backoff", f"login {early:.1f} s before the back-off ended")

    def _login(self, event: Event) -> None:
        self.counts[f"login:{event.outcome}"] += 1
        if event.outcome == "success":
            # A login answer that came too late for the client's read timeout was never received: the
            # session it made was never used, and the login after it is the client's first, not a second.
            if not self._expired_since_login and self._session_used(self._last_session):
                self._violation(event, "one_login_per_expiry", "logged in again while a session was alive")
            self._expired_since_login, self._last_session = False, event.session
            return
        if event.outcome == "429":
            return  # the retry_after rule covers it
        refused = event.outcome in ("too_many_sessions", "invalid")
        pause = self.login_backoff if refused else self.transient_pause
        self._logins_allowed_from = max(self._logins_allowed_from, event.at + pause)

    def _violation(self, event: Event, rule: str, detail: str) -> None:
        self.counts[f"violation:{rule}"] += 1
        if len(self.violations) < KEEP_VIOLATIONS:
            self.violations.append(Violation(event.at, rule, detail))
