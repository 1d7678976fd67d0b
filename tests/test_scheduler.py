from __future__ import annotations

import math
from datetime import timedelta

import pytest

from exporter.config import load
from exporter.scheduler import PollScheduler, stretch_factor
from exporter.snapshot import SnapshotStore
from exporter.sources.ev_status import ChargerStatus, EvStatus

CREDENTIALS = {"ENPHASE_EMAIL": "owner@example.com", "ENPHASE_PASSWORD": "pw-123456"}


FIRST_FIVE = ("ev_status", "ev_summary", "today", "lifetime_energy", "daily_energy")


def settings(**env):
    return load({}, {**CREDENTIALS, **{k: str(v) for k, v in env.items()}})


def first_five(**env):
    """The first five sources at the intervals these tests were written for (today 300 s, summary 900 s)."""
    return settings(
        ENPHASE_SOURCES=",".join(FIRST_FIVE),
        ENPHASE_TODAY_INTERVAL=300,
        ENPHASE_EV_SUMMARY_INTERVAL=900,
        **env,
    )


def test_default_plan_fits_one_site_without_stretching():
    # worst case per site: 120 (EV status while charging) + 4 + 12 + 1 + 1 = 138 requests/hour
    assert stretch_factor(first_five(), 1) == 1.0
    assert stretch_factor(settings(), 1, live_stream=True) == 1.0


def test_budget_stretches_intervals_instead_of_exceeding_it():
    factor = stretch_factor(first_five(ENPHASE_REQUEST_BUDGET=100), 2)
    assert factor == pytest.approx(2 * 138 / 80)
    scheduler = PollScheduler(first_five(ENPHASE_REQUEST_BUDGET=100), poller=None, store=SnapshotStore())
    scheduler._factor = factor
    planned = sum(3600 / scheduler.interval(s, charging=s == "ev_status") for s in FIRST_FIVE)
    assert planned * 2 <= 100


def test_the_live_streams_renewals_are_counted_but_not_stretched():
    # 138 polls an hour per site; each stream renews every 840 s: 3600 / 840 = 4.29 requests an hour
    factor = stretch_factor(first_five(ENPHASE_REQUEST_BUDGET=100), 2, live_stream=True)
    assert factor == pytest.approx(2 * 138 / (80 - 2 * 3600 / 840))
    assert stretch_factor(first_five(ENPHASE_REQUEST_BUDGET=10), 2, live_stream=True) == math.inf


class RecordingPoller:
    gateway = None

    def __init__(self, store: SnapshotStore, charging: list[bool]) -> None:
        self.store, self.charging, self.calls = store, charging, []

    def ev_status_via_gateway(self, site_id: str) -> bool:
        return False

    def poll(self, site_id: str, source: str) -> bool:
        self.calls.append((site_id, source))
        if source == "ev_status":
            charger = ChargerStatus(
                "EV1", None, True, True, self.charging.pop(0), False, (), None, None, None, None, None, None
            )
            from dataclasses import replace

            self.store.update_site(site_id, lambda s: replace(s, ev_status=EvStatus(None, None, (charger,))))
        return True


def longest_gap(scheduler: PollScheduler, job_id: str) -> float:
    """The most time between two runs: the trigger's base plus its whole jitter, which only ever delays."""
    trigger = scheduler._scheduler.get_job(job_id).trigger
    assert 0 < trigger.jitter <= 10
    return trigger.interval.total_seconds() + trigger.jitter


def test_ev_status_polls_faster_while_charging_and_slows_down_after():
    store = SnapshotStore()
    poller = RecordingPoller(store, [True, False])
    scheduler = PollScheduler(first_five(), poller, store)
    scheduler.start(("1", "2"))
    try:
        jobs = {job.id: job for job in scheduler._scheduler.get_jobs()}
        assert set(jobs) == {f"{site}:{source}" for site in "12" for source in FIRST_FIVE}
        assert longest_gap(scheduler, "1:ev_status") == 60
        scheduler._run("1", "ev_status")
        assert longest_gap(scheduler, "1:ev_status") == 30
        assert longest_gap(scheduler, "2:ev_status") == 60
        scheduler._run("1", "ev_status")
        assert longest_gap(scheduler, "1:ev_status") == 60
    finally:
        scheduler.shutdown()


def test_first_runs_are_staggered_across_sites_and_lifetime_energy_comes_first():
    store = SnapshotStore()
    scheduler = PollScheduler(first_five(), RecordingPoller(store, []), store)
    scheduler._scheduler.start(paused=True)
    scheduler._scheduler.start = lambda: None  # keep jobs from running: only their plan is inspected
    scheduler.start(("1", "2"))
    try:
        runs = {job.id: job.next_run_time for job in scheduler._scheduler.get_jobs()}
        # lifetime_energy names what the site measures, which today's and daily_energy's readings need
        assert runs["1:lifetime_energy"] < runs["1:today"] < runs["1:daily_energy"]
        assert (runs["2:today"] - runs["1:today"]).total_seconds() == pytest.approx(150)
        # every site's lifetime_energy comes just before its today, not up to an hour later
        assert all(runs[f"{site}:lifetime_energy"] < runs[f"{site}:today"] for site in "12")
        assert max(runs.values()) - min(runs.values()) < timedelta(seconds=10 + 3600 / 2)
    finally:
        scheduler.shutdown()


