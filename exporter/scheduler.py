"""The scheduler owns time: one APScheduler job per (site, source).

- EV status polls faster while a charger of the site is charging, and slows down again afterwards.
- Jitter and staggered first runs keep many sites from hitting the cloud together.
- The request budget stretches every interval by one factor when the plan would exceed it. The plan assumes
  every site charging (the worst case), so the factor never has to change while the exporter runs.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.config import Settings
from exporter.live.session import LIVE_STREAM_REQUESTS_PER_HOUR
from exporter.poller import Poller
from exporter.snapshot import SnapshotStore
from exporter.sources import BY_NAME

log = logging.getLogger(__name__)

# Plan to use at most this share of the budget: logins, token refreshes and retries need the rest.
BUDGET_SHARE_FOR_POLLING = 0.8
# Chargers per site the plan assumes for per-charger sources (charge_mode): sites are known at start, their
# chargers only after the first polls. A site with more is covered by the budget's hard stop.
PLANNED_CHARGERS = 1
# A source polled at least this rarely that fails is asked again once, this much later.
RETRY_AFTER_FAILURE_FROM = 1800.0
RETRY_SECONDS = 300.0


def base_intervals(settings: Settings) -> dict[str, int]:
    """Seconds between polls of each enabled source that has a job of its own."""
    return {source: settings.intervals[source] for source in settings.sources if source in settings.intervals}


def hourly_requests(settings: Settings, *, live_stream: bool = False) -> float:
    """Requests an hour one site costs in the worst case (a car charging), before any stretching."""
    intervals: dict[str, float] = dict(base_intervals(settings))
    if "ev_status" in intervals:
        intervals["ev_status"] = min(settings.intervals["ev_status"], settings.ev_status_charging_interval)
    total = sum(BY_NAME[name].hourly_requests(every, PLANNED_CHARGERS) for name, every in intervals.items())
    return total + (LIVE_STREAM_REQUESTS_PER_HOUR if live_stream else 0.0)


def stretch_factor(settings: Settings, site_count: int, *, live_stream: bool = False) -> float:
    """How much every interval must grow so that the worst-case plan fits the budget (1.0: not at all).
    The live stream's renewals are counted but not stretched: a stream cannot renew less often."""
    polls = hourly_requests(settings)
    fixed = LIVE_STREAM_REQUESTS_PER_HOUR if live_stream else 0.0
    allowed = settings.request_budget * BUDGET_SHARE_FOR_POLLING - fixed * site_count
    if allowed <= 0:
        return math.inf
    return max(1.0, polls * site_count / allowed)


@dataclass(frozen=True, slots=True)
class PlannedPoll:
    site_id: str
    source: str
    interval: float  # seconds between polls, after the budget's stretch (and the charging or gateway pace)
    next_run: float | None  # Unix time of the next poll


@dataclass(frozen=True, slots=True)
class Plan:
    """What the scheduler is doing, for the status page."""

    factor: float  # every interval stretched this many times to fit the request budget (1.0: not at all)
    polls: tuple[PlannedPoll, ...]


