"""Lifetime energy counters: settled days from ``daily_energy`` plus today so far, never going down.

Why not just sum ``daily_energy``? It is polled hourly; ``today`` every 5 minutes. Using today's fresher
total for the current day keeps the counters as live as the gauges. Why the guard? The cloud revises recent
buckets, sometimes downward; a Prometheus counter that decreases reads as a reset and corrupts ``rate()``.
So a counter holds its value instead, and the event is counted in ``enphase_counter_regressions_total``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import date, timedelta

from exporter.sources.daily_energy import DailyEnergy
from exporter.sources.energy_day import EnergyDay

# Re-fetch a few days back on each hourly poll: the cloud keeps correcting recent days for a while.
REFRESH_DAYS = 3
# The first history comes a quarter per request, so that one site's years are never in memory at once: a
# parsed day is about 40 KB (each interval value a Python float), three years about 45 MB. A quarter costs
# about 5 MB, and three years 12 requests instead of one.
HISTORY_CHUNK_DAYS = 92
# Days this far before the newest one are never fetched again (the refresh covers REFRESH_DAYS + 1 days back,
# give or take a day of time zone): only their sum is kept.
SETTLED_AFTER = (REFRESH_DAYS + 3) * 86400.0


class DayLedger:
    """One site's per-day channel totals (joules), keyed by the day's local-midnight timestamp.

    Each recent day keeps its freshest observation, from either source: at 23:55 ``today`` has read more of
    the day than the hourly ``daily_energy`` did at 23:30, and after midnight that last reading is what keeps
    yesterday's part of the counter from dropping back. Settled days are folded into one sum, so a site costs
    a week of days in memory, not its whole history (1,000 sites times years of days was most of the RSS).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the first history is recorded outside the snapshot's lock
        self._recent: dict[float, tuple[float, Mapping[str, float]]] = {}  # start -> (observed at, totals)
        self._settled: dict[str, float] = {}  # channel -> joules of every folded day
        self._settled_through = float("-inf")  # the start of the newest folded day
        self._fetched_through: date | None = None  # the last day of the first history's parts so far
        self._history_newest = float("-inf")  # the start of the newest day any daily_energy answer had
        self._has_history = False

    @property
    def has_history(self) -> bool:
        """True once ``daily_energy`` delivered the whole history: before that, lifetime totals would be
        too low."""
        return self._has_history

    def next_span(self, utc_today: date, site_start: date) -> tuple[date, date | None]:
        """The days the next ``daily_energy`` request asks for; an end of None means through today.

        First the whole history, one part of ``HISTORY_CHUNK_DAYS`` at a time (resuming after the last
        part recorded, should a poll fail halfway); afterwards the last few days. One extra day of margin
        covers any time zone, since the site's local date can differ from the UTC date by one.
        """
        if self._has_history:
            return max(site_start, utc_today - timedelta(days=REFRESH_DAYS + 1)), None
        start = site_start
        if self._fetched_through is not None:
            start = max(site_start, self._fetched_through + timedelta(days=1))
        end = start + timedelta(days=HISTORY_CHUNK_DAYS - 1)
        return start, (end if end < utc_today - timedelta(days=1) else None)

    def record(self, daily: DailyEnergy, observed_at: float, through: date | None = None) -> None:
        """Record a ``daily_energy`` answer: the days up to ``through`` (a part of the first history), or
        up to today (None), which completes the history."""
        with self._lock:
            for day in daily.days:
                self._record_day(day, observed_at)
                self._history_newest = max(self._history_newest, day.start_timestamp)
            if through is None:
                self._has_history = True
            elif not self._has_history:
                self._fetched_through = through
            self._fold(observed_at)

    def record_day(self, day: EnergyDay, observed_at: float) -> None:
        with self._lock:
            self._record_day(day, observed_at)
            self._fold(observed_at)

    def _record_day(self, day: EnergyDay, observed_at: float) -> None:
        if day.start_timestamp <= self._settled_through:
            return  # folded already: a day that old is never re-fetched, so this is a repeat of its answer
        previous = self._recent.get(day.start_timestamp)
        if previous is None or observed_at >= previous[0]:
            self._recent[day.start_timestamp] = (observed_at, dict(day.channel_totals))

    def _fold(self, observed_at: float) -> None:
        """Fold the days before the settled line into the sum. The line follows the newest day, capped at
        the clock, so a stale site or a day stamped in the future folds nothing it should not. Until the
        history is complete it also stays within the days the history has reached: days that ``today``
        recorded meanwhile must not settle, or the history's later parts would read as repeats."""
        if not self._recent:
            return
        line = min(max(self._recent), observed_at) - SETTLED_AFTER
        if not self._has_history:
            line = min(line, self._history_newest + 1)
        for start in sorted(start for start in self._recent if start < line):
            _, totals = self._recent.pop(start)
            for channel, joules in totals.items():
                self._settled[channel] = self._settled.get(channel, 0.0) + joules
            self._settled_through = start

    def totals(self, today: EnergyDay | None) -> dict[str, float]:
        """Lifetime joules per channel; a channel that no day measured is absent."""
        with self._lock:
            if not self._has_history:
                return {}
            days, lifetime, settled_through = dict(self._recent), dict(self._settled), self._settled_through
        current: Mapping[str, float] = {}
        if (
            today is not None
            and today.start_timestamp > settled_through
            and today.start_timestamp >= max(days, default=today.start_timestamp)
        ):
            current = today.channel_totals
            days = {start: day for start, day in days.items() if start < today.start_timestamp}
        for totals in (*(totals for _, totals in days.values()), current):
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
