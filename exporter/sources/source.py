"""What the exporter knows about a source: one ``Source`` per module, listed once in ``REGISTRY``.

The scheduler, ``once``, the settings (``ENPHASE_SOURCES``, one interval setting per source), the status page,
the request budget, both renderers and the README's tables all read these descriptions; adding a source is a
module with a ``SOURCE`` plus its line in ``exporter.sources.REGISTRY``.

A source's ``fetch`` gets the site as last published and the cloud client, makes its requests and returns
its parsed model, which the poller keeps in the site's snapshot under the source's name; its ``readings``
turn that model into what the renderers write. The first sources (EV status and summary, today and the two
energy histories) are fetched by the poller itself (the lifetime ledger, the counter guard and the local
gateway live there) and rendered by code of their own; they have neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exporter.client import CloudError
from exporter.sources.energy_day import DEFAULT_MAX_SITE_POWER_WATTS
from exporter.values import Parsed

if TYPE_CHECKING:
    from exporter.client import CloudClient
    from exporter.readings import Reading
    from exporter.snapshot import SiteSnapshot


@dataclass(frozen=True, slots=True)
class Fetch:
    """What a source's fetch may use."""

    client: CloudClient
    site: SiteSnapshot  # the site as last published: its chargers, today's payload, the live stream's state
    now: float  # Unix time of the poll
    live_delivering: bool = False  # the site's live stream is delivering frames right now
    max_power_watts: float = DEFAULT_MAX_SITE_POWER_WATTS  # ENPHASE_MAX_SITE_POWER: above it is broken


class Incomplete(CloudError):
    """Part of a source's requests failed: what did answer (``parsed``) is shown, and the source is down."""

    def __init__(self, message: str, parsed: Parsed[Any]) -> None:
        super().__init__(message)
        self.parsed = parsed


class Unavailable(CloudError):
    """The source cannot work with this account's sign-in (battery_settings with a pasted token that names
    no user): it is turned off for the site, with one log line, and ``enphase_up`` no longer waits for it."""


Fetcher = Callable[[Fetch], Parsed[Any]]
Renderer = Callable[["SiteSnapshot", Any], Iterable["Reading"]]


@dataclass(frozen=True, slots=True)
class Source:
    name: str  # as in the `source` label, ENPHASE_SOURCES and ENPHASE_<NAME>_INTERVAL
    reads: str  # what it reads, for --help, the README and the status page
    default_interval: int  # seconds
    minimum_interval: int  # seconds; shorter is refused at start
    first_run: float  # seconds after start of the first poll of the first site: the order within a site
    fetch: Fetcher | None = None  # None: the poller fetches it itself (the first five sources)
    readings: Renderer | None = None  # None: rendered by the renderers' own code (the first five)
    enabled_by_default: bool = True
    requests_per_poll: float = 1.0  # for the budget's plan; per charger where ``per_charger``
    per_charger: bool = False
    follows: str | None = None  # runs right after this source's successful polls, with no job of its own
    needs: str = ""  # what it needs beyond a session, for the README ("the user id in the login token")

    @property
    def interval_setting(self) -> str:
        return f"ENPHASE_{self.name.upper()}_INTERVAL"

    @property
    def interval_flag(self) -> str:
        return f"--{self.name.replace('_', '-')}-interval"

    def hourly_requests(self, interval: float, chargers: int = 1) -> float:
        """Requests an hour at ``interval`` seconds (none for a source that follows another)."""
        if self.follows is not None:
            return 0.0
        return 3600 / interval * self.requests_per_poll * (chargers if self.per_charger else 1)
