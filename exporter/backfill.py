"""``enphase-exporter backfill``: history from ``daily_energy`` into InfluxDB, or into an OpenMetrics file.

History is fetched a month per request (``CHUNK_DAYS``), plus one ``lifetime_energy`` request per site for its
first day and the energy before ``--since``, through the same client, budget and rate-limit handling as
polling: when the hourly request budget is spent or the cloud says 429, backfill waits and says
so on the progress bar. Every point has the upstream's own time, so running it again changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from tqdm import tqdm

from exporter.client import BudgetExhausted, CloudClient, RateLimited
from exporter.influx import InfluxOutput
from exporter.render_influx import history_points
from exporter.render_openmetrics import SiteHistory, write
from exporter.sources import daily_energy, lifetime_energy
from exporter.sources.energy_day import DEFAULT_MAX_SITE_POWER_WATTS, EnergyDay
from exporter.sources.lifetime_energy import LifetimeEnergy
from exporter.values import PayloadError

log = logging.getLogger(__name__)

CHUNK_DAYS = 31  # a month per request: answers of ~100 KB, and a year of history costs 12 requests
BUDGET_WAIT = 60.0  # seconds between looks at a spent hourly budget
MAX_INFLUX_WAIT = 300.0  # seconds of InfluxDB failing in a row before backfill gives up


class BackfillError(Exception):
    """Backfill cannot go on; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Span:
    since: date
    until: date

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def chunks(self, size: int = CHUNK_DAYS) -> Iterator[Span]:
        start = self.since
        while start <= self.until:
            end = min(self.until, start + timedelta(days=size - 1))
            yield Span(start, end)
            start = end + timedelta(days=1)


