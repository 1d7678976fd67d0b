"""The status page ``/``: auth, each source's state with its last success and next poll, the stretched
intervals, the lifetime counters, the chargers and the live stream, refreshed by itself, escaped, secret-free.

``serve`` runs as a user runs it (a subprocess on 127.0.0.1), against the demo cloud for a page with every
part live, and against the scripted cloud that echoes secrets in its error bodies; a server in-process shows
the states the demo does not reach (hostile names, paused logins, counters that wait, a stretched plan).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest
import requests
from fixture_cloud import EMAIL, PASSWORD, SITE, FixtureCloud
from prometheus_client import CollectorRegistry
from support import free_port
from test_scheduler import CREDENTIALS, RecordingPoller
from test_secrets import ECHO, assert_clean, environment

from exporter.auth import AuthState
from exporter.config import load
from exporter.live.state import LiveStore
from exporter.scheduler import Plan, PlannedPoll, PollScheduler
from exporter.server import MetricsServer
from exporter.snapshot import SnapshotStore, SourceHealth
from exporter.sources.ev_status import ChargerStatus, EvStatus
from exporter.status_page import StatusSources

NOW = 1_780_000_000.0
HOSTILE = "<script>alert('x')</script>&amp;"


def page_until(url: str, needles: tuple[str, ...], timeout: float) -> str:
    deadline, text = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            text = requests.get(f"{url}/", timeout=2).text
        except requests.ConnectionError:
            text = ""
        if all(needle in text for needle in needles):
            return text
        time.sleep(0.3)
    pytest.fail(f"the status page never showed {needles}:\n{text[-3000:]}")


@pytest.fixture
def serving(tmp_path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []

    def start(args: list[str], env: dict[str, str]) -> tuple[str, subprocess.Popen[str]]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve", *args, "--listen", f"127.0.0.1:{port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        return f"http://127.0.0.1:{port}", process

    yield start  # type: ignore[misc]
    for process in processes:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_the_demo_page_shows_every_part_with_real_values(serving):
    env = {key: value for key, value in os.environ.items() if not key.startswith("ENPHASE_")}
    url, _ = serving(["--demo"], env)
    live_up = "<td>1234567</td><td><span class=up>up</span>"  # the live stream's row: frames arrive
    text = page_until(url, ("counting (", live_up, "Live stream (auto)"), 30)

    assert '<meta http-equiv="refresh" content="30">' in text
    assert "<script" not in text.lower() and "src=" not in text  # no script, no external asset
    assert "<td>session</td><td><span class=up>valid</span></td>" in text
    assert re.search(r"<td>session expires</td><td>\d{4}-\d\d-\d\d \d\d:\d\d UTC \(in [67] d\)</td>", text)
    assert "<td>logins</td><td>allowed</td>" in text
    assert "Intervals as configured: they fit ENPHASE_REQUEST_BUDGET." in text
    # The demo charger charges at some hours of the day: EV status then runs every 30 s.
    charging = "<td>EV0000000001</td><td>yes</td><td>yes</td><td>yes</td>" in text
    for source, every in (("ev_status", 30 if charging else 60), ("today", 600), ("lifetime_energy", 3600)):
        row = re.search(rf"<tr><td>1234567</td><td>{source}</td>(.*?)</tr>", text)
        assert row, source
        cells = re.findall(r"<td>(.*?)</td>", row.group(1))
        assert cells[0] == "<span class=up>up</span>", (source, cells)
        assert re.fullmatch(r"\d\d:\d\d:\d\d UTC \(\d+ s ago\)", cells[1]), (source, cells)  # last success
        assert re.fullmatch(r"\d\d:\d\d:\d\d UTC \(in \d+ (s|min)\)", cells[2]), (source, cells)  # next poll
        assert cells[3] == f"{every} s", (source, cells)
    assert re.search(r"<tr><td>1234567</td><td>site_status</td><td><span class=up>up</span></td>", text)
    assert "<td>after each today</td>" in text  # site_status has no job of its own
    assert re.search(r"<td>1234567</td><td><span class=up>counting \(\d+ channels\)</span></td>", text)
    assert "<td>1234567</td><td>Garage</td><td>EV0000000001</td>" in text
    live = re.search(
        r"<tr><td>1234567</td><td><span class=up>up</span></td><td>(\d+)</td><td>(\d+) s ago", text
    )
    assert live and int(live.group(1)) > 0 and int(live.group(2)) < 15, text[-2000:]


def test_the_page_shows_a_source_error_and_no_secret_against_a_cloud_that_echoes_them(serving, tmp_path):
    with FixtureCloud() as cloud:
        for _ in range(2):  # the first try and the one retry
            cloud.answer_next("GET", f"/service/evse_controller/api/v2/{SITE}/ev_chargers/summary", 503, ECHO)
        env = environment(
            cloud,
            tmp_path,
            ENPHASE_EMAIL=EMAIL,
            ENPHASE_PASSWORD=PASSWORD,
            ENPHASE_SITE_ID=SITE,
            ENPHASE_SOURCES="today,ev_status,ev_summary",
        )
        url, _ = serving([], env)
        text = page_until(url, ("HTTP 503", "<td>session</td><td><span class=up>valid</span>"), 40)
    assert re.search(r"<td>ev_summary</td><td><span class=down>down</span></td>.*HTTP 503", text)
    assert "Off (ENPHASE_LIVE_STREAM=off)" not in text  # auto, as by default
    assert_clean(text, "the status page")


# -- states the demo does not reach, in-process ------------------------------------------------------------


@dataclass
class Page:
    store: SnapshotStore = field(default_factory=SnapshotStore)
    live: LiveStore = field(default_factory=LiveStore)
    auth: AuthState = field(default_factory=AuthState)
    plan: Plan | None = None
    url: str = ""

    def text(self) -> str:
        return requests.get(self.url, timeout=5).text


@pytest.fixture
def page() -> Iterator[Page]:
    shown = Page()
    status = StatusSources(shown.auth, lambda: shown.plan, shown.live, live_mode="on")
    server = MetricsServer(
        "127.0.0.1", 0, CollectorRegistry(), lambda: shown.store.current, clock=lambda: NOW, status=status
    )
    server.start()
    shown.url = f"http://127.0.0.1:{server.port}/"
    yield shown
    server.stop()


def test_hostile_names_and_errors_are_escaped(page):
    store, live = page.store, page.live
    charger = ChargerStatus(HOSTILE, HOSTILE, True, True, False, None, (), None, None, None, None, None, None)
    store.add_site(HOSTILE, ("ev_status",))
    store.update_site(
        HOSTILE,
        lambda site: replace(
            site,
            ev_status=EvStatus(None, None, (charger,)),
            health={"ev_status": SourceHealth(False, NOW, None, HOSTILE)},
        ),
    )
    live.add_site(HOSTILE)
    text = page.text()
    assert "<script" not in text and HOSTILE not in text
    assert (
        text.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;amp;") >= 4
    )  # site, charger, error


def test_paused_logins_a_stretched_plan_and_waiting_counters_are_shown(page):
    store = page.store
    page.auth.ok, page.auth.login_paused_until = False, NOW + 600
    store.add_site("42", ("today", "lifetime_energy", "daily_energy"))
    store.update_site(
        "42", lambda site: replace(site, health={"lifetime_energy": SourceHealth(True, NOW - 5, NOW - 5)})
    )
    page.plan = Plan(2.5, (PlannedPoll("42", "today", 750.0, NOW + 90),))
    text = page.text()
    assert "<td>session</td><td><span class=down>not valid (yet)</span></td>" in text
    assert "<td>logins paused until</td><td><span class=down>" in text and "(in 10 min)" in text
    assert "Every interval is stretched 2.50 times to fit ENPHASE_REQUEST_BUDGET" in text
    assert "<td>42</td><td>today</td><td><span class=waiting>waiting</span></td><td>never</td>" in text
    assert "(in 90 s)</td><td>750 s</td>" in text
    assert "waiting for the first answer of daily_energy (the first history" in text
    assert "<td>42</td><td><span class=waiting>not started</span></td>" in text  # the live stream
    page.live.session("42", "refused")
    page.live.backing_off("42", NOW + 3600)
    text = page.text()
    assert "<td>42</td><td><span class=down>down; next try " in text and "(in 60 min)" in text
    assert "<td>0 / 1 / 0</td>" in text  # sessions ok / refused / failed


def test_the_plan_has_each_polls_stretched_interval_and_next_run_and_follows_charging():
    """What the page's "next poll" and "every" columns come from, read while the scheduler runs."""
    store = SnapshotStore()
    stretched = load({}, {**CREDENTIALS, "ENPHASE_REQUEST_BUDGET": "100"})
    scheduler = PollScheduler(stretched, RecordingPoller(store, [True]), store)  # type: ignore[arg-type]
    assert scheduler.plan() is None  # before start: the sites are still being looked up
    scheduler.start(("1", "2"))
    try:
        plan = scheduler.plan()
        # per site: 120 (EV status while charging) + 2 (summary) + 6 (today) + 1 + 1 (histories) + 6 (latest
        # power) + 1 (devices) + 2 (battery status) + 1 (settings) + 1 (charge mode) + 2 (inverters) = 143,
        # against 80 % of 100 less the live streams' renewals (3600 / 840 an hour each)
        assert plan is not None and plan.factor == pytest.approx(2 * 143 / (80 - 2 * 3600 / 840))
        polls = {(poll.site_id, poll.source): poll for poll in plan.polls}
        assert len(polls) == 22  # eleven sources with a job of their own (site_status follows today)
        assert polls["1", "today"].interval == pytest.approx(600 * plan.factor)
        assert all(poll.next_run is not None and poll.next_run > time.time() - 5 for poll in plan.polls)
        scheduler._run("1", "ev_status")  # the charger charges: EV status polls at the charging pace
        charging = {(poll.site_id, poll.source): poll for poll in scheduler.plan().polls}  # type: ignore[union-attr]
        assert charging["1", "ev_status"].interval == pytest.approx(30 * plan.factor)
        assert charging["2", "ev_status"].interval == pytest.approx(60 * plan.factor)
    finally:
        scheduler.shutdown()
