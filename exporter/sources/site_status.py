"""Site status — ``today``'s ``siteStatus``, at no cost: it runs right after each successful ``today`` poll.

Sample output::

    enphase_site_status{site_id="1234567",status="normal"} 1.0
    enphase_site_status{site_id="1234567",status="comm"} 0.0

``siteStatus`` is "normal" when all is well and "comm" when the gateway stopped reporting (ENLIGHTEN_API.md
§5); "warning" and "error" are the app's other states. Anything else is ``unknown``, and counted. A ``today``
payload without ``siteStatus`` leaves the metric absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from exporter.readings import Reading, StateSet, state_of
from exporter.sources.source import Fetch, Source
from exporter.values import Parsed

if TYPE_CHECKING:
    from exporter.snapshot import SiteSnapshot

STATES = ("normal", "comm", "warning", "error", "unknown")


@dataclass(frozen=True, slots=True)
class SiteStatus:
    status: str  # one of STATES


def parse(raw: str | None) -> Parsed[SiteStatus | None]:
    """``today.siteStatus`` as read by ``today.parse`` (made safe there)."""
    if raw is None:
        return Parsed(None)
    status = state_of(raw, STATES)
    problems = (f"today.siteStatus: unknown status {raw[:40]!r}",) if status == "unknown" else ()
    return Parsed(SiteStatus(status), problems)


def fetch(poll: Fetch) -> Parsed[SiteStatus | None]:
    today = poll.site.today
    return parse(today.site_status if today is not None else None)


def readings(site: SiteSnapshot, model: SiteStatus) -> Iterator[Reading]:
    yield StateSet(
        "enphase_site_status",
        "Site status from today (siteStatus) as a state set: 1 for the current status; comm means the "
        "gateway stopped reporting.",
        {"site_id": site.site_id},
        "status",
        STATES,
        model.status,
    )


SOURCE = Source(
    name="site_status",
    reads="today's siteStatus, with no request of its own",
    default_interval=0,  # no job: it follows today
    minimum_interval=0,
    first_run=0.5,
    fetch=fetch,
    readings=readings,
    follows="today",
    requests_per_poll=0.0,
)
