"""The exporter under each fault of the demo cloud: the real client, authentication, poller and schedule, over
HTTP to the demo cloud on 127.0.0.1.

Most tests run on a fake clock (``benchmarks/harness``) that the demo cloud's simulation, the client's
pauses and the schedule all follow, so an hour of back-off takes no time. Only answers a fault holds back
take real time. ``run.referee`` watches every request and login for the rules of the README.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from harness.timelapse import FakeClock, Timelapse  # benchmarks/harness/ (tests/conftest.py)
from prometheus_client import CollectorRegistry
from test_strange_cloud import assert_quick, scrape_seconds

from exporter.auth import PasswordLogin, SessionFile, make_session
from exporter.client import CloudClient, PayloadTooLarge, RequestMetrics, Transport, UpstreamError
from exporter.config import ConfigError, load
from exporter.demo import DEMO_SITE_ID, DemoCloud
from exporter.demo import simulation as sim
from exporter.demo.answers import EXPIRY_FORMS
from exporter.demo.faults import FAULT_NAMES, FaultMix, parse_fault_mix
from exporter.server import MetricsServer
from exporter.sources import ev_status, today

SITE = DEMO_SITE_ID
SOURCES = ("lifetime_energy", "today", "daily_energy", "ev_status", "ev_summary")
START = datetime(2026, 6, 1, 12, 7, tzinfo=sim.TZ).timestamp()
# Series about the exporter itself: a failed poll changes these on purpose.
OWN_SERIES = ("enphase_up", "enphase_source_", "enphase_api_", "enphase_parse_errors", "enphase_auth_")
TOO_LARGE = 40 * 2**20  # beyond the client's limit on an answer


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Timelapse]:
    # A short history keeps the first daily_energy poll small; one retry keeps timed-out polls short.
    environ = {"ENPHASE_HISTORY_START": "2026-05-28", "ENPHASE_RETRIES": "1"}
    with Timelapse(START, tmp_path, environ) as running:
        yield running
    assert not running.referee.violations, running.referee.violations
    assert running.internal_errors == 0


def poll_all(run: Timelapse) -> None:
    for source in SOURCES:
        assert run.poll(source), health(run, source).error


def health(run: Timelapse, source: str) -> Any:
    return run.exporter.store.current.sites[SITE].health[source]


def data_samples(run: Timelapse) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in run.exporter.registry.collect()
        for sample in family.samples
        if not sample.name.startswith(OWN_SERIES)
    }


def up(run: Timelapse, source: str) -> float | None:
    return run.value("enphase_source_up", site_id=SITE, source=source)


def parse_errors(run: Timelapse, source: str) -> float:
    return run.value("enphase_parse_errors_total", source=source) or 0.0


def logins(run: Timelapse) -> list[str]:
    return [event.outcome for event in run.cloud.journal.events("login")]


# --- a failing source -------------------------------------------------------------------------------------

FAILURES = [
    pytest.param("5xx", {"count": None}, "HTTP 503", id="5xx"),
    pytest.param("timeout", {"count": None, "seconds": 1.5}, "timed out", id="timeout"),
    pytest.param("429", {"retry_after": 600}, "rate limited", id="429"),
    pytest.param("malformed_json", {}, "not valid JSON", id="malformed"),
    pytest.param("truncated_json", {}, "not valid JSON", id="truncated"),
    pytest.param("huge_payload", {"size": TOO_LARGE}, "larger than 32 MiB", id="too-large"),
]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(("fault", "options", "reason"), FAILURES)
def test_a_failing_source_keeps_its_last_values_and_leaves_the_others_alone(
    run: Timelapse, fault: str, options: dict, reason: str, source: str
) -> None:
    poll_all(run)
    before = data_samples(run)
    last_success = run.value("enphase_source_last_success_timestamp_seconds", site_id=SITE, source=source)
    errors_before = parse_errors(run, source)
    run.clock.advance(60)
    run.cloud.faults.inject(fault, endpoint=source, **options)

    assert not run.poll(source)
    assert reason in health(run, source).error
    assert up(run, source) == 0
    assert run.value("enphase_up", site_id=SITE) == 0
    assert (
        run.value("enphase_source_last_success_timestamp_seconds", site_id=SITE, source=source)
        == last_success
    )
    assert data_samples(run) == before  # its last good values stay, and nothing else moved
    broken_body = fault in ("malformed_json", "truncated_json")
    assert parse_errors(run, source) == errors_before + broken_body
    for other in SOURCES:
        if other != source:
            assert run.poll(other) and up(run, other) == 1, other


RECOVERABLE = [
    pytest.param("5xx", {"count": 6}, id="5xx-burst"),  # one retry per poll: three polls fail
    pytest.param("timeout", {"count": 4, "seconds": 1.5}, id="timeouts"),
    pytest.param("429", {"retry_after": 900}, id="429"),  # clears when Retry-After has passed
    pytest.param("malformed_json", {"count": 2}, id="malformed"),
    pytest.param("truncated_json", {"count": 2}, id="truncated"),
    pytest.param("huge_payload", {"count": 2, "size": TOO_LARGE}, id="too-large"),
]


@pytest.mark.parametrize(("fault", "options"), RECOVERABLE)
def test_a_source_recovers_within_one_interval_once_the_fault_clears(
    run: Timelapse, fault: str, options: dict
) -> None:
    spoils = options.get("count", 1)
    run.cloud.faults.inject(fault, endpoint="today", **options)
    while len(run.cloud.journal.events("fault", "today")) < spoils:
        run.run_for(30)
        assert run.clock() < START + 86400, "the scheduled polls never met the fault"
    assert up(run, "today") == 0
    last_spoiled = run.cloud.journal.events("fault", "today")[-1].at
    cleared = last_spoiled + options.get("retry_after", 0)
    interval = run.scheduler.interval("today", charging=False)
    run.run_until(cleared + interval + min(interval / 10, 10))  # the trigger's jitter is at most a tenth
    assert up(run, "today") == 1
    assert health(run, "today").last_success_timestamp > cleared
    assert all(up(run, source) == 1 for source in SOURCES)


def test_no_request_to_an_endpoint_before_its_retry_after_has_passed(
    run: Timelapse, caplog: pytest.LogCaptureFixture
) -> None:
    poll_all(run)
    run.cloud.faults.inject("429", endpoint="ev_status", retry_after=600)
    caplog.set_level(logging.INFO)
    run.run_for(500)
    (limited,) = run.cloud.journal.events("fault", "ev_status")
    # The schedule kept trying every minute; the client kept those polls from reaching the cloud.
    assert health(run, "ev_status").last_attempt_timestamp > limited.at + 400
    assert "rate limited" in health(run, "ev_status").error
    assert [event.at for event in run.cloud.journal.events("request", "ev_status")][-1] == limited.at
    others = [event for event in run.cloud.journal.events("request") if event.endpoint != "ev_status"]
    assert others[-1].at > limited.at  # other endpoints carry on
    # One line for the whole pause, not one per poll (the reason used to name the seconds left).
    failing = [record for record in caplog.records if "Polling ev_status" in record.getMessage()]
    assert len(failing) == 1 and failing[0].levelno == logging.WARNING
    run.run_for(500)
    after = [event.at for event in run.cloud.journal.events("request", "ev_status") if event.at > limited.at]
    assert after and after[0] >= limited.at + 600
    assert up(run, "ev_status") == 1
    assert run.value("enphase_api_requests_total", endpoint="ev_status", code="429") == 1


# --- sessions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", EXPIRY_FORMS)
def test_an_expired_session_leads_to_one_login_however_many_polls_meet_it(run: Timelapse, form: str) -> None:
    poll_all(run)
    run.cloud.expire_sessions(form)
    barrier = threading.Barrier(len(SOURCES))
    results: dict[str, bool] = {}

    def poll(source: str) -> None:
        barrier.wait()
        results[source] = run.poll(source)

    threads = [threading.Thread(target=poll, args=(source,)) for source in SOURCES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == dict.fromkeys(SOURCES, True)
    assert logins(run) == ["success", "success"]


@pytest.mark.parametrize("form", ["401", "302", "html"])
def test_an_expired_session_fault_is_ridden_out_within_the_poll(run: Timelapse, form: str) -> None:
    poll_all(run)
    run.cloud.faults.inject("expired", endpoint="ev_status", form=form)
    assert run.poll("ev_status")
    assert logins(run) == ["success", "success"]
    run.run_for(3600)  # an hour of polling on the new session: no more logins
    assert logins(run) == ["success", "success"]
    assert all(up(run, source) == 1 for source in SOURCES)


def test_no_login_during_the_too_many_sessions_back_off(run: Timelapse) -> None:
    poll_all(run)
    run.cloud.faults.inject("too_many_sessions", count=None)
    run.cloud.faults.inject("expired", endpoint="today", form="302")
    run.run_for(300)
    assert logins(run) == ["success", "too_many_sessions"]
    refused = run.cloud.journal.events("login")[-1].at
    blocked_until = run.value("enphase_auth_login_blocked_until_timestamp_seconds")
    assert blocked_until == pytest.approx(refused + run.settings.login_backoff, abs=5)
    run.run_until(refused + run.settings.login_backoff - 1)
    assert logins(run) == ["success", "too_many_sessions"]
    assert run.value("enphase_auth_ok") == 0
    assert not [event for event in run.cloud.journal.events("request") if event.at > refused]
    assert all(up(run, source) == 0 for source in ("today", "ev_status"))
    assert health(run, "ev_status").last_attempt_timestamp > blocked_until - 120  # it kept trying, locally

    run.cloud.faults.clear()
    interval = run.scheduler.interval("ev_status", charging=False)
    run.run_until(blocked_until + interval + min(interval / 10, 10))
    assert logins(run) == ["success", "too_many_sessions", "success"]
    assert run.value("enphase_auth_ok") == 1
    assert up(run, "ev_status") == 1


# --- payloads ---------------------------------------------------------------------------------------------


def test_schema_drift_is_counted_and_the_rest_of_each_payload_still_yields(run: Timelapse) -> None:
    poll_all(run)
    before = {source: parse_errors(run, source) for source in SOURCES}
    for source in SOURCES:
        run.cloud.faults.inject("schema_drift", endpoint=source)
        assert run.poll(source), health(run, source).error
    grown = {source: parse_errors(run, source) - before[source] for source in SOURCES}
    assert grown == {"ev_status": 3, "ev_summary": 2, "today": 2, "lifetime_energy": 2, "daily_energy": 1}

    charger = {"site_id": SITE, "serial": sim.CHARGER_SERIAL}
    assert run.value("enphase_ev_charger_plugged_in", **charger) is None  # the key went missing
    assert run.value("enphase_ev_charger_charging", **charger) is None  # "maybe"
    status = {"connector": "1", "status": "unknown", **charger}
    assert run.value("enphase_ev_charger_connector_status", **status) == 1  # "HIBERNATING"
    assert run.value("enphase_ev_charger_connected", **charger) == 1
    assert run.value("enphase_ev_charger_session_energy_joules", **charger) is not None

    assert run.value("enphase_ev_charger_max_current_amperes", **charger) is None  # "thirty-two"
    assert run.value("enphase_ev_charger_charge_level_max_amperes", **charger) is None
    assert run.value("enphase_ev_charger_operating_voltage_volts", **charger) == 230
    assert run.value("enphase_ev_charger_energy_delivered_joules_total", **charger) > 0

    assert run.value("enphase_battery_state_of_charge_ratio", site_id=SITE) is None  # "62%"
    assert run.value("enphase_battery_profile", site_id=SITE, profile="unknown") == 1
    assert run.value("enphase_battery_backup_reserve_ratio", site_id=SITE) == 0.2
    assert run.value("enphase_site_production_today_joules", site_id=SITE) > 0

    assert run.value("enphase_site_production_joules_total", site_id=SITE) > 0  # the other days still count
    assert all(up(run, source) == 1 for source in SOURCES)


def test_a_large_payload_within_the_limit_is_read(run: Timelapse) -> None:
    poll_all(run)
    run.cloud.faults.inject("huge_payload", endpoint="ev_summary", size=8 * 2**20)
    run.clock.advance(60)
    assert run.poll("ev_summary")
    assert health(run, "ev_summary").last_success_timestamp == run.clock()
    charger = {"site_id": SITE, "serial": sim.CHARGER_SERIAL}
    assert run.value("enphase_ev_charger_max_current_amperes", **charger) == 32


def test_a_timed_out_answer_is_retried_and_counted(run: Timelapse) -> None:
    poll_all(run)
    run.cloud.faults.inject("timeout", endpoint="today", seconds=5)
    started = time.monotonic()
    assert run.poll("today")  # the retry gets the answer
    assert time.monotonic() - started < 4  # the client gave up at its read timeout (1 s), not the cloud's 5 s
    assert run.value("enphase_api_requests_total", endpoint="today", code="timeout") == 1


# --- /metrics while the cloud is slow ---------------------------------------------------------------------


def test_metrics_answer_quickly_while_the_cloud_is_slow(tmp_path: Path) -> None:
    environ = {"ENPHASE_READ_TIMEOUT": "10", "ENPHASE_HISTORY_START": "2026-05-28"}
    with Timelapse(START, tmp_path, environ) as run:
        poll_all(run)
        server = MetricsServer("127.0.0.1", 0, run.exporter.registry, lambda: run.exporter.store.current)
        server.start()
        try:
            run.cloud.faults.inject("slow", endpoint="today", seconds=3)
            polling = threading.Thread(target=run.poll, args=("today",))
            polling.start()
            timings = []
            while polling.is_alive():
                timings.append(scrape_seconds(server.port))
                time.sleep(0.02)  # a brisk scraper, but not one that competes with the exporter for the CPU
            polling.join()
        finally:
            server.stop()
        assert_quick(timings)  # the scrapes overlapped the slow answer, and none waited for it
        assert up(run, "today") == 1  # slow is not broken: the answer came within the read timeout


# --- the fault mix and --demo-faults ----------------------------------------------------------------------


def test_the_fault_mix_is_reproducible_and_seeded() -> None:
    names = tuple(name for name in FAULT_NAMES if name not in ("slow", "timeout"))  # no real waits

    def faults_met(seed: int) -> list[tuple[str, str]]:
        with DemoCloud(clock=FakeClock(START)) as cloud:
            cloud.faults.mix(FaultMix(names, seed=seed, rate=0.3))
            token, _ = cloud.browser_session()
            for _ in range(30):
                for path in (ev_status.path(SITE), today.path(SITE)):
                    requests.get(cloud.base_url + path, headers={"e-auth-token": token}, timeout=10)
            return [(event.endpoint, event.fault.name) for event in cloud.journal.events("fault")]

    first = faults_met(7)
    assert len(first) >= 10 and len({name for _, name in first}) >= 4
    assert faults_met(7) == first
    assert faults_met(8) != first


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mixed", FaultMix(FAULT_NAMES)),
        ("429, expired,seed=9", FaultMix(("429", "expired"), seed=9)),
        ("slow,rate=0.5,slow", FaultMix(("slow",), rate=0.5)),
    ],
)
def test_demo_faults_setting(text: str, expected: FaultMix) -> None:
    assert parse_fault_mix(text) == expected
    assert load({"demo": "1"}, {"ENPHASE_DEMO_FAULTS": text}).demo_faults == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ENPHASE_DEMO": "1", "ENPHASE_DEMO_FAULTS": "gremlins"}, "unknown fault 'gremlins'"),
        ({"ENPHASE_DEMO": "1", "ENPHASE_DEMO_FAULTS": "mixed,rate=2"}, "rate must be"),
        ({"ENPHASE_DEMO": "1", "ENPHASE_DEMO_FAULTS": "seed=3"}, "name some faults"),
        ({"ENPHASE_DEMO_FAULTS": "mixed", "ENPHASE_EMAIL": "a@example.com"}, "add --demo"),
    ],
)
def test_bad_demo_faults_name_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^ENPHASE_DEMO_FAULTS: .*{message}"):
        load({}, environ)


def test_once_against_a_demo_that_truncates_every_payload(tmp_path: Path) -> None:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("ENPHASE_")}
    environ["ENPHASE_HISTORY_START"] = "2026-03-01"  # or daily_energy would wait for today to name it
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "once", "--demo", "--demo-faults", "truncated_json,rate=1"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr  # every source failed, and said so
    for source in SOURCES:
        assert f'enphase_parse_errors_total{{source="{source}"}} 1.0' in result.stdout
        assert f'enphase_source_up{{site_id="{SITE}",source="{source}"}} 0.0' in result.stdout
    assert "Demo faults: truncated_json" in result.stderr
    assert "Traceback" not in result.stderr


# --- regressions ------------------------------------------------------------------------------------------


def test_a_lone_source_recovers_when_a_fresh_session_ends_too(tmp_path: Path) -> None:
    """Regression: a path that rejected a fresh session never renewed one again, so with no other source
    polled the exporter stayed down for good once that session had ended as well."""
    environ = {"ENPHASE_SOURCES": "today", "ENPHASE_HISTORY_START": "2026-05-28"}
    with Timelapse(START, tmp_path, environ) as run:
        run.run_for(60)
        run.cloud.faults.inject("expired", endpoint="today", count=2)
        interval = run.scheduler.interval("today", charging=False) + 10
        run.run_for(interval)  # the session ends; so does the fresh one, right after the login
        assert up(run, "today") == 0
        assert logins(run) == ["success", "success"]
        run.run_for(interval)
        assert up(run, "today") == 1
        assert logins(run) == ["success", "success", "success"]  # one login per ended session
        run.run_for(3600)
        assert logins(run) == ["success", "success", "success"]
        assert len(run.cloud.journal.events("request", "jwt_token")) == 1  # asked once, not every poll
        assert not run.referee.violations


@responses.activate
def test_a_lone_path_that_refuses_every_session_costs_one_login_not_one_per_poll(tmp_path: Path) -> None:
    """The other side of the fix above: a site without a charger answers 403 on the EV endpoints whatever
    the session. Polled alone, that must not turn into a login per poll."""
    base = "http://cloud.test"
    status = f"{base}{ev_status.path(SITE)}"
    responses.add(responses.GET, status, status=403)
    responses.add(responses.GET, f"{base}/app-api/jwt_token.json", json={"token": "a.b.c"})
    responses.add(
        responses.POST,
        f"{base}/login/login.json",
        json={"message": "success", "session_id": "session-7f3a"},
        headers={"Set-Cookie": "_enlighten_4_session=session-7f3a; Path=/"},
    )
    registry = CollectorRegistry()
    transport = Transport(base, RequestMetrics(registry), retries=0)
    session_file = SessionFile(tmp_path / "session.json", "owner@example.com")
    saved = make_session({"_enlighten_4_session": "session-from-yesterday"}, None)
    auth = PasswordLogin(transport, "owner@example.com", "pw-4411", session_file, saved=saved)
    client = CloudClient(transport, auth)
    for _ in range(10):
        with pytest.raises(UpstreamError, match="403"):
            client.get_json("ev_status", ev_status.path(SITE))
    calls = [call.request.url.removeprefix(base).split("?")[0] for call in responses.calls]
    assert calls.count("/login/login.json") == 1
    assert calls.count("/app-api/jwt_token.json") == 1


def test_an_oversized_answer_without_a_length_is_not_read_to_its_end() -> None:
    """Chunked answers declare no size: the client stops reading at its limit and drops the connection."""
    sent: list[int] = []

    class Endless(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"[" + b"0," * 32767 + b"0"
            total = 0
            try:
                while total < 256 * 2**20:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    total += len(chunk)
            except OSError:
                pass  # the client hung up, as it should
            sent.append(total)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        transport = Transport(
            f"http://127.0.0.1:{server.server_address[1]}", RequestMetrics(CollectorRegistry())
        )
        with pytest.raises(PayloadTooLarge):
            transport.request("today", "GET", "/pv/systems/1/today")
        deadline = time.monotonic() + 10
        while not sent and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        server.shutdown()
        server.server_close()
    assert sent and sent[0] < 128 * 2**20  # it stopped sending long before the end: nobody was reading


def test_the_time_lapse_runs_the_gateway_discovery_job(tmp_path: Path) -> None:
    # With a gateway configured, PollScheduler adds "gateway:discovery", a job without (site, source) args;
    # Timelapse._run unpacks job.args as (site_id, source) and fails with ValueError when that job comes due.
    environ = {
        "ENPHASE_GATEWAY_URL": "https://127.0.0.1:9",  # nothing answers: discovery fails quickly
        "ENPHASE_GATEWAY_TOKEN": "gateway-token-1",
        "ENPHASE_GATEWAY_INSECURE_SKIP_VERIFY": "1",
        "ENPHASE_GATEWAY_DISCOVERY_INTERVAL": "600",
        "ENPHASE_LIVE_STREAM": "off",
    }
    with Timelapse(START, tmp_path, environ) as run:
        run.run_for(900)
        assert run.polls["ev_status"] > 0
