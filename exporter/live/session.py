"""One site's live stream session: credentials, connection, renewal before the stream ends, reconnection.

``LiveSession.step(now)`` is the whole life cycle as a state machine on an injected clock (the tests drive it
on a fake one); ``LiveStreams`` in ``streams`` runs one thread per site that calls it. The MQTT connection is
behind ``Connect``: ``mqtt.open_link`` in production, a fake in the tests.

- **Start**: the gateway serial (``today``'s ``connectionDetails``, else ``devices.json``), credentials
  through the cloud client (budget, Retry-After, expired sessions, request metrics), connect, subscribe.
- **Renew** ``RENEW_MARGIN`` before ``live_stream_duration`` runs out (never a hard-coded 900 s): new
  credentials and a second connection; its first frame retires the old connection, so the stream has no gap
  and no frame is counted twice.
- **Reconnect** with fresh credentials when the broker drops the connection or nothing arrived for the
  credentials' ``timeout``.
- **Refused** (4xx, 429): a long pause growing 4 times per refusal, one log line. With ``auto`` a site the
  cloud refuses (no stream for this account or gateway) is asked again once a day; a site without a gateway
  is not asked at all.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from exporter.client import CloudClient, CloudError, RateLimited, SessionExpired, UpstreamError
from exporter.live.frame import FrameError, decode
from exporter.live.state import LiveStore
from exporter.sources import devices, live_stream
from exporter.sources.live_stream import StreamCredentials
from exporter.values import PayloadError

log = logging.getLogger(__name__)

MAX_RENEW_MARGIN = 60.0  # renew this long before the stream ends (840 s of 900, as the app's own client)
# What a delivering stream costs upstream: one credentials request per renewal, every 840 s of the live
# service's 900 s streams. The request budget's plan counts it (exporter.scheduler).
LIVE_STREAM_REQUESTS_PER_HOUR = 3600 / (900.0 - MAX_RENEW_MARGIN)
REFUSED_PAUSE = 900.0  # first pause after a refusal; 4 times longer per refusal in a row
FAILED_PAUSE = 15.0  # first pause after a failure (network, 5xx, broker); twice as long per failure in a row
MAX_FAILED_PAUSE = 900.0
MAX_PAUSE = 86400.0
AUTO_NOT_OFFERED_PAUSE = (
    86400.0  # auto: a site the cloud refuses, or that has no gateway, is asked once a day
)
# How long to wait for today's first answer to name the gateway before asking devices.json instead: a slow
# first answer then costs one request per site and process, not a late start of the live stream.
GATEWAY_WAIT = 3.0


class Link(Protocol):
    """One MQTT connection, subscribed to one stream."""

    def close(self) -> None: ...


class LinkEvents(Protocol):
    def message(self, link: Link, payload: bytes) -> None: ...

    def lost(self, link: Link, reason: str) -> None: ...


Connect = Callable[[StreamCredentials, str, LinkEvents], Link]


class Refused(Exception):
    """The cloud said no (4xx, 429): retrying soon would not help."""

    def __init__(self, reason: str, *, rate_limited_for: float | None = None) -> None:
        super().__init__(reason)
        self.rate_limited_for = rate_limited_for  # 429: the endpoint's pause (Retry-After)


@dataclass(slots=True)
class _Connection:
    link: Link
    credentials: StreamCredentials
    started: float
    last_activity: float  # the connection's start, then each frame's arrival
    lost: str | None = None  # why the broker dropped it
    frames: int = 0


class LiveSession:
    def __init__(
        self,
        site_id: str,
        client: CloudClient,
        store: LiveStore,
        connect: Connect,
        gateway: Callable[[], str | bool | None],
        *,
        mode: str = "auto",
        on_bad_frame: Callable[[], None] = lambda: None,
        on_problems: Callable[[int], None] = lambda count: None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        """``gateway()`` returns the serial, None while it is not known yet, or False when ``today`` has
        answered without one (then ``devices.json`` is asked, once)."""
        self.site_id = site_id
        self._client = client
        self._store = store
        self._connect = connect
        self._gateway = gateway
        self._mode = mode
        self._on_bad_frame = on_bad_frame
        self._on_problems = on_problems
        self._clock = clock
        self._jitter = jitter
        self._lock = threading.Lock()
        self.wake = threading.Event()  # set by link events so the runner steps at once
        self._active: _Connection | None = None
        self._pending: _Connection | None = None  # the renewal, until its first frame
        self._retry_at = 0.0
        self._refusals = 0
        self._failures = 0
        self._serial: str | None = None
        self._devices_asked = False
        self._offered: bool | None = None  # auto: what show_livestream said, asked after a first refusal
        self._first_seen: float | None = None
        self._reported: str | None = None  # the state last logged, so that each change logs once
        store.add_site(site_id)

    # -- the life cycle ------------------------------------------------------------------------------------

    def step(self, now: float) -> float:
        """Do what is due at ``now``; returns the seconds until the next step is due."""
        self._first_seen = now if self._first_seen is None else self._first_seen
        with self._lock:
            active, pending = self._active, self._pending
        if active is not None and (reason := self._gone(active, now)) is not None:
            self._retire(active)
            with self._lock:
                self._active = None
            self._store.streaming(self.site_id, False)
            self._report("reconnecting", f"Live stream of site {self.site_id} {reason}; reconnecting")
            if not active.frames:
                self._pause(now)  # a stream that never sent (a gateway offline): not every `timeout` s
            active = None
            if pending is not None and self._gone(pending, now) is None:
                self._promote(pending)  # the renewal is already connected: it carries on
                active, pending = pending, None
        if pending is not None and (reason := self._gone(pending, now)) is not None:
            self._retire(pending)
            with self._lock:
                self._pending = pending = None
            self._pause(now)  # a renewal that never sent; the stream still running carries on meanwhile
        if now < self._retry_at:
            return self._retry_at - now
        if active is None:
            self._open(now, renewal=False)
        elif pending is None and now >= self._renew_at(active):
            self._open(now, renewal=True)
        return self._next_step(now)

    def close(self) -> None:
        with self._lock:
            connections, self._active, self._pending = (self._active, self._pending), None, None
        for connection in connections:
            if connection is not None:
                connection.link.close()
        self._store.streaming(self.site_id, False)

    # -- events from the connections (paho's thread) ------------------------------------------------------

    def message(self, link: Link, payload: bytes) -> None:
        now = self._clock()
        with self._lock:
            connection = self._owner(link)
            if connection is None:
                return  # a retired connection's last frame: its successor already counts this moment
            connection.last_activity = now
            connection.frames += 1
            promote = connection is self._pending
        if promote:
            self._promote(connection)
        try:
            frame = decode(payload)
        except FrameError as error:
            self._store.bad_frame(self.site_id)
            self._on_bad_frame()
            log.debug("Live stream of site %s: %s", self.site_id, error)
            return
        self._store.frame(self.site_id, frame, now)
        if connection.frames == 1:
            self._refusals = self._failures = 0  # the stream works: pauses start short again
            self.wake.set()  # the runner reports "streaming"

    def lost(self, link: Link, reason: str) -> None:
        with self._lock:
            connection = self._owner(link)
            if connection is not None and connection.lost is None:
                connection.lost = reason
        self.wake.set()

    # -- helpers ---------------------------------------------------------------------------------------------

    def _owner(self, link: Link) -> _Connection | None:
        for connection in (self._active, self._pending):
            if connection is not None and connection.link is link:
                return connection
        return None

    def _gone(self, connection: _Connection, now: float) -> str | None:
        if connection.lost is not None:
            return f"was dropped by the broker ({connection.lost})"
        if now - connection.last_activity > connection.credentials.timeout:
            return f"was silent for {now - connection.last_activity:.0f} s"
        return None

    def _renew_at(self, connection: _Connection) -> float:
        duration = connection.credentials.duration
        return connection.started + duration - min(MAX_RENEW_MARGIN, duration / 10)

    def _next_step(self, now: float) -> float:
        with self._lock:
            active, pending = self._active, self._pending
        due = [self._retry_at] if now < self._retry_at else []
        for connection in (active, pending):
            if connection is not None:
                due.append(connection.last_activity + connection.credentials.timeout + 0.5)
        if active is not None and pending is None:
            due.append(self._renew_at(active))
        if active is not None and active.frames and self._reported != "streaming":
            self._report("streaming", f"Live stream of site {self.site_id}: streaming", logging.INFO)
        return max(0.05, min(due, default=now + 60.0) - now)

    def _promote(self, connection: _Connection) -> None:
        with self._lock:
            old, self._active, self._pending = self._active, connection, None
        if old is not None and old is not connection:
            old.link.close()
        self._store.streaming(self.site_id, True, connection.credentials.timeout)

    def _retire(self, connection: _Connection) -> None:
        connection.link.close()

    def _open(self, now: float, *, renewal: bool) -> None:
        try:
            serial = self._gateway_serial(now)
            if serial is None:
                return
            credentials = self._credentials(serial)
        except Refused as refusal:
            self._refused(now, refusal)
            return
        except (CloudError, PayloadError) as error:
            self._failed(now, str(error))
            return
        try:
            link = self._connect(credentials, self.site_id, self)
        except Exception as error:  # only the type is shown: the message of a library's error is not ours
            self._failed(now, f"could not connect to the broker: {type(error).__name__}")
            return
        # Events of the link before this point are not seen: a frame or two at most, and a drop that early
        # ends in silence, which the next step notices.
        connection = _Connection(link, credentials, now, now)
        self._store.session(self.site_id, "ok")
        with self._lock:
            if renewal and self._active is not None:
                self._pending = connection
                return
            self._active = connection
        self._store.streaming(self.site_id, True, credentials.timeout)

    def _gateway_serial(self, now: float) -> str | None:
        if self._serial is not None:
            return self._serial
        known = self._gateway()
        if isinstance(known, str):
            self._serial = known
            return known
        if known is None and now - (self._first_seen or now) < GATEWAY_WAIT:
            self._retry_at = now + 0.25  # today has not answered yet: look again soon, at no cost
            return None
        if not self._devices_asked:
            self._devices_asked = True
            payload = self._get(devices.ENDPOINT, devices.path(self.site_id), None)
            parsed = live_stream.gateway_from_devices(payload)
            self._on_problems(len(parsed.problems))
            if parsed.value is not None:
                self._serial = parsed.value
                return parsed.value
        self._report("no_gateway", f"Site {self.site_id} has no gateway: no live stream", logging.INFO)
        self._retry_at = now + AUTO_NOT_OFFERED_PAUSE
        self._devices_asked = False  # a gateway installed later is found tomorrow
        return None

    def _credentials(self, serial: str) -> StreamCredentials:
        payload = self._get(live_stream.ENDPOINT, live_stream.PATH, live_stream.query(serial))
        parsed = live_stream.parse(payload)
        self._on_problems(len(parsed.problems))
        return parsed.value

    def _get(self, endpoint: str, path: str, params: dict[str, str] | None) -> object:
        try:
            return self._client.get_json(endpoint, path, params)
        except RateLimited as error:
            raise Refused(str(error), rate_limited_for=error.retry_in) from None
        except UpstreamError as error:
            if 400 <= error.status < 500:
                raise Refused(str(error)) from None
            raise
        except SessionExpired as error:
            # A 401/403 that a new session did not cure (or pasted headers, which nothing renews): for the
            # live stream that is a refusal like any 4xx, and must not be asked again soon.
            raise Refused(str(error)) from None

    def _refused(self, now: float, refusal: Refused) -> None:
        self._store.session(self.site_id, "refused")
        self._refusals += 1
        if self._mode == "auto" and refusal.rate_limited_for is None and not self._shows_live_status():
            pause = AUTO_NOT_OFFERED_PAUSE  # the app shows no live status for the site either
        else:
            pause = min(MAX_PAUSE, REFUSED_PAUSE * 4 ** (self._refusals - 1))
            pause = max(pause, refusal.rate_limited_for or 0.0)
        self._retry_at = now + pause
        self._store.backing_off(self.site_id, self._retry_at)
        self._report(
            "refused",
            f"The cloud refused the live stream of site {self.site_id} ({refusal}); "
            f"next try in {pause / 3600:.2g} h",
        )

    def _shows_live_status(self) -> bool:
        """auto: whether ``show_livestream`` says the site has a live status (asked once): then a refusal is
        a passing one, met with the growing pause of ``on``; otherwise the site is asked again in a day."""
        if self._offered is None:
            try:
                payload = self._client.get_json(
                    live_stream.SHOW_ENDPOINT, live_stream.show_path(self.site_id), None
                )
                parsed = live_stream.parse_offered(payload)
                self._on_problems(len(parsed.problems))
                self._offered = parsed.value
            except (CloudError, PayloadError):
                self._offered = False
        return self._offered

    def _failed(self, now: float, reason: str) -> None:
        self._store.session(self.site_id, "failed")
        self._pause(now)
        self._report("failed", f"The live stream of site {self.site_id} could not start: {reason}")

    def _pause(self, now: float) -> None:
        """15 s, doubling with each failure in a row up to 15 min, jittered; a frame resets it."""
        self._failures += 1
        pause = min(MAX_FAILED_PAUSE, FAILED_PAUSE * 2 ** (self._failures - 1))
        self._retry_at = max(self._retry_at, now + self._jitter(pause / 2, pause))
        self._store.backing_off(self.site_id, self._retry_at)

    def _report(self, state: str, message: str, level: int = logging.WARNING) -> None:
        """One line when the state changes; a repeat goes to the debug log."""
        if state == self._reported:
            log.debug("%s", message)
            return
        self._reported = state
        log.log(level, "%s", message)
