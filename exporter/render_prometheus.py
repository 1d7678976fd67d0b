"""The Prometheus renderer: fresh metric families from the latest snapshot, on every scrape.

Nothing here does I/O or keeps state between scrapes, so a charger that disappears from the account takes its
series with it. Each table row is (metric name, help, getter); a getter returning None means the value is
absent, and no sample is written — never a 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from exporter.auth import AuthState
from exporter.catalog import (
    CHANNEL_MEANING,
    CHARGER_STATUS_GAUGES,
    CHARGER_SUMMARY_GAUGES,
    TODAY_GAUGES,
    channel_metric,
)
from exporter.poller import lifetime_metric_name
from exporter.readings import Counter, Gauge, Reading, StateSet, source_readings
from exporter.snapshot import SiteSnapshot, SnapshotStore
from exporter.sources import REGISTRY
from exporter.sources.energy_day import CHANNELS
from exporter.sources.ev_status import CONNECTOR_STATES, ChargerStatus
from exporter.sources.ev_summary import ChargerSummary
from exporter.sources.today import PROFILES, Today


@dataclass(frozen=True, slots=True)
class Intervals:
    """Poll intervals, for HELP strings that say how fresh a value is."""

    seconds: Mapping[str, int] = field(
        default_factory=lambda: {source.name: source.default_interval for source in REGISTRY}
    )
    ev_status_charging: int = 30

    def __getitem__(self, source: str) -> int:
        return self.seconds[source]


class Families:
    """Metric families created on first use, so a metric with no sample at all is not written."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    # Samples are appended directly: add_metric would split each labels dict into names and values and zip
    # them back into a dict, which made rendering 1.3 times as slow as prometheus_client's own Gauge objects
    # (benchmarks/scrape_cost.py). The dict is shared, not copied: nothing changes a labels dict once passed.

    def gauge(self, name: str, help_text: str, labels: dict[str, str], value: float | bool | None) -> None:
        if value is None:
            return
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = GaugeMetricFamily(name, help_text, labels=list(labels))
        family.samples.append(Sample(family.name, labels, float(value)))

    def state_set(
        self,
        name: str,
        help_text: str,
        labels: dict[str, str],
        label: str,
        states: Iterable[str],
        current: str,
    ) -> None:
        """An enumeration as METRICS.md wants it: one series per known state, 1 for ``current``."""
        for state in states:
            self.gauge(name, help_text, {**labels, label: state}, state == current)

    def counter(self, name: str, help_text: str, labels: dict[str, str], value: float | None) -> None:
        if value is None:
            return
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = CounterMetricFamily(name, help_text, labels=list(labels))
        family.samples.append(Sample(family.name + "_total", labels, value))

    def write(self, reading: Reading) -> None:
        """A reading of a source's ``readings`` (exporter.readings), as its kind is written."""
        if isinstance(reading, Gauge):
            self.gauge(reading.metric, reading.help, dict(reading.labels), reading.value)
        elif isinstance(reading, Counter):
            metric = reading.metric.removesuffix("_total")
            self.counter(metric, reading.help, dict(reading.labels), reading.value)
        elif isinstance(reading, StateSet):
            labels = dict(reading.labels)
            self.state_set(
                reading.metric, reading.help, labels, reading.label, reading.states, reading.current
            )
        else:
            details = {name: text or "" for name, text in reading.details.items()}
            self.gauge(reading.metric, reading.help, {**reading.labels, **details}, 1)

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


