"""Each site's live state: the latest frame, the energy integrated from every frame, and the stream's health.

Frames arrive about once a second per site, so they do not go through ``SnapshotStore`` (a new snapshot of
every site per update): each site's ``LiveSite`` is its own small immutable object, and a frame swaps in a
new one for that site alone. Renderers read ``LiveStore.sites()`` without a lock and never see a half-updated
site; writers of one site are serialised by a lock held for microseconds.

Energy is integrated from every frame, so ``rate()`` over the counters gives the true mean power between any
two scrapes, however far apart: each frame's power counts for the time since the frame before it (the frame
describes the second that led up to it). A gap longer than ``MAX_GAP`` (the stream was down) is not filled
in with a guess: it adds nothing. A flow's counter exists from the first frame that carries its meter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from exporter.live.frame import LiveFrame

SESSION_OUTCOMES = ("ok", "refused", "failed")
# flow -> (meter, sign): the flow is the part of the meter's power with that sign.
FLOWS: Mapping[str, tuple[str, int]] = {
    "pv_production": ("pv", 1),
    "load_consumption": ("load", 1),
    "grid_import": ("grid", 1),
    "grid_export": ("grid", -1),
    "battery_charge": ("storage", -1),
    "battery_discharge": ("storage", 1),
    "generator_production": ("generator", 1),
}
MAX_GAP = 5.0  # seconds between frames beyond which the stream counts as interrupted for the integration

_EMPTY: Mapping[str, float] = MappingProxyType({})
_NO_SESSIONS = dict.fromkeys(SESSION_OUTCOMES, 0)


@dataclass(frozen=True, slots=True)
class LiveSite:
    site_id: str
    frame: LiveFrame | None = None
    arrived_at: float | None = None  # Unix time the latest frame arrived (its own timestamp is a placeholder)
    # flow -> joules since the exporter started
    energy_joules: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    frames: int = 0
    bad_frames: int = 0
    sessions: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType(dict.fromkeys(SESSION_OUTCOMES, 0))
    )
    streaming: bool = False  # a session is subscribed to the site's stream
    stale_after: float = 15.0  # seconds without a frame after which the stream is not up (its `timeout`)
    next_try_at: float | None = None  # after a refused or failed session: when the next one is tried

    def up(self, now: float) -> bool:
        """Frames arrive: a session is subscribed and the latest frame is recent."""
        return self.streaming and self.arrived_at is not None and now - self.arrived_at <= self.stale_after


def integrate(energy: Mapping[str, float], frame: LiveFrame, seconds: float) -> Mapping[str, float]:
    """``energy`` plus ``frame``'s power over ``seconds``, split by sign into flows."""
    totals = dict(energy)
    for flow, (meter, sign) in FLOWS.items():
        reading = frame.meters.get(meter)
        if reading is None:
            continue
        totals[flow] = totals.get(flow, 0.0) + max(0.0, sign * reading.watts) * seconds
    return MappingProxyType(totals)


FrameListener = Callable[[LiveSite], None]


class LiveStore:
    def __init__(self, listeners: Sequence[FrameListener] = ()) -> None:
        self._sites: dict[str, LiveSite] = {}
        self._lock = threading.Lock()
        self._listeners = tuple(listeners)

    def sites(self) -> tuple[LiveSite, ...]:
        return tuple(self._sites.values())  # a copy made under the GIL: no lock needed to read

    def get(self, site_id: str) -> LiveSite | None:
        return self._sites.get(site_id)

    def delivering(self, site_id: str, now: float) -> bool:
        """The site's frames arrive right now (latest_power is not polled then)."""
        site = self._sites.get(site_id)
        return site is not None and site.up(now)

    def add_site(self, site_id: str) -> None:
        with self._lock:
            self._sites.setdefault(site_id, LiveSite(site_id))

    def frame(self, site_id: str, frame: LiveFrame, now: float) -> LiveSite:
        with self._lock:
            site = self._sites.get(site_id) or LiveSite(site_id)
            gap = None if site.arrived_at is None else now - site.arrived_at
            seconds = gap if gap is not None and 0 < gap <= MAX_GAP else 0.0
            site = self._sites[site_id] = replace(
                site,
                frame=frame,
                arrived_at=now,
                energy_joules=integrate(site.energy_joules, frame, seconds),
                frames=site.frames + 1,
            )
        for listener in self._listeners:
            listener(site)
        return site

    def bad_frame(self, site_id: str) -> None:
        self._change(site_id, lambda site: replace(site, bad_frames=site.bad_frames + 1))

    def session(self, site_id: str, outcome: str) -> None:
        def count(site: LiveSite) -> LiveSite:
            sessions = dict(site.sessions)
            sessions[outcome] = sessions.get(outcome, 0) + 1
            return replace(site, sessions=MappingProxyType(sessions))

        self._change(site_id, count)

    def streaming(self, site_id: str, streaming: bool, stale_after: float | None = None) -> None:
        def change(site: LiveSite) -> LiveSite:
            return replace(
                site,
                streaming=streaming,
                stale_after=site.stale_after if stale_after is None else stale_after,
            )

        self._change(site_id, change)

    def backing_off(self, site_id: str, until: float) -> None:
        self._change(site_id, lambda site: replace(site, next_try_at=until))

    def _change(self, site_id: str, change: Callable[[LiveSite], LiveSite]) -> None:
        with self._lock:
            self._sites[site_id] = change(self._sites.get(site_id) or LiveSite(site_id))
