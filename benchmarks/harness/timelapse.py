"""A time-lapse of the real exporter against the demo cloud: days of polling in seconds of real time.

One fake clock drives the demo cloud's simulation, the client's pauses, budget and back-off, the login
back-off and the scheduler: the jobs that ``PollScheduler`` plans (staggered first runs, jitter, budget
stretching, the charging interval) run one after another while the clock jumps to each one's next run
time. Everything else is real: the client, authentication, poller, parsers and snapshot, and HTTP to the
demo cloud on 127.0.0.1. Only answers that a fault holds back take real time.

Used by the fault tests (tests/test_faults.py), by ``benchmarks/long_run.py``, ``upstream_cost.py`` and
``queue_growth.py``, and by ``scripts/demo_chart.py``. A test harness, not part of the shipped package.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from apscheduler.job import Job
from prometheus_client import generate_latest

from exporter.app import Exporter, build
from exporter.config import Settings, load
from exporter.demo import payloads
from exporter.demo.journal import KEEP
from exporter.demo.server import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SITE_ID, DemoCloud
from exporter.scheduler import PollScheduler

from .referee import Referee

INTERNAL_ERROR = "internal error (see the log)"  # what the poller records when it meets a bug


class FakeClock:
    """Time that moves only when told to; ``advance`` doubles as the client's back-off sleep."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)

    def advance_to(self, moment: float) -> None:
        with self._lock:
            self.now = max(self.now, moment)


class Timelapse:
    """``with Timelapse(start, state_dir) as run: run.run_for(86400)``; see the module docstring.

    ``environ`` adds or overrides settings (ENPHASE_* variables). The read timeout is one second unless
    ``environ`` says otherwise, so that a timed-out answer costs little real time.
    """

    def __init__(
        self,
        start: float,
        state_dir: Path,
        environ: Mapping[str, str] | None = None,
        keep_events: int = KEEP,
    ) -> None:
        self.clock = FakeClock(start)
        self.cloud = DemoCloud(clock=self.clock, keep_events=keep_events)
        self._state_dir = state_dir
        self._environ = dict(environ or {})
        self.settings: Settings
        self.exporter: Exporter
        self.referee: Referee
        self.scheduler: PollScheduler
        self.polls: Counter[str] = Counter()  # scheduled polls by source
        self.failed: Counter[str] = Counter()  # ... and those that failed
        self.internal_errors = 0
        self.scrapes = 0
        self.slowest_scrape = 0.0  # real seconds to render /metrics

    def __enter__(self) -> Timelapse:
        self.cloud.start()
        environ = {
            "ENPHASE_BASE_URL": self.cloud.base_url,
            "ENPHASE_EMAIL": DEMO_EMAIL,
            "ENPHASE_PASSWORD": DEMO_PASSWORD,
            "ENPHASE_SESSION_FILE": str(self._state_dir / "session.json"),
            "ENPHASE_SITE_ID": DEMO_SITE_ID,
            "ENPHASE_READ_TIMEOUT": "1",
            **self._environ,
        }
        self.settings = load({}, environ)
        # The simulation's caches fill on first use; filled now, the first answers come within the short
        # read timeout instead of timing out on a cold cloud.
        payloads.lifetime_energy(self.clock())
        payloads.today(self.clock())
        self.referee = Referee(self.settings.login_backoff, session_used=self.cloud.session_used)
        self.cloud.journal.subscribe(self.referee)
        self.exporter = build(self.settings, clock=self.clock, monotonic=self.clock, sleep=self.clock.advance)
        poller, store = self.exporter.poller, self.exporter.store
        self.scheduler = PollScheduler(self.settings, poller, store, clock=self.clock)
        jobs = self.scheduler._scheduler  # PollScheduler owns it; here its jobs run on the fake clock instead
        jobs.start(paused=True)  # a paused scheduler keeps its jobs and runs none of them
        jobs.start = lambda *args, **kwargs: None
        self.scheduler.start(self.settings.site_ids)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.scheduler.shutdown()
        self.cloud.stop()

    def poll(self, source: str, site_id: str = DEMO_SITE_ID) -> bool:
        """One poll now, outside the schedule."""
        return self.exporter.poller.poll(site_id, source)

    def value(self, name: str, **labels: str) -> float | None:
        return self.exporter.registry.get_sample_value(name, labels)

    def scrape(self) -> str:
        started = time.perf_counter()
        text = generate_latest(self.exporter.registry).decode()
        self.slowest_scrape = max(self.slowest_scrape, time.perf_counter() - started)
        self.scrapes += 1
        return text

    def run_for(self, seconds: float, scrape_every: float | None = None) -> None:
        self.run_until(self.clock() + seconds, scrape_every)

    def run_until(self, moment: float, scrape_every: float | None = None) -> None:
        """Run every job due up to ``moment`` in order, then leave the clock at ``moment``."""
        next_scrape = self.clock() if scrape_every else float("inf")
        while (job := self._next_job()) is not None and job.next_run_time.timestamp() <= moment:
            due = job.next_run_time.timestamp()
            while next_scrape <= due:
                self.clock.advance_to(next_scrape)
                self.scrape()
                next_scrape += scrape_every or float("inf")
            self.clock.advance_to(due)
            self._run(job)
        self.clock.advance_to(moment)

    def _next_job(self) -> Job | None:
        return min(self.scheduler._scheduler.get_jobs(), key=lambda job: job.next_run_time, default=None)

    def _run(self, job: Job) -> None:
        trigger, due = job.trigger, job.next_run_time
        job.func(*job.args)
        if job.args:  # a poll of a site's source (the gateway's discovery job has no arguments)
            site_id, source = job.args
            health = self.exporter.store.current.sites[site_id].health[source]
            self.polls[source] += 1
            self.failed[source] += not health.up
            self.internal_errors += health.error == INTERNAL_ERROR
        job = self.scheduler._scheduler.get_job(job.id)
        now = datetime.fromtimestamp(self.clock(), UTC)
        # A job rescheduled for the charging interval counts its new interval from now, as APScheduler does;
        # polls missed while a poll took long are coalesced into one, as PollScheduler asks.
        after = due if job.trigger is trigger else now
        next_run = job.trigger.get_next_fire_time(after, now)
        if next_run is None:  # a one-off job (a failed poll's retry) has run: APScheduler removes it
            job.remove()
            return
        while next_run < now:
            next_run = job.trigger.get_next_fire_time(next_run, now)
        job.modify(next_run_time=next_run)