def test_a_site_without_ev_sources_plans_only_what_it_polls():
    narrowed = settings(
        ENPHASE_SOURCES="today,lifetime_energy,daily_energy",
        ENPHASE_REQUEST_BUDGET=10,
        ENPHASE_TODAY_INTERVAL=300,
    )
    assert stretch_factor(narrowed, 1) == pytest.approx(14 / 8)  # 12 + 1 + 1 requests/hour against 80 % of 10


class FakeGateway:
    """Answers until told otherwise; records discoveries."""

    def __init__(self) -> None:
        self.site_id: str | None = None
        self.answering = True
        self.discoveries = 0

    def assign_site(self, site_ids: tuple[str, ...]) -> None:
        self.site_id = site_ids[0]

    def discover(self) -> None:
        self.discoveries += 1

    def serves(self, site_id: str) -> bool:
        return self.answering and site_id == self.site_id


class GatewayPoller(RecordingPoller):
    def __init__(self, store: SnapshotStore, gateway: FakeGateway) -> None:
        super().__init__(store, [False] * 4)
        self.gateway = gateway

    def ev_status_via_gateway(self, site_id: str) -> bool:
        return self.gateway.serves(site_id)


def test_ev_status_follows_the_gateway_interval_while_it_answers_and_the_cloud_interval_after():
    gateway_env = {
        "ENPHASE_GATEWAY_URL": "https://envoy.local",
        "ENPHASE_GATEWAY_TOKEN": "gateway-token-1",
        "ENPHASE_GATEWAY_CERT_SHA256": "ab" * 32,
        "ENPHASE_GATEWAY_EV_STATUS_INTERVAL": 10,
    }
    store, gateway = SnapshotStore(), FakeGateway()
    scheduler = PollScheduler(settings(**gateway_env), GatewayPoller(store, gateway), store)
    scheduler.start(("1",))
    try:
        assert gateway.discoveries == 1  # before the first EV status poll: that one needs no cloud request
        assert longest_gap(scheduler, "1:ev_status") == 10
        assert scheduler._scheduler.get_job("gateway:discovery").trigger.interval.total_seconds() == 10800
        gateway.answering = False
        scheduler._run("1", "ev_status")
        assert longest_gap(scheduler, "1:ev_status") == 60  # the cloud's interval, budget and all
    finally:
        scheduler.shutdown()


class FailingPoller(RecordingPoller):
    """Fails each source as told, a result per poll."""

    def __init__(self, store: SnapshotStore, results: list[bool]) -> None:
        super().__init__(store, [])
        self.results = results

    def poll(self, site_id: str, source: str) -> bool:
        self.calls.append((site_id, source))
        return self.results.pop(0)


def test_an_hourly_source_that_fails_is_asked_again_once_five_minutes_later():
    store = SnapshotStore()
    poller = FailingPoller(store, [False, False, False, True, False, False])
    scheduler = PollScheduler(first_five(), poller, store, clock=lambda: 1774700000.0)
    scheduler._scheduler.start(paused=True)
    scheduler._scheduler.start = lambda: None  # jobs are run by hand: only the plan is inspected
    scheduler.start(("1",))
    try:
        scheduler._run("1", "lifetime_energy")  # fails: one retry, 300 s later
        retry = scheduler._scheduler.get_job("1:lifetime_energy:retry")
        assert retry is not None and retry.next_run_time.timestamp() == 1774700000.0 + 300
        assert all(
            poll.source != "lifetime_energy" or poll.interval == 3600 for poll in scheduler.plan().polls
        )
        scheduler._retry("1", "lifetime_energy")  # the retry fails too: no more retries while it fails
        scheduler._scheduler.remove_job("1:lifetime_energy:retry")
        scheduler._run("1", "lifetime_energy")
        assert scheduler._scheduler.get_job("1:lifetime_energy:retry") is None
        scheduler._run("1", "lifetime_energy")  # a success, then a failure: retried again
        scheduler._run("1", "lifetime_energy")
        assert scheduler._scheduler.get_job("1:lifetime_energy:retry") is not None
        scheduler._run("1", "today")  # polled every 300 s here: its next poll comes soon anyway
        assert scheduler._scheduler.get_job("1:today:retry") is None
    finally:
        scheduler.shutdown()


class FailingThenChargingPoller(RecordingPoller):
    """EV status fails once, then answers with the car charging."""

    def __init__(self, store: SnapshotStore) -> None:
        super().__init__(store, [True])
        self.failures = 1

    def poll(self, site_id: str, source: str) -> bool:
        if source == "ev_status" and self.failures:
            self.failures -= 1
            self.calls.append((site_id, source))
            return False
        return super().poll(site_id, source)


def test_a_retried_ev_status_poll_follows_charging_as_a_scheduled_one_does():
    # ev_status polled every 30 min (a site that rarely charges): a failed poll is retried after 300 s. The
    # retry that finds the car charging must switch to the charging pace, as _run does; _retry does not,
    # so the site is polled at 1800 s for up to half an hour of charging.
    store = SnapshotStore()
    poller = FailingThenChargingPoller(store)
    scheduler = PollScheduler(first_five(ENPHASE_EV_STATUS_INTERVAL=1800), poller, store)
    scheduler._scheduler.start(paused=True)
    scheduler._scheduler.start = lambda: None
    scheduler.start(("1",))
    try:
        scheduler._run("1", "ev_status")  # fails: a retry 300 s later
        assert scheduler._scheduler.get_job("1:ev_status:retry") is not None
        scheduler._retry("1", "ev_status")  # succeeds: the car is charging
        assert longest_gap(scheduler, "1:ev_status") == 30
    finally:
        scheduler.shutdown()
