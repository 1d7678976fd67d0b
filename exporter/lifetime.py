"""Lifetime energy counters: the site's whole life from ``lifetime_energy``, then fresher readings of recent
days from ``daily_energy`` and ``today``, never going down.

Why three sources? ``lifetime_energy`` gives every day since the site's first one in a single request, but
only as daily totals; ``daily_energy`` (hourly) carries the cloud's corrections of the last few days; and
``today`` (every 5 minutes) keeps the current day as live as the gauges. Each day keeps, channel by channel,
its best reading (see ``rank``), and an answer that says nothing of a day ("not yet processed": ``[]``
arrays, ``null``) never replaces what is known of it.

Why the guard? The cloud revises recent days, sometimes downward; a Prometheus counter that decreases reads
as a reset and corrupts ``rate()``. So a counter holds its value instead, and the event is counted in
``enphase_counter_regressions_total``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta

from exporter.sources.energy_day import DEFAULT_UTC_OFFSET, EnergyDay, local_date, measured_in
from exporter.sources.lifetime_energy import LifetimeEnergy

# Days this far before the newest one are no longer corrected by the cloud (``daily_energy`` re-reads the
# last REFRESH_DAYS + 1): only their sum is kept, so a site costs a week of days in memory, not its life.
REFRESH_DAYS = 3
SETTLED_AFTER_DAYS = REFRESH_DAYS + 3

# Kinds of reading of a day, from the least to the most trusted while the day lasts: lifetime_energy's
# entry for today lags behind, and so can daily_energy's partial item for today.
LIFETIME, DAILY, TODAY = 0, 1, 2
# Past the end of a day by this much, a reading is of the whole day (an hour covers a DST change).
DAY_OVER_MARGIN = 3600.0
Rank = tuple[bool, int, float]


def rank(day_over: bool, kind: int, observed_at: float) -> Rank:
    """Higher replaces lower: a reading taken after the day ended (at 23:55 ``today`` still misses the
    last minutes), then the kind, then the fresher."""
    return (day_over, kind, observed_at)


class DayLedger:
    """One site's lifetime energy per channel (joules): a sum of settled days plus each recent day's
    freshest reading, channel by channel. Also what the site's history says about it (``first_day``,
    ``measured``), and its UTC offset, which places a day's local midnight on its local date."""

    def __init__(self, history_start: date | None = None) -> None:
        self._lock = threading.Lock()  # polls of one site's sources run in parallel
        self._history_start = history_start  # days before it are not counted (ENPHASE_HISTORY_START)
        self._recent: dict[date, dict[str, tuple[Rank, float]]] = {}  # day -> channel -> (rank, joules)
        self._settled: dict[str, float] = {}  # channel -> joules of every folded day
        self._settled_through: date | None = None  # the newest folded day
        self._measured: frozenset[str] = frozenset()
        self._first_day: date | None = None  # from lifetime_energy: the site's first day
        self.utc_offset = DEFAULT_UTC_OFFSET

    @property
    def has_history(self) -> bool:
        """True once ``lifetime_energy`` answered: before that, lifetime totals would be too low."""
        return self._first_day is not None

    @property
    def first_day(self) -> date | None:
        """Where the counters and history begin: ENPHASE_HISTORY_START, else the site's first day."""
        return self._history_start or self._first_day

    @property
    def measured(self) -> frozenset[str]:
        """Channels the site has had values for and loads it has used energy on, on any day seen."""
        return self._measured

    def refresh_span(self, utc_today: date) -> date:
        """The first day the hourly ``daily_energy`` request asks for (through today). A day of margin
        covers any time zone, since the site's local date can differ from the UTC date by one."""
        start = utc_today - timedelta(days=REFRESH_DAYS + 1)
        return max(start, self.first_day) if self.first_day else start

    def record_lifetime(self, lifetime: LifetimeEnergy, observed_at: float) -> None:
        with self._lock:
            self._measured |= lifetime.measured
            self._first_day = lifetime.start_date
            longest = max((len(series) for series in lifetime.channels.values()), default=0)
            for index in range(longest):
                totals = {
                    channel: series[index]
                    for channel, series in lifetime.channels.items()
                    if index < len(series) and series[index] is not None
                }
                day = lifetime.day(index)
                self._record(day, totals, rank(self._over(day, observed_at), LIFETIME, observed_at))
            self._fold(observed_at)

    def record_day(self, day: EnergyDay, observed_at: float, kind: int = TODAY) -> None:
        """A reading of one day by ``today`` or ``daily_energy`` (``kind``)."""
        with self._lock:
            self._measured |= measured_in(day)
            day_of = local_date(day.start_timestamp, self.utc_offset)
            over = observed_at >= day.start_timestamp + 86400 + DAY_OVER_MARGIN
            self._record(day_of, day.channel_totals, rank(over, kind, observed_at))
            self._fold(observed_at)

    def _over(self, day: date, observed_at: float) -> bool:
        next_midnight = datetime.combine(day + timedelta(days=1), time(), UTC).timestamp() - self.utc_offset
        return observed_at >= next_midnight + DAY_OVER_MARGIN

    def _record(self, day: date, totals: Mapping[str, float | None], new: Rank) -> None:
        if self._history_start is not None and day < self._history_start:
            return
        if self._settled_through is not None and day <= self._settled_through:
            return  # folded already: the cloud no longer corrects a day that old
        readings = self._recent.setdefault(day, {})
        for channel, joules in totals.items():
            previous = readings.get(channel)
            if joules is not None and (previous is None or new >= previous[0]):
                readings[channel] = (new, joules)

    def _fold(self, observed_at: float) -> None:
        """Fold days long past into the sum. Not before ``lifetime_energy`` answered: the days it brings
        must not find the line already past them. The newest day is capped by the clock, so a day stamped
        in the future folds nothing it should not."""
        if not self.has_history or not self._recent:
            return
        clock_day = local_date(observed_at - 43200, self.utc_offset)  # the site's date now, give or take one
        line = min(max(self._recent), clock_day + timedelta(days=1)) - timedelta(days=SETTLED_AFTER_DAYS)
        for day in sorted(day for day in self._recent if day < line):
            for channel, (_, joules) in self._recent.pop(day).items():
                self._settled[channel] = self._settled.get(channel, 0.0) + joules
            self._settled_through = day

    def totals(self) -> dict[str, float]:
        """Lifetime joules per channel; empty until ``lifetime_energy`` answered; a channel that no day
        measured is absent."""
        with self._lock:
            if not self.has_history:
                return {}
            lifetime = dict(self._settled)
            for readings in self._recent.values():
                for channel, (_, joules) in readings.items():
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
