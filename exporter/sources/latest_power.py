"""Latest PV production — ``GET /app-api/<site_id>/get_latest_power``.

A cheap stand-in for live power: PV production sampled every 5 minutes (times on 5-minute boundaries), a few
minutes late. Polled only while the site's live stream is not delivering frames; while it is, no request is
made and the gauge is absent (``enphase_site_live_power_watts{meter="pv"}`` says more). Sample output::

    enphase_site_latest_production_power_watts{site_id="1234567"} 752.0
    enphase_site_latest_production_timestamp_seconds{site_id="1234567"} 1.7732076e+09

Units, per field: ``value`` is in ``units`` (``W`` live; ``kW`` and ``mW`` read too, anything else is a
problem); ``time`` is epoch s. Either may be the string ``"N/A"``: absent, not a problem. Slightly negative
values at night are what the meter reads (its own consumption) and are kept; below -1 kW is broken.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exporter.readings import Gauge, Reading
from exporter.sources.energy_day import DEFAULT_MAX_SITE_POWER_WATTS
from exporter.sources.source import Fetch, Source
from exporter.values import Parsed, Reader, require_object

if TYPE_CHECKING:
    from exporter.snapshot import SiteSnapshot

ENDPOINT = "latest_power"
_UNIT_TO_WATTS = {"w": 1.0, "kw": 1000.0, "mw": 1e6}
_NIGHT_FLOOR_WATTS = -1000.0
_MISSING = "n/a"


@dataclass(frozen=True, slots=True)
class LatestPower:
    production_watts: float | None
    sampled_at: float | None  # Unix time of the sample


def path(site_id: str) -> str:
    return f"/app-api/{site_id}/get_latest_power"


def parse(payload: Any, *, max_power_watts: float = DEFAULT_MAX_SITE_POWER_WATTS) -> Parsed[LatestPower]:
    body = require_object(payload, ENDPOINT)
    reader = Reader()
    latest = reader.mapping(body, "latest_power", ENDPOINT, required=True)
    watts = None
    raw = latest.get("value")
    if not _is_missing(raw):
        unit = str(latest.get("units") or "W").strip().lower()  # no unit given: W, as the live one sends
        scale = _UNIT_TO_WATTS.get(unit)
        if scale is None:
            reader.problem("latest_power.units", f"unknown unit {unit[:20]!r}")
        else:
            watts = reader.coerce_number(
                raw,
                "latest_power.value",
                scale=scale,
                minimum=_NIGHT_FLOOR_WATTS,
                maximum=max_power_watts,
            )
    sampled_at = None
    if not _is_missing(latest.get("time")):
        sampled_at = reader.timestamp(latest, "time", "latest_power", epoch_unit="s")
    return Parsed(LatestPower(watts, sampled_at), tuple(reader.problems))


def fetch(poll: Fetch) -> Parsed[LatestPower] | Parsed[None]:
    if poll.live_delivering:
        return Parsed(None)  # the live stream says more, and costs less: no request
    site_id = poll.site.site_id
    return parse(poll.client.get_json(ENDPOINT, path(site_id)), max_power_watts=poll.max_power_watts)


def readings(site: SiteSnapshot, model: LatestPower) -> Iterator[Reading]:
    labels = {"site_id": site.site_id}
    yield Gauge(
        "enphase_site_latest_production_power_watts",
        "PV production of the latest 5-minute sample (get_latest_power), in watts; polled only while the "
        "live stream is not delivering.",
        labels,
        model.production_watts,
    )
    yield Gauge(
        "enphase_site_latest_production_timestamp_seconds",
        "When the latest PV production sample was taken (Unix time).",
        labels,
        model.sampled_at,
    )


def _is_missing(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and raw.strip().lower() == _MISSING)


SOURCE = Source(
    name="latest_power",
    reads="get_latest_power: PV production, a 5-minute sample; only while the live stream is not delivering",
    default_interval=600,
    minimum_interval=300,
    first_run=3.0,
    fetch=fetch,
    readings=readings,
)