class PollScheduler:
    def __init__(
        self,
        settings: Settings,
        poller: Poller,
        store: SnapshotStore,
        *,
        workers: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._poller = poller
        self._store = store
        self._clock = clock
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
            timezone=UTC,
        )
        self._sites: list[str] = []
        self._factor = 1.0
        self._charging: dict[str, bool] = {}
        self._via_gateway: dict[str, bool] = {}
        self._intervals: dict[str, float] = {}  # job id -> seconds, as last scheduled
        self._live_stream = settings.live_stream != "off"  # "auto" may stream: the plan counts it
        self._retried: set[str] = set()  # jobs whose failure was retried once, until they succeed again
        self._adding_retry = threading.Lock()
        self._stopping = False

    def plan(self) -> Plan | None:
        """The polls planned, or None before ``start``. Read from APScheduler's in-memory job store: safe to
        call on an HTTP request, it does no I/O."""
        if not self._scheduler.running:
            return None
        polls = []
        for job in self._scheduler.get_jobs():
            interval = self._intervals.get(job.id)
            if interval is None:
                continue  # the gateway's discovery: not a poll of a site's source
            site_id, _, source = job.id.partition(":")
            next_run = job.next_run_time.timestamp() if job.next_run_time else None
            polls.append(PlannedPoll(site_id, source, interval, next_run))
        return Plan(self._factor, tuple(polls))

    @property
    def factor(self) -> float:
        return self._factor

    def start(self, site_ids: tuple[str, ...]) -> None:
        self._sites = list(site_ids)
        self._factor = stretch_factor(self._settings, len(self._sites), live_stream=self._live_stream)
        if self._factor > 1.0:
            log.warning(
                "Polling %d site(s) at the configured intervals would exceed ENPHASE_REQUEST_BUDGET=%d "
                "requests/hour; every interval is stretched %.2f times.",
                len(self._sites),
                self._settings.request_budget,
                self._factor,
            )
        now = datetime.fromtimestamp(self._clock(), UTC)
        gateway = self._poller.gateway
        if (
            gateway is not None
            and self._settings.gateway is not None
            and "ev_status" in self._settings.sources
        ):
            gateway.assign_site(site_ids)
            # At start, before the first EV status poll (which then needs no cloud request), then every few
            # hours. A few seconds at most: the gateway's timeouts are short.
            gateway.discover()
            every = self._settings.gateway.discovery_interval
            self._scheduler.add_job(
                self._discover_gateway,
                IntervalTrigger(seconds=every, timezone=UTC),
                id="gateway:discovery",
                next_run_time=now + timedelta(seconds=every),
            )
        for index, site_id in enumerate(self._sites):
            self._store.add_site(site_id, self._settings.sources)
            self._via_gateway[site_id] = self._poller.ev_status_via_gateway(site_id)
            for source in base_intervals(self._settings):  # a source that follows another has no job
                interval = self.interval(source, charging=False, via_gateway=self._via_gateway[site_id])
                # Spread the sites' first runs evenly over one interval, in source order within a site;
                # lifetime_energy over today's, so that each site's today finds what the site measures.
                spread = interval
                if source == "lifetime_energy" and "today" in self._settings.sources:
                    spread = self.interval("today", charging=False)
                offset = BY_NAME[source].first_run + spread * index / len(self._sites)
                self._intervals[f"{site_id}:{source}"] = interval
                self._scheduler.add_job(
                    self._run,
                    self._trigger(interval),
                    args=(site_id, source),
                    id=f"{site_id}:{source}",
                    next_run_time=now + timedelta(seconds=offset),
                )
        self._scheduler.start()

    def shutdown(self, grace: float = 10.0) -> None:
        """Stop polling; polls already under way get ``grace`` seconds to finish, so that what they read
        reaches the outputs (the InfluxDB queue) before the process exits."""
        # No retry is added from now on: APScheduler's shutdown holds its job store lock while it waits for
        # running polls, and a poll adding a job then would wait for that lock for ever.
        with self._adding_retry:
            self._stopping = True
        waiting = threading.Thread(target=self._scheduler.shutdown, kwargs={"wait": True}, daemon=True)
        waiting.start()
        waiting.join(grace)

    def interval(self, source: str, *, charging: bool, via_gateway: bool = False) -> float:
        if source == "ev_status" and via_gateway and self._settings.gateway is not None:
            # Not stretched: a gateway read costs no cloud request.
            return float(self._settings.gateway.ev_status_interval)
        if source == "ev_status" and charging:
            return self._settings.ev_status_charging_interval * self._factor
        return base_intervals(self._settings)[source] * self._factor

    def _trigger(self, interval: float) -> IntervalTrigger:
        # Up to a tenth of the interval (at most 10 s) of jitter keeps sites from drifting into lockstep.
        # APScheduler's jitter only ever delays a run, so the base is shortened by it: the configured
        # interval is then the longest gap between two polls (how old the data can get), not the shortest.
        jitter = min(interval / 10, 10)
        return IntervalTrigger(seconds=interval - jitter, jitter=jitter, timezone=UTC)

    def _run(self, site_id: str, source: str) -> None:
        succeeded = self._poller.poll(site_id, source)
        self._after_poll(site_id, source)
        self._retry_once_if_failed(site_id, source, succeeded)

    def _after_poll(self, site_id: str, source: str) -> None:
        if source == "ev_status":
            self._follow_charging(site_id)

    def _retry_once_if_failed(self, site_id: str, source: str, succeeded: bool) -> None:
        """A source polled hourly that fails is asked again after RETRY_SECONDS, once: not an hour later (a
        passing 5xx, charge_mode before the chargers are listed), and not again and again while the cloud
        is down (the next retry comes only after a success)."""
        job_id = f"{site_id}:{source}"
        if succeeded:
            self._retried.discard(job_id)
            return
        # The configured interval, not the stretched one: under a tight budget no source gains retries.
        interval = base_intervals(self._settings).get(source, 0)
        if job_id in self._retried or interval < RETRY_AFTER_FAILURE_FROM:
            return
        self._retried.add(job_id)
        when = datetime.fromtimestamp(self._clock() + RETRY_SECONDS, UTC)
        with self._adding_retry:
            if self._stopping:
                return
            self._scheduler.add_job(
                self._retry,
                "date",
                run_date=when,
                args=(site_id, source),
                id=f"{job_id}:retry",
                replace_existing=True,
            )

    def _retry(self, site_id: str, source: str) -> None:
        if self._poller.poll(site_id, source):
            self._retried.discard(f"{site_id}:{source}")
        self._after_poll(site_id, source)

    def _discover_gateway(self) -> None:
        gateway = self._poller.gateway
        if gateway is None:
            return
        gateway.discover()
        if gateway.site_id is not None:
            self._follow_charging(gateway.site_id)

    def _follow_charging(self, site_id: str) -> None:
        """EV status polls faster while charging, and at the gateway's interval while the gateway answers."""
        site = self._store.current.sites.get(site_id)
        charging = bool(site and site.ev_status and site.ev_status.any_charging)
        via_gateway = self._poller.ev_status_via_gateway(site_id)
        if (charging, via_gateway) == (
            self._charging.get(site_id, False),
            self._via_gateway.get(site_id, False),
        ):
            return
        if charging != self._charging.get(site_id, False):
            log.info("Site %s %s charging", site_id, "started" if charging else "stopped")
        self._charging[site_id], self._via_gateway[site_id] = charging, via_gateway
        interval = self.interval("ev_status", charging=charging, via_gateway=via_gateway)
        log.info(
            "Site %s: EV status every %.0f s, from the %s",
            site_id,
            interval,
            "gateway" if via_gateway else "cloud",
        )
        self._intervals[f"{site_id}:ev_status"] = interval
        self._scheduler.reschedule_job(f"{site_id}:ev_status", trigger=self._trigger(interval))
