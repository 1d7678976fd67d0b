"""Lifetime energy counters: settled days from ``daily_energy`` plus today so far, never going down.

Why not just sum ``daily_energy``? It is polled hourly; ``today`` every 5 minutes. Using today's fresher
total for the current day keeps the counters as live as the gauges. Why the guard? The cloud revises recent
buckets, sometimes downward; a Prometheus counter that decreases reads as a reset and corrupts ``rate()``.
So a counter holds its value instead, and the event is counted in ``enphase_counter_regressions_total``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta

from exporter.sources.daily_energy import DailyEnergy
from exporter.sources.energy_day import EnergyDay

# Re-fetch a few days back on each hourly poll: the cloud keeps correcting recent days for a while.
REFRESH_DAYS = 3


class DayLedger:
    """One site's per-day channel totals (joules), keyed by the day's local-midnight timestamp.

    Each day keeps its freshest observation, from either source: at 23:55 ``today`` has read more of the
    day than the hourly ``daily_energy`` did at 23:30, and after midnight that last reading is what keeps
    yesterday's part of the counter from dropping back.
    """

    def __init__(self) -> None:
        self._days: dict[float, tuple[float, Mapping[str, float]]] = {}  # start -> (observed at, totals)
        self._has_history = False

    @property
    def has_history(self) -> bool:
        """True once ``daily_energy`` delivered the history: before that, lifetime totals would be too low."""
        return self._has_history

    def record(self, daily: DailyEnergy, observed_at: float) -> None:
        self._has_history = True
        for day in daily.days:
            self.record_day(day, observed_at)

    def record_day(self, day: EnergyDay, observed_at: float) -> None:
        previous = self._days.get(day.start_timestamp)
        if previous is None or observed_at >= previous[0]:
            self._days[day.start_timestamp] = (observed_at, dict(day.channel_totals))

    def next_fetch_start(self, utc_today: date, site_start: date) -> date:
        """The whole history first; afterwards the last few days. One extra day of margin covers any
        time zone, since the site's local date can differ from the UTC date by one."""
        if not self._has_history:
            return site_start
        return max(site_start, utc_today - timedelta(days=REFRESH_DAYS + 1))

    def totals(self, today: EnergyDay | None) -> dict[str, float]:
        """Lifetime joules per channel; a channel that no day measured is absent."""
        if not self._has_history:
            return {}
        current: Mapping[str, float] = {}
        past = [totals for _, totals in self._days.values()]
        if today is not None and today.start_timestamp >= max(self._days):
            current = today.channel_totals
            past = [totals for start, (_, totals) in self._days.items() if start < today.start_timestamp]
        lifetime: dict[str, float] = {}
        for totals in (*past, current):
            for channel, joules in totals.items():
                lifetime[channel] = lifetime.get(channel, 0.0) + joules
        return lifetime


class CounterGuard:
    """Keeps exported counters monotonic for the life of the process."""

    def __init__(self, on_regression: Callable[[str, str], None]) -> None:
        self._last: dict[tuple[str, ...], float] = {}
        self._on_regression = on_regression

    def hold(self, site_id: str, metric: str, value: float, *key: str) -> float:
        identity = (site_id, metric, *key)
        previous = self._last.get(identity)
        if previous is not None and value < previous:
            self._on_regression(site_id, metric)
            return previous
        self._last[identity] = value
        return value
