"""Runs the live stream sessions of every site: one small thread per site steps its ``LiveSession``.

A thread per site keeps one site's slow credentials request or broker handshake from holding up another's
renewal; each sleeps until its session's next deadline or a connection event. ``serve`` starts this after
the poll scheduler (the gateway serial comes from the ``today`` poll); ``once`` does not stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from exporter.client import CloudClient
from exporter.live.session import Connect, LiveSession
from exporter.live.state import LiveStore
from exporter.snapshot import SnapshotStore

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")


def gateway_from_snapshot(
    store: SnapshotStore, site_id: str, polls_today: bool
) -> Callable[[], str | bool | None]:
    """The gateway serial ``today`` named; None while ``today`` has not answered; False when it answered
    without one, or is not polled (then ``devices.json`` is asked)."""

    def gateway() -> str | bool | None:
        if not polls_today:
            return False
        site = store.current.sites.get(site_id)
        if site is None or site.today is None:
            return None
        return site.today.gateway_serial or False

    return gateway


class LiveStreams:
    def __init__(
        self,
        client: CloudClient,
        store: LiveStore,
        snapshot: SnapshotStore,
        connect: Connect,
        *,
        mode: str,
        polls_today: bool,
        on_bad_frame: Callable[[], None],
        on_problems: Callable[[int], None],
        tick: Callable[[float], None] = lambda now: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._store = store
        self._snapshot = snapshot
        self._connect = connect
        self._mode = mode
        self._polls_today = polls_today
        self._on_bad_frame = on_bad_frame
        self._on_problems = on_problems
        self._tick = tick  # e.g. the InfluxDB windows: closes a window once its last frame is in
        self._clock = clock
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.sessions: dict[str, LiveSession] = {}

    def start(self, site_ids: Sequence[str]) -> None:
        for site_id in site_ids:
            session = LiveSession(
                site_id,
                self._client,
                self._store,
                self._connect,
                gateway_from_snapshot(self._snapshot, site_id, self._polls_today),
                mode=self._mode,
                on_bad_frame=self._on_bad_frame,
                on_problems=self._on_problems,
                clock=self._clock,
            )
            self.sessions[site_id] = session
            thread = threading.Thread(target=self._run, args=(session,), name=f"live-{site_id}", daemon=True)
            self._threads.append(thread)
            thread.start()
        log.info("Live stream (%s) for site(s) %s", self._mode, ", ".join(site_ids))

    def stop(self, grace: float = 5.0) -> None:
        self._stop.set()
        for session in self.sessions.values():
            session.wake.set()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, session: LiveSession) -> None:
        try:
            while not self._stop.is_set():
                session.wake.clear()
                try:
                    wait = session.step(self._clock())
                    self._tick(self._clock())
                except Exception:  # a bug must not end the site's stream for good
                    log.exception("Live stream of site %s: unexpected error", session.site_id)
                    wait = 30.0
                session.wake.wait(min(wait, 1.0))
        finally:
            session.close()
