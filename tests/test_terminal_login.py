"""``enphase-exporter login`` sends its login and its one-time code through the service's own login routine:
each once, never retried after a 5xx or a timeout, and with the HTML-form fallback after a 406."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest
from fixture_cloud import EMAIL, OTP_CODE, PASSWORD, SESSION_ID, TOKEN, FixtureCloud

from exporter.cli import main

LOGGED_IN = json.dumps({"message": "success", "session_id": SESSION_ID, "manager_token": TOKEN})


@pytest.fixture
def login_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    def point_at(cloud: FixtureCloud) -> Path:
        for name in ("ENPHASE_E_AUTH_TOKEN", "ENPHASE_COOKIE", "ENPHASE_PASSWORD_FILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("ENPHASE_BASE_URL", cloud.base_url)
        monkeypatch.setenv("ENPHASE_EMAIL", EMAIL)
        monkeypatch.setenv("ENPHASE_PASSWORD", PASSWORD)
        monkeypatch.setenv("ENPHASE_RETRIES", "3")
        session = tmp_path / "session.json"
        monkeypatch.setenv("ENPHASE_SESSION_FILE", str(session))
        return session

    return point_at


def posts(cloud: FixtureCloud, path: str) -> int:
    return sum(1 for method, where in cloud.requests if (method, where) == ("POST", path))


@pytest.mark.parametrize("status", [500, 503, 504])
def test_a_failed_login_is_not_retried(login_env, status):
    with FixtureCloud() as cloud:
        login_env(cloud)
        for _ in range(4):
            cloud.answer_next("POST", "/login/login.json", status, '{"message": "Service Unavailable"}')
        assert main(["login"]) == 1
        assert posts(cloud, "/login/login.json") == 1


def test_a_406_falls_back_to_the_html_form(login_env):
    with FixtureCloud() as cloud:
        session = login_env(cloud)
        cloud.answer_next("POST", "/login/login.json", 406, "Not Acceptable", "text/plain")
        cloud.answer_next("POST", "/login/login", 200, LOGGED_IN)
        assert main(["login"]) == 0
        assert posts(cloud, "/login/login.json") == 1 and posts(cloud, "/login/login") == 1
        assert SESSION_ID in session.read_text()


def test_a_one_time_code_is_sent_once_even_when_the_service_fails(login_env, monkeypatch):
    with FixtureCloud(mfa=True) as cloud:
        session = login_env(cloud)
        asked = []
        monkeypatch.setattr(builtins, "input", lambda prompt="": asked.append(prompt) or OTP_CODE)
        for _ in range(4):
            cloud.answer_next(
                "POST", "/app-api/validate_login_otp", 503, '{"message": "Service Unavailable"}'
            )
        assert main(["login"]) == 1
        assert posts(cloud, "/app-api/validate_login_otp") == 1 and len(asked) == 1
        assert not session.exists()


def test_a_one_time_code_logs_in_and_saves_the_session(login_env, monkeypatch):
    with FixtureCloud(mfa=True) as cloud:
        session = login_env(cloud)
        monkeypatch.setattr(builtins, "input", lambda prompt="": OTP_CODE)
        assert main(["login"]) == 0
        assert posts(cloud, "/login/login.json") == 1 and posts(cloud, "/app-api/validate_login_otp") == 1
        assert SESSION_ID in session.read_text() and session.stat().st_mode & 0o777 == 0o600
