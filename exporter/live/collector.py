"""The live stream's metrics (METRICS.md "Live site power"), fresh from ``LiveStore`` on every scrape.

No I/O: a scrape only reads each site's latest ``LiveSite``. When the stream is down the live series keep
their last values and ``enphase_site_live_last_frame_timestamp_seconds`` shows how old they are, while
``enphase_live_stream_up`` says 0; a meter the site does not have has no series at all. Sample::

    enphase_site_live_power_watts{meter="storage",site_id="1234567"} -1500.0
    enphase_site_live_phase_power_watts{meter="pv",phase="1",site_id="1234567"} 1100.0
    enphase_site_relay_state{relay="grid",site_id="1234567",state="closed"} 1.0
    enphase_live_stream_sessions_total{outcome="ok",site_id="1234567"} 3.0
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter.live.frame import BATTERY_MODES, RELAY_STATES, LiveFrame
from exporter.live.state import SESSION_OUTCOMES, LiveSite, LiveStore
from exporter.render_prometheus import Families

FRESH = " From the live stream, about one frame a second."


class LiveCollector(Collector):
    def __init__(self, store: LiveStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        families = Families()
        now = self._clock()
        for site in self._store.sites():
            labels = {"site_id": site.site_id}
            self._health(families, site, labels, now)
            if site.frame is not None:
                self._frame(families, site.frame, labels)
                families.gauge(
                    "enphase_site_live_last_frame_timestamp_seconds",
                    "When the latest live stream frame arrived (Unix time).",
                    labels,
                    site.arrived_at,
                )
            for flow, joules in site.energy_joules.items():
                families.counter(
                    "enphase_site_live_energy_joules",
                    "Energy integrated from every live stream frame since the exporter started, in joules; "
                    "rate() gives the mean power between two scrapes.",
                    {**labels, "flow": flow},
                    joules,
                )
        yield from families

    def _health(self, families: Families, site: LiveSite, labels: dict[str, str], now: float) -> None:
        families.gauge(
            "enphase_live_stream_up",
            "1 while live stream frames arrive for the site.",
            labels,
            site.up(now),
        )
        families.counter(
            "enphase_live_stream_frames", "Live stream frames received.", labels, float(site.frames)
        )
        families.counter(
            "enphase_live_stream_bad_frames",
            "Live stream frames that could not be decoded (also in enphase_parse_errors_total).",
            labels,
            float(site.bad_frames),
        )
        for outcome in SESSION_OUTCOMES:
            families.counter(
                "enphase_live_stream_sessions",
                "Live stream sessions started, by outcome: ok, refused (the cloud said no: 4xx, 429), "
                "failed (network, 5xx, broker).",
                {**labels, "outcome": outcome},
                float(site.sessions.get(outcome, 0)),
            )

    def _frame(self, families: Families, frame: LiveFrame, labels: dict[str, str]) -> None:
        for meter, reading in frame.meters.items():
            meter_labels = {**labels, "meter": meter}
            families.gauge(
                "enphase_site_live_power_watts",
                "Real power of the latest live frame, in watts: grid > 0 importing, storage > 0 "
                "discharging." + FRESH,
                meter_labels,
                reading.watts,
            )
            families.gauge(
                "enphase_site_live_apparent_power_voltamperes",
                "Apparent power of the latest live frame, in volt-amperes." + FRESH,
                meter_labels,
                reading.voltamperes,
            )
            for phase, watts in enumerate(reading.phase_watts, start=1):
                families.gauge(
                    "enphase_site_live_phase_power_watts",
                    "Real power per phase of the latest live frame, in watts." + FRESH,
                    {**meter_labels, "phase": str(phase)},
                    watts,
                )
        families.gauge(
            "enphase_site_live_state_of_charge_ratio",
            "Battery state of charge from the live stream (0-1)." + FRESH,
            labels,
            frame.state_of_charge_ratio,
        )
        families.gauge(
            "enphase_site_live_backup_reserve_ratio",
            "Battery reserve from the live stream (0-1)." + FRESH,
            labels,
            frame.backup_reserve_ratio,
        )
        if frame.battery_mode is not None:
            families.state_set(
                "enphase_battery_mode",
                "Battery mode as a state set: 1 for the current mode." + FRESH,
                labels,
                "mode",
                BATTERY_MODES,
                frame.battery_mode,
            )
        for relay, state in (("grid", frame.grid_relay), ("generator", frame.generator_relay)):
            if state is None:
                continue
            families.state_set(
                "enphase_site_relay_state",
                "Grid and generator relay state as a state set; the grid relay open is a grid outage."
                + FRESH,
                {**labels, "relay": relay},
                "state",
                RELAY_STATES,
                state,
            )
        for state, count in (
            ("total", frame.microinverters_total),
            ("running", frame.microinverters_running),
        ):
            families.gauge(
                "enphase_site_live_microinverters",
                "Microinverters of the site, and how many are running." + FRESH,
                {**labels, "state": state},
                count,
            )
