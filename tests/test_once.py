"""``enphase-exporter once`` as a user runs it: a subprocess pointed at a scripted cloud on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fixture_cloud import EMAIL, PASSWORD, FixtureCloud, pasted_headers

from exporter.lifetime import REFRESH_DAYS

GOLDEN = Path(__file__).parent / "golden" / "once.prom"
# Values that depend on the wall clock or on latency; their lines are kept, their values masked.
VOLATILE = re.compile(r"^(enphase_source_last_success_timestamp_seconds\{.*\}) .*$", re.M)
LATENCY = re.compile(r"^enphase_api_request_duration_seconds.*\n", re.M)


def run_once(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    clean.update({"ENPHASE_SESSION_FILE": str(tmp_path / "session.json"), **env})
    return subprocess.run(
        [sys.executable, "-m", "exporter", "once", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def normalise(exposition: str) -> str:
    return LATENCY.sub("", VOLATILE.sub(r"\1 <varies>", exposition))


def promtool_check(exposition: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: the test command installs the Debian package prometheus")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    result = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_once_with_pasted_headers_matches_the_golden_exposition(tmp_path):
    with FixtureCloud() as cloud:
        result = run_once(
            pasted_headers(cloud),
            tmp_path,
        )
    assert result.returncode == 0, result.stderr
    assert not any(path.startswith("/login") for _, path in cloud.requests)
    actual = normalise(result.stdout)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(actual)
    assert actual == GOLDEN.read_text()
    promtool_check(result.stdout)


def test_once_with_email_and_password_logs_in_once_and_prints_the_same_values(tmp_path):
    with FixtureCloud() as cloud:
        result = run_once(
            {"ENPHASE_BASE_URL": cloud.base_url, "ENPHASE_EMAIL": EMAIL, "ENPHASE_PASSWORD": PASSWORD},
            tmp_path,
        )
    assert result.returncode == 0, result.stderr
    assert [path for method, path in cloud.requests if method == "POST"] == ["/login/login.json"]
    site_lines = [line for line in normalise(result.stdout).splitlines() if "7654321" in line]
    golden_site_lines = [line for line in GOLDEN.read_text().splitlines() if "7654321" in line]
    assert site_lines == golden_site_lines
    assert (tmp_path / "session.json").stat().st_mode & 0o777 == 0o600
    assert PASSWORD not in result.stderr + result.stdout


def test_discovery_deduplicates_and_the_history_costs_two_requests(tmp_path):
    with FixtureCloud() as cloud:
        run_once(
            pasted_headers(cloud),
            tmp_path,
        )
    paths = [path for _, path in cloud.requests]
    assert sum("/today" in p for p in paths) == 1  # the site listed twice is polled once
    history = [p for p in paths if "/daily_energy" in p or "/lifetime_energy" in p]
    assert len(history) == 2  # the whole life in one request, the last few days in another
    recent = date.fromisoformat(history[1].partition("?")[2].removeprefix("start_date="))
    assert (datetime.now(UTC).date() - recent).days == REFRESH_DAYS + 1


def test_a_failing_source_exits_1_and_keeps_the_others(tmp_path):
    with FixtureCloud() as cloud:
        del cloud.routes["/pv/systems/7654321/today"]
        result = run_once(
            pasted_headers(cloud, ENPHASE_SITE_ID="7654321"),
            tmp_path,
        )
    assert result.returncode == 1
    assert 'enphase_source_up{site_id="7654321",source="today"} 0.0' in result.stdout
    assert 'enphase_ev_charger_charging{serial="EV1111111111",site_id="7654321"} 1.0' in result.stdout
    assert "enphase_battery_state_of_charge_ratio" not in result.stdout  # never read: absent, not 0
    assert "today: HTTP 404" in result.stderr


def test_wrong_password_exits_1_with_a_clear_line(tmp_path):
    with FixtureCloud() as cloud:
        result = run_once(
            {
                "ENPHASE_BASE_URL": cloud.base_url,
                "ENPHASE_EMAIL": EMAIL,
                "ENPHASE_PASSWORD": "wrong-password-1",
            },
            tmp_path,
        )
    assert result.returncode == 1
    assert "email or password rejected" in result.stderr
    assert "wrong-password-1" not in result.stderr + result.stdout
    assert "enphase_auth_ok 0.0" in result.stdout


def test_once_against_the_demo_cloud_passes_promtool(tmp_path):
    result = run_once({}, tmp_path, "--demo")
    assert result.returncode == 0, result.stderr
    assert "enphase_ev_charger_connected{" in result.stdout
    assert "enphase_battery_state_of_charge_ratio{" in result.stdout
    assert "enphase_site_production_joules_total{" in result.stdout
    promtool_check(result.stdout)


def test_a_battery_only_site_polls_and_reports_only_its_sources(tmp_path):
    with FixtureCloud() as cloud:
        result = run_once(
            pasted_headers(cloud, ENPHASE_SITE_ID="7654321", ENPHASE_SOURCES="today,daily_energy"),
            tmp_path,
        )
    assert result.returncode == 0, result.stderr
    assert not any("evse_controller" in path for _, path in cloud.requests)
    assert 'enphase_up{site_id="7654321"} 1.0' in result.stdout
    assert 'enphase_source_up{site_id="7654321",source="ev_status"}' not in result.stdout


def test_mfa_login_on_a_terminal_then_once_reuses_the_session(tmp_path):
    from fixture_cloud import OTP_CODE

    env = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    with FixtureCloud(mfa=True) as cloud:
        env.update(
            {
                "ENPHASE_BASE_URL": cloud.base_url,
                "ENPHASE_EMAIL": EMAIL,
                "ENPHASE_PASSWORD": PASSWORD,
                "ENPHASE_SESSION_FILE": str(tmp_path / "session.json"),
            }
        )
        login = subprocess.run(
            [sys.executable, "-m", "exporter", "login"],
            env=env,
            input=f"000000\n{OTP_CODE}\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert login.returncode == 0, login.stderr
        assert "The code was not accepted." in login.stdout  # the first, wrong code
        assert (tmp_path / "session.json").stat().st_mode & 0o777 == 0o600
        del env["ENPHASE_PASSWORD"]  # serve/once need only the email and the saved session
        result = run_once({k: v for k, v in env.items() if k.startswith("ENPHASE_")}, tmp_path)
    assert result.returncode == 0, result.stderr
    posts = [path for method, path in cloud.requests if method == "POST"]
    assert posts == ["/login/login.json", "/app-api/validate_login_otp", "/app-api/validate_login_otp"]
    assert OTP_CODE not in login.stdout + login.stderr and PASSWORD not in login.stdout + login.stderr


def test_mfa_account_without_a_saved_session_is_told_to_run_login(tmp_path):
    with FixtureCloud(mfa=True) as cloud:
        result = run_once(
            {"ENPHASE_BASE_URL": cloud.base_url, "ENPHASE_EMAIL": EMAIL, "ENPHASE_PASSWORD": PASSWORD},
            tmp_path,
        )
    assert result.returncode == 1
    assert "enphase-exporter login" in result.stderr
    assert [path for method, path in cloud.requests if method == "POST"] == ["/login/login.json"]
