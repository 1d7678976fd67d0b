"""The one contract between polling and the outputs: an immutable snapshot of everything last read.

Poll jobs build a new ``SiteSnapshot`` and swap it in; renderers read ``SnapshotStore.current`` without a
lock (a reference read is atomic) and never see a half-updated site. A source that fails keeps its last good
model here; only its ``SourceHealth`` changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from exporter.sources.ev_status import EvStatus
from exporter.sources.ev_summary import EvSummary
from exporter.sources.today import Today


@dataclass(frozen=True, slots=True)
class SourceHealth:
    up: bool
    last_attempt_timestamp: float
    last_success_timestamp: float | None
    error: str | None = None  # short and secret-free: shown on the landing page
    off: bool = False  # turned off for the site (it cannot work for the account): shown on the page only


@dataclass(frozen=True, slots=True)
class SiteSnapshot:
    site_id: str
    sources: tuple[str, ...]  # the sources enabled for this site
    health: Mapping[str, SourceHealth] = field(default_factory=dict)
    ev_status: EvStatus | None = None
    ev_summary: EvSummary | None = None  # lifetime energy already held monotonic
    today: Today | None = None
    lifetime_joules: Mapping[str, float] = field(default_factory=dict)  # channel -> held counter value
    # The further sources' models, by source name (see exporter.sources.source); None: nothing to show now
    models: Mapping[str, object] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        """Every enabled source succeeded at its latest attempt (a source not yet tried counts as down)."""
        return all(self.health.get(source, _NEVER).up for source in self.sources)


_NEVER = SourceHealth(up=False, last_attempt_timestamp=0.0, last_success_timestamp=None)


@dataclass(frozen=True, slots=True)
class Snapshot:
    sites: Mapping[str, SiteSnapshot] = field(default_factory=dict)


class SnapshotStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current = Snapshot()

    @property
    def current(self) -> Snapshot:
        return self._current

    def add_site(self, site_id: str, sources: tuple[str, ...]) -> None:
        self.update_site(site_id, lambda site: replace(site, sources=sources), sources)

    def update_site(
        self, site_id: str, change: Callable[[SiteSnapshot], SiteSnapshot], sources: tuple[str, ...] = ()
    ) -> SiteSnapshot:
        """Apply ``change`` to one site and publish a new snapshot; writers are serialised."""
        with self._lock:
            sites = dict(self._current.sites)
            site = sites.get(site_id) or SiteSnapshot(site_id=site_id, sources=sources)
            sites[site_id] = change(site)
            self._current = Snapshot(MappingProxyType(sites))
            return sites[site_id]
