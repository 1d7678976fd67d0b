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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from exporter.sources.energy_day import DEFAULT_UTC_OFFSET, EnergyDay, local_date, measured_in
from exporter.sources.lifetime_energy import LifetimeEnergy

# Days this far before the newest one are no longer corrected by the cloud (``daily_energy`` re-reads the
# last REFRESH_DAYS + 1): only their sum is kept, so a site costs a week of days in memory, not its life.
REFRESH_DAYS = 3
SETTLED_AFTER_DAYS = REFRESH_DAYS + 3

# Kinds of reading of a day. While the day lasts, today's own payload is the freshest: lifetime_energy's
# entry for today lags behind, and so can daily_energy's partial item.
LIFETIME, DAILY, TODAY = "lifetime_energy", "daily_energy", "today"
_WHILE_THE_DAY_LASTS = {LIFETIME: 0, DAILY: 1, TODAY: 2}
# Once the day is over: daily_energy's buckets (each one range-checked), then lifetime_energy's total (checked
# per day only). today's last reading, at 23:55, misses the last minutes: a reading of the whole day beats it.
_ONCE_IT_IS_OVER = {LIFETIME: 1, DAILY: 2}
# Past the end of a day by this much, a reading is of the whole day (an hour covers a DST change).
DAY_OVER_MARGIN = 3600.0
# Before the site's UTC offset is known, a day is over only once it is over everywhere (UTC-12).
WESTERNMOST_OFFSET = -12 * 3600.0
# A learned offset moves with daylight saving, by an hour: a bigger jump is a today payload whose date and
# midnight do not belong together (at the turn of the day), not a move of the site.
OFFSET_CHANGE_LIMIT = 3600.0


@dataclass(frozen=True, slots=True)
class Reading:
    kind: str  # LIFETIME, DAILY or TODAY
    observed_at: float
    joules: float


class DayLedger:
    """One site's lifetime energy per channel (joules): a sum of settled days plus each recent day's
    freshest reading, channel by channel. Also what the site's history says about it (``first_day``,
    ``measured``), and its UTC offset, which places a day's local midnight on its local date."""

    def __init__(self, history_start: date | None = None) -> None:
        self._lock = threading.Lock()  # polls of one site's sources run in parallel
        self._history_start = history_start  # days before it are not counted (ENPHASE_HISTORY_START)
        self._recent: dict[date, dict[str, Reading]] = {}  # day -> channel -> its best reading
        self._settled: dict[str, float] = {}  # channel -> joules of every folded day
        self._settled_through: date | None = None  # the newest folded day
        self._measured: frozenset[str] = frozenset()
        self._first_day: date | None = None  # from lifetime_energy: the site's first day
        self._offset: float | None = None  # the site's UTC offset in seconds, once today told it
        self._answered: set[str] = set()  # the kinds of reading that have come at least once

    @property
    def has_history(self) -> bool:
        """True once ``lifetime_energy`` answered: before that, lifetime totals would be too low."""
        return self._first_day is not None

    def answered(self, kinds: set[str]) -> bool:
        """Every kind of reading in ``kinds`` has come at least once."""
        return kinds <= self._answered

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

    def learn_offset(self, offset: float) -> None:
        """The site's UTC offset, from ``today``; see ``OFFSET_CHANGE_LIMIT``."""
        with self._lock:
            if self._offset is None or abs(offset - self._offset) <= OFFSET_CHANGE_LIMIT:
                self._offset = offset

    def record_lifetime(self, lifetime: LifetimeEnergy, observed_at: float) -> None:
        with self._lock:
            self._measured |= lifetime.measured
            self._first_day = lifetime.start_date
            self._answered.add(LIFETIME)
            # An entry past the site's today is not a day yet (give or take one, until the offset is known).
            newest = self._site_date(observed_at) + timedelta(days=1 if self._offset is None else 0)
            longest = max((len(series) for series in lifetime.channels.values()), default=0)
            for index in range(longest):
                if lifetime.day(index) > newest:
                    break
                totals = {
                    channel: series[index]
                    for channel, series in lifetime.channels.items()
                    if index < len(series) and series[index] is not None
                }
                self._record(lifetime.day(index), totals, LIFETIME, observed_at)
            self._fold(observed_at)

    def record_days(self, days: Iterable[EnergyDay], observed_at: float, kind: str = TODAY) -> None:
        """Readings of days by ``today`` or ``daily_energy`` (``kind``)."""
        with self._lock:
            self._answered.add(kind)
        for day in days:
            self.record_day(day, observed_at, kind)

    def record_day(self, day: EnergyDay, observed_at: float, kind: str = TODAY) -> None:
        """A reading of one day by ``today`` or ``daily_energy`` (``kind``)."""
        with self._lock:
            self._measured |= measured_in(day)
            offset = DEFAULT_UTC_OFFSET if self._offset is None else self._offset
            self._record(local_date(day.start_timestamp, offset), day.channel_totals, kind, observed_at)
            self._fold(observed_at)

    def _record(self, day: date, totals: Mapping[str, float | None], kind: str, observed_at: float) -> None:
        if self._history_start is not None and day < self._history_start:
            return
        if self._settled_through is not None and day <= self._settled_through:
            return  # folded already: the cloud no longer corrects a day that old
        readings = self._recent.setdefault(day, {})
        for channel, joules in totals.items():
            if joules is None:
                continue
            new, previous = Reading(kind, observed_at, joules), readings.get(channel)
            if previous is None or self._rank(day, new) >= self._rank(day, previous):
                readings[channel] = new

    def _rank(self, day: date, reading: Reading) -> tuple[bool, int, float]:
        """Higher replaces lower: a reading of the whole day, then the kind, then the fresher. Worked out
        when two readings meet, not when each arrived: the site's UTC offset may have been learned since."""
        offset = WESTERNMOST_OFFSET if self._offset is None else self._offset
        day_end = datetime.combine(day + timedelta(days=1), time(), UTC).timestamp() - offset
        over = reading.kind != TODAY and reading.observed_at >= day_end + DAY_OVER_MARGIN
        order = _ONCE_IT_IS_OVER if over else _WHILE_THE_DAY_LASTS
        return over, order[reading.kind], reading.observed_at

    def _site_date(self, moment: float) -> date:
        """The site's date at ``moment``, give or take one before its offset is known."""
        return local_date(moment - 43200, DEFAULT_UTC_OFFSET if self._offset is None else self._offset)

    def _fold(self, observed_at: float) -> None:
        """Fold days long past into the sum. Not before ``lifetime_energy`` answered: the days it brings
        must not find the line already past them. The newest day is capped by the clock, so a day stamped
        in the future folds nothing it should not."""
        if not self.has_history or not self._recent:
            return
        newest = min(max(self._recent), self._site_date(observed_at) + timedelta(days=1))
        line = newest - timedelta(days=SETTLED_AFTER_DAYS)
        for day in sorted(day for day in self._recent if day < line):
            for channel, reading in self._recent.pop(day).items():
                self._settled[channel] = self._settled.get(channel, 0.0) + reading.joules
            self._settled_through = day

    def totals(self) -> dict[str, float]:
        """Lifetime joules per channel; empty until ``lifetime_energy`` answered; a channel that no day
        measured is absent."""
        with self._lock:
            if not self.has_history:
                return {}
            lifetime = dict(self._settled)
            for readings in self._recent.values():
                for channel, reading in readings.items():
                    lifetime[channel] = lifetime.get(channel, 0.0) + reading.joules
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
