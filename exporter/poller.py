"""One poll of one source for one site: fetch, parse, publish into the snapshot, record the source's health.

Failures are data: a failing source keeps its last good model in the snapshot, sets its health to down with a
short secret-free reason, and leaves every other source alone. Parse problems (schema drift) are counted in
``enphase_parse_errors_total`` while the rest of the payload still yields its metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter

from exporter.catalog import channel_metric
from exporter.client import CloudClient, CloudError, GatewayError
from exporter.lifetime import DAILY, TODAY, CounterGuard, DayLedger
from exporter.snapshot import SiteSnapshot, SnapshotStore, SourceHealth
from exporter.sources import (
    BY_NAME,
    DEFAULTS,
    NAMES,
    daily_energy,
    ev_status,
    ev_summary,
    lifetime_energy,
    today,
)
from exporter.sources.daily_energy import DailyEnergy
from exporter.sources.energy_day import DEFAULT_MAX_SITE_POWER_WATTS
from exporter.sources.ev_summary import EvSummary
from exporter.sources.gateway import Gateway
from exporter.sources.source import Fetch, Incomplete, Source, Unavailable
from exporter.values import Parsed, PayloadError

log = logging.getLogger(__name__)

Change = Callable[[SiteSnapshot], SiteSnapshot]


class Fetched(NamedTuple):
    change: Change  # how the poll changes the site's snapshot
    history: DailyEnergy | None = None  # daily_energy only: the days just fetched


@dataclass(frozen=True, slots=True)
class Polled:
    """What one successful poll produced, for outputs that keep every reading (InfluxDB)."""

    site: SiteSnapshot  # the site after the poll
    source: str
    observed_at: float
    history: DailyEnergy | None = None  # daily_energy only: the days just fetched (not kept in the snapshot)


Listener = Callable[[Polled], None]


def lifetime_metric_name(channel: str) -> str:
    """``battery_charge`` → ``enphase_battery_charge_joules_total``; site channels get ``site_``."""
    return channel_metric(channel, "joules_total")


class Telemetry:
    """The exporter's own counters about what it read."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.parse_errors = Counter(
            "enphase_parse_errors",
            "Payloads or fields from the cloud that could not be understood.",
            ["source"],
            registry=registry,
        )
        self.counter_regressions = Counter(
            "enphase_counter_regressions",
            "Times the cloud revised a lifetime value downward; the exported counter held its value instead.",
            ["site_id", "metric"],
            registry=registry,
        )
        for source in NAMES:
            self.parse_errors.labels(source)  # present from the start, so rate() has a baseline