class History:
    """Fetches ``lifetime_energy`` and ``daily_energy``, waiting out rate limits and a spent budget instead
    of failing."""

    def __init__(
        self,
        client: CloudClient,
        *,
        max_site_power_watts: float = DEFAULT_MAX_SITE_POWER_WATTS,
        on_wait: Callable[[str], None] = lambda why: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._max_power = max_site_power_watts
        self.on_wait = on_wait  # told why backfill waits: the progress bar shows it
        self._sleep = sleep
        self._lifetimes: dict[str, LifetimeEnergy] = {}
        self.requests = 0
        self.problems = 0  # fields that could not be read: counted, the rest of the day still counts

    def lifetime(self, site_id: str) -> LifetimeEnergy:
        """The site's ``lifetime_energy`` (asked once): its first day, its daily totals, what it measures."""
        if site_id not in self._lifetimes:
            path = lifetime_energy.path(site_id)
            payload = self._call(lambda: self._client.get_json(lifetime_energy.ENDPOINT, path))
            try:
                parsed = lifetime_energy.parse(payload, max_power_watts=self._max_power)
            except PayloadError as error:
                raise BackfillError(f"site {site_id}: {error}") from None
            self.problems += len(parsed.problems)
            self._lifetimes[site_id] = parsed.value
        return self._lifetimes[site_id]

    def days(self, site_id: str, span: Span) -> tuple[EnergyDay, ...]:
        measured = self.lifetime(site_id).measured
        query = daily_energy.query(span.since, span.until)
        payload = self._call(
            lambda: self._client.get_json(daily_energy.ENDPOINT, daily_energy.path(site_id), query)
        )
        try:
            parsed = daily_energy.parse(payload, max_power_watts=self._max_power, measured=measured)
        except PayloadError as error:
            raise BackfillError(f"site {site_id}, {span.since}..{span.until}: {error}") from None
        self.problems += len(parsed.problems)
        return parsed.value.days

    def _call(self, request: Callable[[], object]) -> object:
        while True:
            try:
                self.requests += 1
                return request()
            except RateLimited as limited:
                self._wait(limited.retry_in, f"rate limited by the cloud: waiting {limited.retry_in:.0f} s")
            except BudgetExhausted:
                self._wait(BUDGET_WAIT, "hourly request budget spent (ENPHASE_REQUEST_BUDGET): waiting")

    def _wait(self, seconds: float, why: str) -> None:
        self.on_wait(why)
        self._sleep(seconds)


def to_influx(
    history: History, output: InfluxOutput, site_ids: tuple[str, ...], span: Span, now: float
) -> int:
    """Fetch and write month by month; returns the points InfluxDB accepted."""
    written = 0
    with _progress(span.days * len(site_ids), "backfill") as bar:
        history.on_wait = bar.set_description_str
        for site_id in site_ids:
            for chunk in _clamped(history, site_id, span, bar):
                bar.set_description_str(f"site {site_id} {chunk.since:%Y-%m}: fetching")
                points = list(history_points(site_id, history.days(site_id, chunk), now))
                output.put(points)
                bar.set_description_str(f"site {site_id} {chunk.since:%Y-%m}: writing")
                _drain(output)
                written += len(points)
                bar.update(chunk.days)
                bar.set_postfix(points=written, requests=history.requests)
        bar.set_description_str(f"done: {len(site_ids)} site(s) written")  # the line left on the screen
    return written


def to_openmetrics(
    history: History,
    path: Path,
    site_ids: tuple[str, ...],
    span: Span,
    history_start: date | None,
    now: float,
) -> int:
    """Fetch everything, then write the file; returns the number of samples."""
    sites = []
    with _progress(span.days * len(site_ids), "backfill") as bar:
        history.on_wait = bar.set_description_str
        for site_id in site_ids:
            # The counters count from ENPHASE_HISTORY_START, as the live ones do: days before it would make
            # the backfilled counters higher than the live ones where they meet, which reads as a reset.
            chunks = list(_clamped(history, site_id, span, bar, history_start))
            days: list[EnergyDay] = []
            for chunk in chunks:
                bar.set_description_str(f"site {site_id} {chunk.since:%Y-%m}: fetching")
                days.extend(history.days(site_id, chunk))
                bar.update(chunk.days)
            base = (
                _lifetime_before(history.lifetime(site_id), history_start, chunks[0].since) if chunks else {}
            )
            sites.append(SiteHistory(site_id, tuple(sorted(days, key=lambda d: d.start_timestamp)), base))
        bar.set_description_str(f"done: {len(site_ids)} site(s) fetched")  # the line left on the screen
    temporary = path.with_name(path.name + ".partial")
    with temporary.open("w") as out:
        samples = write(out, sites, now)
    temporary.replace(path)  # a complete file or none: promtool must not read half a history
    return samples


def _clamped(
    history: History,
    site_id: str,
    span: Span,
    bar: tqdm,
    history_start: date | None = None,
) -> Iterator[Span]:
    """The span's chunks from the site's first day (or ``history_start``, if later) on; days before it are
    counted as done at once."""
    first = max(history.lifetime(site_id).start_date, history_start or date.min)
    if first > span.since:
        skipped = min(span.days, (first - span.since).days)
        bar.update(skipped)
        if first > span.until:
            return
        span = Span(first, span.until)
    yield from span.chunks()


def _lifetime_before(lifetime: LifetimeEnergy, history_start: date | None, since: date) -> dict[str, float]:
    """Joules per channel from the first day (``history_start`` or the site's) to the day before ``since``:
    where the backfilled counters begin, so that they meet the live counters (which count from the same
    day, with the same ``lifetime_energy``) without a reset."""
    first = max(history_start or lifetime.start_date, lifetime.start_date)
    skip, stop = (first - lifetime.start_date).days, (since - lifetime.start_date).days
    totals: dict[str, float] = {}
    for channel, series in lifetime.channels.items():
        known = [joules for joules in series[skip : max(skip, stop)] if joules is not None]
        if known:
            totals[channel] = sum(known)
    return totals


def _drain(output: InfluxOutput) -> None:
    waited = 0.0
    while output.queue.points:
        delay = output.send_once()
        if output.needs_a_person:
            raise BackfillError("InfluxDB refused the points; see the error above")
        if waited + delay > MAX_INFLUX_WAIT:
            raise BackfillError(
                f"InfluxDB did not take the points for {MAX_INFLUX_WAIT:.0f} s; run backfill again later "
                "(what was written stays, and writing it again changes nothing)"
            )
        waited = waited + delay if delay else 0.0
        time.sleep(delay)


def _progress(total: int, unit_name: str) -> tqdm:
    # disable=None: a bar on a terminal, nothing when stderr is a pipe or a file (cron, CI, logs).
    return tqdm(total=total, unit="day", desc=unit_name, disable=None, dynamic_ncols=True)