class SnapshotCollector(Collector):
    """Site data from the snapshot, and the state of authentication."""

    def __init__(
        self,
        store: SnapshotStore,
        auth_state: AuthState,
        intervals: Intervals = Intervals(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._auth = auth_state
        self._every = intervals
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        families = Families()
        for site in self._store.current.sites.values():
            self._site_health(families, site)
            if site.ev_status is not None:
                names = {c.serial: c.name for c in site.ev_status.chargers}
                for charger in site.ev_status.chargers:
                    self._charger_status(families, site.site_id, charger)
            else:
                names = {}
            if site.ev_summary is not None:
                for summary in site.ev_summary.chargers:
                    self._charger_summary(families, site.site_id, summary, names.get(summary.serial))
            if site.today is not None:
                self._today(families, site.site_id, site.today)
            self._lifetime(families, site)
            for reading in source_readings(site):
                families.write(reading)
        self._auth_state(families)
        yield from families

    def _site_health(self, families: Families, site: SiteSnapshot) -> None:
        families.gauge(
            "enphase_up",
            "1 when every enabled source of the site succeeded at its latest attempt.",
            {"site_id": site.site_id},
            site.up,
        )
        for source, health in site.health.items():
            if health.off:  # turned off, not failing: no alert for it (the status page says why)
                continue
            labels = {"site_id": site.site_id, "source": source}
            families.gauge(
                "enphase_source_up", "1 when the source's latest attempt succeeded.", labels, health.up
            )
            families.gauge(
                "enphase_source_last_success_timestamp_seconds",
                "When the source last succeeded (Unix time).",
                labels,
                health.last_success_timestamp,
            )

    def _charger_status(self, families: Families, site_id: str, charger: ChargerStatus) -> None:
        labels = {"site_id": site_id, "serial": charger.serial}
        fresh = (
            f" From ev_chargers/status, refreshed every {self._every['ev_status']} s "
            f"({self._every.ev_status_charging} s while charging)."
        )
        for name, help_text, getter in CHARGER_STATUS_GAUGES:
            families.gauge(name, help_text + fresh, labels, getter(charger))
        for connector in charger.connectors:
            families.state_set(
                "enphase_ev_charger_connector_status",
                "Connector status as a state set: 1 for the current status, 0 for the others." + fresh,
                {**labels, "connector": connector.connector_id},
                "status",
                CONNECTOR_STATES,
                connector.status,
            )

    def _charger_summary(
        self, families: Families, site_id: str, charger: ChargerSummary, status_name: str | None
    ) -> None:
        labels = {"site_id": site_id, "serial": charger.serial}
        fresh = f" From ev_chargers/summary, refreshed every {self._every['ev_summary']} s."
        info = {
            **labels,
            "name": charger.name or status_name or "",
            "model": charger.model or "",
            "firmware_version": charger.firmware_version or "",
        }
        families.gauge(
            "enphase_ev_charger_info", "Descriptive data of the charger (always 1)." + fresh, info, 1
        )
        for name, help_text, getter in CHARGER_SUMMARY_GAUGES:
            families.gauge(name, help_text + fresh, labels, getter(charger))
        families.counter(
            "enphase_ev_charger_energy_delivered_joules",
            "Lifetime energy delivered by the charger, in joules." + fresh,
            labels,
            charger.energy_delivered_joules,
        )
        for interface in charger.network_interfaces:
            families.gauge(
                "enphase_ev_charger_network_interface_up",
                "1 when the charger's network interface reports a connection." + fresh,
                {**labels, "interface": interface.name},
                interface.connected,
            )

    def _today(self, families: Families, site_id: str, today: Today) -> None:
        labels = {"site_id": site_id}
        fresh = f" From today, refreshed every {self._every['today']} s."
        for name, help_text, getter in TODAY_GAUGES:
            families.gauge(name, help_text + fresh, labels, getter(today))
        if today.profile is not None:
            families.state_set(
                "enphase_battery_profile",
                "Battery profile as a state set: 1 for the current profile." + fresh,
                labels,
                "profile",
                PROFILES,
                today.profile,
            )
        for channel, watts in today.power_watts.items():
            families.gauge(
                channel_metric(channel, "power_watts"),
                f"Mean power {CHANNEL_MEANING[channel]} over the latest settled interval, in watts." + fresh,
                labels,
                watts,
            )
        if today.day is None:
            return
        for channel, joules in today.day.channel_totals.items():
            families.gauge(
                channel_metric(channel, "today_joules"),
                f"Energy {CHANNEL_MEANING[channel]} since the site's local midnight, in joules." + fresh,
                labels,
                joules,
            )
        for (source, sink), series in today.day.flows.items():
            families.gauge(
                "enphase_site_energy_flow_today_joules",
                "Energy flow since local midnight, in joules (only flows the site measures)." + fresh,
                {**labels, "source": source, "sink": sink},
                _sum(series),
            )
        for load, series in today.day.loads.items():
            families.gauge(
                "enphase_site_load_today_joules",
                "Energy used by a measured load since local midnight, in joules." + fresh,
                {**labels, "load": load},
                _sum(series),
            )

    def _lifetime(self, families: Families, site: SiteSnapshot) -> None:
        fresh = (
            f" Every day since the site's first from lifetime_energy (every {self._every['lifetime_energy']} "
            f"s), recent days from daily_energy (every {self._every['daily_energy']} s), today so far from "
            f"today (every {self._every['today']} s)."
        )
        for channel in CHANNELS.values():
            families.counter(
                lifetime_metric_name(channel),
                f"Lifetime energy {CHANNEL_MEANING[channel]}, in joules." + fresh,
                {"site_id": site.site_id},
                site.lifetime_joules.get(channel),
            )

    def _auth_state(self, families: Families) -> None:
        paused = self._auth.login_paused_until
        paused = paused if paused is not None and paused > self._clock() else None
        families.gauge("enphase_auth_ok", "1 while the cloud session is valid.", {}, self._auth.ok)
        families.gauge(
            "enphase_auth_session_expiry_timestamp_seconds",
            "When the current token expires (Unix time), where known.",
            {},
            self._auth.session_expires_at,
        )
        families.gauge(
            "enphase_auth_login_blocked_until_timestamp_seconds",
            "Until when logins are paused after 'Too many active sessions', bad credentials or MFA "
            "(Unix time); absent when logins are allowed.",
            {},
            paused,
        )


def _sum(series: tuple[float | None, ...]) -> float:
    return sum(value for value in series if value is not None)