class Poller:
    def __init__(
        self,
        client: CloudClient,
        store: SnapshotStore,
        telemetry: Telemetry,
        *,
        history_start: date | None = None,
        max_site_power_watts: float = DEFAULT_MAX_SITE_POWER_WATTS,
        sources: tuple[str, ...] = DEFAULTS,
        listeners: Sequence[Listener] = (),
        clock: Callable[[], float] = time.time,
        gateway: Gateway | None = None,
        live_delivering: Callable[[str], bool] = lambda site_id: False,
    ) -> None:
        self._client = client
        self.gateway = gateway  # EV status from the local gateway where it answers
        self._store = store
        self._telemetry = telemetry
        self._history_start = history_start
        self._max_power = max_site_power_watts
        self._sources = sources  # the enabled ones: enphase_up is about these only
        self._listeners = tuple(listeners)
        self._clock = clock
        self._live_delivering = live_delivering
        self._off: set[tuple[str, str]] = set()  # (site, source) turned off: it cannot work for this account
        # Sources that run right after another's successful poll, with no job of their own (site_status).
        self._followers: dict[str, tuple[Source, ...]] = {}
        for name in sources:
            leader = BY_NAME[name].follows
            if leader is not None:
                self._followers[leader] = (*self._followers.get(leader, ()), BY_NAME[name])
        self._ledgers: dict[str, DayLedger] = {}
        self._guard = CounterGuard(
            lambda site, metric: telemetry.counter_regressions.labels(site, metric).inc()
        )
        self._problems_logged: set[str] = set()
        self._fetchers: dict[str, Callable[[str, float], Fetched]] = {
            "ev_status": self._ev_status,
            "ev_summary": self._ev_summary,
            "today": self._today,
            "lifetime_energy": self._lifetime_energy,
            "daily_energy": self._daily_energy,
        }

    def poll(self, site_id: str, source: str) -> bool:
        """Poll once; True when the source succeeded. Never raises: the scheduler must keep running."""
        if (site_id, source) in self._off:
            return False
        started = self._clock()
        fetched: Fetched | None = None
        error: str | None = None
        try:
            fetcher = self._fetchers.get(source)
            fetched = fetcher(site_id, started) if fetcher else self._fetch(BY_NAME[source], site_id, started)
        except Unavailable as failure:
            self._turn_off(site_id, source, str(failure))
            return False
        except Incomplete as failure:  # part of the answer came: it is shown, and the source is down
            fetched = self._publish(BY_NAME[source], failure.parsed)
            error = str(failure)
        except CloudError as failure:
            error = str(failure)
        except PayloadError as failure:
            self._telemetry.parse_errors.labels(source).inc()
            error = str(failure)
        except Exception:  # a bug must not stop the other sources or the process
            log.exception("Unexpected error polling %s for site %s", source, site_id)
            error = "internal error (see the log)"
        self._log_transition(site_id, source, error)

        def publish(site: SiteSnapshot) -> SiteSnapshot:
            previous = site.health.get(source)
            last_success = (
                started if error is None else (previous.last_success_timestamp if previous else None)
            )
            health = {**site.health, source: SourceHealth(error is None, started, last_success, error)}
            return replace(fetched.change(site) if fetched else site, health=health)

        site = self._store.update_site(site_id, publish, self._sources)
        if fetched is not None:
            self._tell_listeners(Polled(site, source, started, fetched.history))
        if error is None:
            for follower in self._followers.get(source, ()):
                self.poll(site_id, follower.name)
        return error is None

    def _tell_listeners(self, polled: Polled) -> None:
        for listener in self._listeners:
            try:
                listener(polled)
            except Exception:  # an output's bug must not stop polling or the other outputs
                log.exception(
                    "An output failed to take the %s poll of site %s", polled.source, polled.site.site_id
                )

    def _fetch(self, source: Source, site_id: str, now: float) -> Fetched:
        """A further source, from its ``fetch``: its model goes into the snapshot under its name."""
        assert source.fetch is not None, f"{source.name} has no fetch and no method of the poller"
        site = self._store.current.sites.get(site_id) or SiteSnapshot(site_id, self._sources)
        poll = Fetch(self._client, site, now, self._live_delivering(site_id), self._max_power)
        return self._publish(source, source.fetch(poll))

    def _turn_off(self, site_id: str, source: str, reason: str) -> None:
        log.warning("Site %s: %s is turned off: %s", site_id, source, reason)
        self._off.add((site_id, source))
        now = self._clock()

        def change(site: SiteSnapshot) -> SiteSnapshot:
            health = {**site.health, source: SourceHealth(False, now, None, f"off: {reason}", off=True)}
            enabled = tuple(name for name in site.sources if name != source)
            models = {name: model for name, model in site.models.items() if name != source}
            return replace(site, health=health, sources=enabled, models=models)

        self._store.update_site(site_id, change, self._sources)

    def _publish(self, source: Source, parsed: Parsed[object]) -> Fetched:
        self._count(source.name, parsed.problems)
        name, model = source.name, parsed.value
        return Fetched(lambda site: replace(site, models={**site.models, name: model}))

    # -- one method per source: fetch and parse now, return how to change the site's snapshot --------------

    def ev_status_via_gateway(self, site_id: str) -> bool:
        return self.gateway is not None and self.gateway.serves(site_id)

    def _ev_status(self, site_id: str, now: float) -> Fetched:
        if self.gateway is not None and self.gateway.site_id == site_id:
            self.gateway.rediscover_if_due()
        if self.gateway is not None and self.gateway.serves(site_id):
            try:
                parsed = self.gateway.ev_status()
            except GatewayError as error:
                self._gateway_health(site_id, now, str(error))
            else:
                self._gateway_health(site_id, now, None)
                self._count(ev_status.ENDPOINT, parsed.problems)
                return Fetched(lambda site: replace(site, ev_status=parsed.value))
        elif self.gateway is not None and self.gateway.site_id == site_id:
            self._gateway_health(site_id, now, "not in use (refused, failing or no charger listed)")
        parsed = ev_status.parse(self._client.get_json(ev_status.ENDPOINT, ev_status.path(site_id)))
        self._count(ev_status.ENDPOINT, parsed.problems)
        return Fetched(lambda site: replace(site, ev_status=parsed.value))

    def _gateway_health(self, site_id: str, now: float, error: str | None) -> None:
        """``enphase_source_up{source="gateway"}``: 1 while the site's EV status comes from the gateway.

        Kept apart from ``ev_status``'s health, which says whether EV status is current from either path,
        and outside the site's enabled sources, so an optional gateway never turns ``enphase_up`` to 0."""

        def change(site: SiteSnapshot) -> SiteSnapshot:
            previous = site.health.get("gateway")
            last = now if error is None else (previous.last_success_timestamp if previous else None)
            return replace(
                site, health={**site.health, "gateway": SourceHealth(error is None, now, last, error)}
            )

        self._store.update_site(site_id, change, self._sources)

    def _ev_summary(self, site_id: str, now: float) -> Fetched:
        payload = self._client.get_json(ev_summary.ENDPOINT, ev_summary.path(site_id), ev_summary.QUERY)
        parsed = ev_summary.parse(payload)
        self._count(ev_summary.ENDPOINT, parsed.problems)

        def change(site: SiteSnapshot) -> SiteSnapshot:
            held = tuple(
                replace(
                    c,
                    energy_delivered_joules=self._guard.hold(
                        site_id,
                        "enphase_ev_charger_energy_delivered_joules_total",
                        c.energy_delivered_joules,
                        c.serial,
                    ),
                )
                if c.energy_delivered_joules is not None
                else c
                for c in parsed.value.chargers
            )
            return replace(site, ev_summary=EvSummary(held))

        return Fetched(change)

    def _today(self, site_id: str, now: float) -> Fetched:
        ledger = self._ledger(site_id)
        payload = self._client.get_json(today.ENDPOINT, today.path(site_id))
        parsed = today.parse(payload, now, max_power_watts=self._max_power, measured=ledger.measured)
        self._count(today.ENDPOINT, parsed.problems)

        def change(site: SiteSnapshot) -> SiteSnapshot:
            if parsed.value.utc_offset_seconds is not None:
                ledger.learn_offset(parsed.value.utc_offset_seconds)
            ledger.record_days((parsed.value.day,) if parsed.value.day else (), now, TODAY)
            return self._with_lifetime(replace(site, today=parsed.value))

        return Fetched(change)

    def _lifetime_energy(self, site_id: str, now: float) -> Fetched:
        payload = self._client.get_json(lifetime_energy.ENDPOINT, lifetime_energy.path(site_id))
        parsed = lifetime_energy.parse(payload, max_power_watts=self._max_power)
        del payload  # years of days: not kept twice
        self._count(lifetime_energy.ENDPOINT, parsed.problems)
        ledger = self._ledger(site_id)

        def change(site: SiteSnapshot) -> SiteSnapshot:
            ledger.record_lifetime(parsed.value, now)
            return self._with_lifetime(site)

        return Fetched(change)

    def _daily_energy(self, site_id: str, now: float) -> Fetched:
        ledger = self._ledger(site_id)
        start = ledger.refresh_span(datetime.fromtimestamp(now, UTC).date())
        payload = self._client.get_json(
            daily_energy.ENDPOINT, daily_energy.path(site_id), daily_energy.query(start)
        )
        parsed = daily_energy.parse(payload, max_power_watts=self._max_power, measured=ledger.measured)
        self._count(daily_energy.ENDPOINT, parsed.problems)

        def change(site: SiteSnapshot) -> SiteSnapshot:
            ledger.record_days(parsed.value.days, now, DAILY)
            return self._with_lifetime(site)

        return Fetched(change, parsed.value)

    # -- helpers ----------------------------------------------------------------------------------------

    def _ledger(self, site_id: str) -> DayLedger:
        ledger = self._ledgers.get(site_id)
        if ledger is None:
            ledger = self._ledgers.setdefault(site_id, DayLedger(self._history_start))
        return ledger

    def _with_lifetime(self, site: SiteSnapshot) -> SiteSnapshot:
        ledger = self._ledger(site.site_id)
        # The counters start once daily_energy (when polled) has answered too: lifetime_energy's totals of the
        # last few days are checked per day only, and a counter never goes back down from a broken one.
        if not ledger.answered({DAILY} & set(self._sources)):
            return site
        totals = ledger.totals()
        held = {
            channel: self._guard.hold(site.site_id, lifetime_metric_name(channel), joules)
            for channel, joules in totals.items()
        }
        return replace(site, lifetime_joules={**site.lifetime_joules, **held})

    def _log_transition(self, site_id: str, source: str, error: str | None) -> None:
        """One line when a source starts failing, changes its reason, or recovers: not one per poll."""
        site = self._store.current.sites.get(site_id)
        previous = site.health.get(source) if site else None
        was = None if previous is None or previous.up else previous.error
        if error is not None and error != was:
            log.warning("Polling %s for site %s failed: %s", source, site_id, error)
        elif error is None and was is not None:
            log.info("Polling %s for site %s works again", source, site_id)
        elif error is not None:
            log.debug("Polling %s for site %s still fails: %s", source, site_id, error)

    def _count(self, source: str, problems: tuple[str, ...]) -> None:
        if not problems:
            return
        self._telemetry.parse_errors.labels(source).inc(len(problems))
        for problem in problems:
            # Once per source and field, not on every poll; keyed without the value, which hostile or
            # drifting payloads make different every time (the set would grow to its bound for nothing).
            key = f"{source}:{problem.partition(': ')[0]}"
            if key not in self._problems_logged and len(self._problems_logged) < 1000:
                self._problems_logged.add(key)
                log.warning("Could not read part of the %s payload: %s", source, problem)
