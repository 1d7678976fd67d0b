"""What the demo cloud saw and did: requests, faults, logins and session expiries, in order.

Tests read the latest events; a long run subscribes instead and checks each event as it happens, so the cloud
keeps only a bounded tail however long it runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .faults import Fault

KEEP = 10_000  # events kept for reading; listeners see every one


@dataclass(frozen=True, slots=True)
class Event:
    at: float  # the cloud's clock
    kind: str  # "request", "fault", "login" or "expiry"
    endpoint: str = ""  # the exporter's name for it: "today", "login", ...
    fault: Fault | None = None  # kind "fault": the fault that spoiled the answer
    outcome: str = ""  # login: "success", "invalid" or a fault's name; expiry: what expired the sessions
    sessions: int = 0  # expiry: how many live sessions it ended
    session: str = ""  # login "success": the new session's id


Listener = Callable[[Event], None]


class Journal:
    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._events: list[Event] = []
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def record(self, event: Event) -> None:
        with self._lock:  # listeners run under the lock too, so they see events in the journal's order
            self._events.append(event)
            if len(self._events) > self._keep:
                del self._events[: len(self._events) - self._keep // 2]
            for listener in self._listeners:
                listener(event)

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def events(self, kind: str | None = None, endpoint: str | None = None) -> list[Event]:
        with self._lock:
            return [
                event
                for event in self._events
                if (kind is None or event.kind == kind) and (endpoint is None or event.endpoint == endpoint)
            ]
