"""No secret reaches a log line, the exposition, the status page, an HTTP answer or an exception message.

The exporter runs as a user runs it (``serve``, ``once`` and ``login`` as subprocesses, at DEBUG level)
against the scripted cloud on 127.0.0.1, through logins, expired sessions (401 and HTML pages), 5xx answers
and refused logins. The cloud echoes the secrets back in its error bodies, as a careless proxy might, so that
printing a body anywhere would show.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bcrypt
import pytest
import requests
from fixture_cloud import EMAIL, PASSWORD, PASTED_COOKIE, SESSION_ID, SITE, TOKEN, FixtureCloud
from prometheus_client import CollectorRegistry
from support import free_port

from exporter import config
from exporter.auth import PasswordLogin, SessionFile
from exporter.client import CloudClient, CloudError, RequestMetrics, Transport

ROOT = Path(__file__).parent.parent
INFLUX_TOKEN = "influx-token-3f9c1d5e"
INFLUX_PASSWORD = "influx-password-77e1a0"
WRONG_PASSWORD = "wrong-password-1d3e9b"
REJECTED_TOKEN = "rejected-token-5a5a42"
SCRAPE_PASSWORD = "scrape-password-0c4f81"
SECRETS = {
    "password": PASSWORD,
    "e-auth-token": TOKEN,
    "session id": SESSION_ID,
    "pasted cookie": PASTED_COOKIE.partition("=")[2],
    "InfluxDB token": INFLUX_TOKEN,
    "InfluxDB password": INFLUX_PASSWORD,
    "wrong password": WRONG_PASSWORD,
    "rejected token": REJECTED_TOKEN,
    "scrape password": SCRAPE_PASSWORD,
}
ECHO = json.dumps({"message": "upstream trouble", "echo": SECRETS})  # an error body that repeats them all
LOGIN_PAGE = f"<html><body><form action=/login>session {SESSION_ID} token {TOKEN}</form></body></html>"


def assert_clean(text: str, where: str) -> None:
    leaked = [name for name, secret in SECRETS.items() if secret in text]
    assert not leaked, f"{', '.join(leaked)} found in {where}"


def environment(cloud: FixtureCloud, tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    env.update(
        ENPHASE_BASE_URL=cloud.base_url,
        ENPHASE_SESSION_FILE=str(tmp_path / "state" / "session.json"),
        ENPHASE_INFLUX_QUEUE_DIR=str(tmp_path / "influx-queue"),
        ENPHASE_LOG_LEVEL="debug",
        ENPHASE_RETRIES="1",
        **settings,
    )
    return env


def run(command: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", command],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
    )


# -- a stand-in InfluxDB that refuses or takes writes, and echoes the credentials it was sent ----------------


@contextmanager
def fake_influx(status: int, *, echo: bool = False) -> Iterator[tuple[list[str], str]]:
    """Answers every write with ``status``; with ``echo``, its error body repeats the credentials it got."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            credentials = self.headers.get("Authorization", "")
            seen.append(credentials)
            told = f"refused {credentials}" if echo else "unauthorized access"
            body = b"" if status == 204 else json.dumps({"code": "unauthorized", "message": told}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- serve: login, expired sessions, 5xx, scraped with basic auth --------------------------------------------


def test_serve_through_login_expiry_and_errors_shows_no_secret(tmp_path):
    web_config = tmp_path / "web.yml"
    scrape_hash = bcrypt.hashpw(SCRAPE_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    web_config.write_text(f"basic_auth_users:\n  prometheus: {scrape_hash}\n")
    port = free_port()
    base, auth = f"http://127.0.0.1:{port}", ("prometheus", SCRAPE_PASSWORD)
    with FixtureCloud() as cloud, fake_influx(204) as (influx_seen, influx_url):
        cloud.answer_next("GET", f"/pv/systems/{SITE}/today", 401, ECHO)  # the session expired: log in again
        cloud.answer_next(
            "GET", f"/service/evse_controller/{SITE}/ev_chargers/status", 200, LOGIN_PAGE, "text/html"
        )
        for _ in range(2):  # the first try and the one retry
            cloud.answer_next("GET", f"/service/evse_controller/api/v2/{SITE}/ev_chargers/summary", 503, ECHO)
        env = environment(
            cloud,
            tmp_path,
            ENPHASE_EMAIL=EMAIL,
            ENPHASE_PASSWORD=PASSWORD,
            ENPHASE_SITE_ID=SITE,
            ENPHASE_SOURCES="today,ev_status,ev_summary",
            ENPHASE_LISTEN=f"127.0.0.1:{port}",
            ENPHASE_WEB_CONFIG_FILE=str(web_config),
            ENPHASE_INFLUX_URL=influx_url,
            ENPHASE_INFLUX_BUCKET="enphase",
            ENPHASE_INFLUX_ORG="home",
            ENPHASE_INFLUX_TOKEN=INFLUX_TOKEN,
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            metrics = wait_for_scrape(
                base,
                auth,
                (
                    f'enphase_source_up{{site_id="{SITE}",source="today"}} 1.0',
                    f'enphase_source_up{{site_id="{SITE}",source="ev_status"}} 1.0',
                    f'enphase_source_up{{site_id="{SITE}",source="ev_summary"}} 0.0',
                ),
            )
            wait_until(lambda: influx_seen, 20, "a write to InfluxDB")
            answers = {
                "/metrics": requests.get(f"{base}/metrics", auth=auth, timeout=5),
                "/metrics (OpenMetrics)": requests.get(
                    f"{base}/metrics",
                    auth=auth,
                    headers={"Accept": "application/openmetrics-text"},
                    timeout=5,
                ),
                "/": requests.get(f"{base}/", auth=auth, timeout=5),
                "/healthz": requests.get(f"{base}/healthz", timeout=5),
                "/nope": requests.get(f"{base}/nope", auth=auth, timeout=5),
                "/metrics without credentials": requests.get(f"{base}/metrics", timeout=5),
            }
        finally:
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(20)
        stdout, stderr = process.stdout.read(), process.stderr.read()

    # The scenario really ran: two logins (the first, and one after the 401), the HTML page and the 5xx.
    posts = [path for method, path in cloud.requests if method == "POST"]
    assert posts.count("/login/login.json") >= 2, posts
    assert answers["/"].status_code == 200 and "503" in answers["/"].text  # the error shows, the body not
    assert influx_seen[0] == f"Token {INFLUX_TOKEN}"  # the token was used, and sent only where it belongs
    assert returncode == 0, stderr[-3000:]
    assert "DEBUG" in stderr  # the log really was at DEBUG level
    assert_clean(metrics, "/metrics")
    for name, answer in answers.items():
        assert_clean(answer.text, f"the answer to {name}")
        assert_clean(json.dumps(dict(answer.headers)), f"the headers of the answer to {name}")
    assert_clean(stdout, "stdout")
    assert_clean(stderr, "the log")
    session = tmp_path / "state" / "session.json"
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    assert stat.S_IMODE(session.parent.stat().st_mode) == 0o700


def wait_for_scrape(base: str, auth: tuple[str, str], needles: tuple[str, ...]) -> str:
    def scrape() -> str | None:
        try:
            text = requests.get(f"{base}/metrics", auth=auth, timeout=2).text
        except requests.ConnectionError:
            return None
        return text if all(needle in text for needle in needles) else None

    return wait_until(scrape, 40, f"{needles} on /metrics")


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)  # polling: a subprocess gives nothing else to wait on
    return result


# -- once: refused logins, rejected headers, HTML pages and 5xx, a refusing InfluxDB -------------------------


def refused_login(cloud: FixtureCloud) -> dict[str, str]:
    return {"ENPHASE_EMAIL": EMAIL, "ENPHASE_PASSWORD": WRONG_PASSWORD}


def too_many_sessions(cloud: FixtureCloud) -> dict[str, str]:
    cloud.answer_next(
        "POST", "/login/login.json", 200, json.dumps({"message": "Too many active sessions..", **SECRETS})
    )
    return {"ENPHASE_EMAIL": EMAIL, "ENPHASE_PASSWORD": PASSWORD}


def rejected_pasted_headers(cloud: FixtureCloud) -> dict[str, str]:
    return {"ENPHASE_E_AUTH_TOKEN": REJECTED_TOKEN, "ENPHASE_COOKIE": PASTED_COOKIE}


def html_pages_and_5xx(cloud: FixtureCloud) -> dict[str, str]:
    for path in (f"/pv/systems/{SITE}/today", f"/service/evse_controller/{SITE}/ev_chargers/status"):
        for _ in range(2):  # the first session's answer and the fresh session's: still a login page
            cloud.answer_next("GET", path, 200, LOGIN_PAGE, "text/html")
    for _ in range(2):
        cloud.answer_next("GET", f"/pv/systems/{SITE}/daily_energy", 500, ECHO)
    # The history's first day set, so that daily_energy does not wait for the failing today to name it.
    return {"ENPHASE_EMAIL": EMAIL, "ENPHASE_PASSWORD": PASSWORD, "ENPHASE_HISTORY_START": "2026-03-01"}


INFLUX_SETTINGS = {
    "2.x token": {
        "ENPHASE_INFLUX_BUCKET": "b",
        "ENPHASE_INFLUX_ORG": "o",
        "ENPHASE_INFLUX_TOKEN": INFLUX_TOKEN,
    },
    "1.x password": {
        "ENPHASE_INFLUX_DATABASE": "d",
        "ENPHASE_INFLUX_USERNAME": "u",
        "ENPHASE_INFLUX_PASSWORD": INFLUX_PASSWORD,
    },
}


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (refused_login, "email or password rejected"),
        (too_many_sessions, "Too many active sessions"),
        (rejected_pasted_headers, "pasted e-auth-token/Cookie headers"),
        (html_pages_and_5xx, "HTTP 500"),
    ],
)
@pytest.mark.parametrize("influx", ["2.x token", "1.x password"])
def test_once_through_failures_shows_no_secret(tmp_path, scenario, expected, influx):
    with FixtureCloud() as cloud, fake_influx(401) as (_, influx_url):
        settings = {**scenario(cloud), **INFLUX_SETTINGS[influx]}
        result = run(
            "once",
            environment(cloud, tmp_path, ENPHASE_SITE_ID=SITE, ENPHASE_INFLUX_URL=influx_url, **settings),
        )
    assert result.returncode == 1, result.stderr[-3000:]
    assert expected in result.stderr
    assert_clean(result.stdout, "the exposition")
    assert_clean(result.stderr, "the log")


@pytest.mark.parametrize("influx", ["2.x token", "1.x password"])
def test_an_influxdb_that_echoes_credentials_does_not_get_them_logged(tmp_path, influx):
    with FixtureCloud() as cloud, fake_influx(401, echo=True) as (seen, influx_url):
        settings = {"ENPHASE_EMAIL": EMAIL, "ENPHASE_PASSWORD": PASSWORD, "ENPHASE_INFLUX_URL": influx_url}
        settings.update(INFLUX_SETTINGS[influx])
        result = run("once", environment(cloud, tmp_path, ENPHASE_SITE_ID=SITE, **settings))
    assert result.returncode == 1 and seen, result.stderr[-3000:]  # InfluxDB was written to, and refused
    basic = "Basic " + base64.b64encode(f"u:{INFLUX_PASSWORD}".encode()).decode()
    assert basic not in result.stderr
    assert_clean(result.stderr, "the log")


# -- login ---------------------------------------------------------------------------------------------------


def test_login_shows_no_secret_and_saves_the_session_0600(tmp_path):
    with FixtureCloud() as cloud:
        refused = run(
            "login", environment(cloud, tmp_path, ENPHASE_EMAIL=EMAIL, ENPHASE_PASSWORD=WRONG_PASSWORD)
        )
        accepted = run("login", environment(cloud, tmp_path, ENPHASE_EMAIL=EMAIL, ENPHASE_PASSWORD=PASSWORD))
    assert refused.returncode == 1 and "login failed" in refused.stderr
    assert accepted.returncode == 0, accepted.stderr
    for result in (refused, accepted):
        assert_clean(result.stdout + result.stderr, "the output of login")
    assert stat.S_IMODE((tmp_path / "state" / "session.json").stat().st_mode) == 0o600


# -- the session file must be private ------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "mode"), [("once", 0o640), ("once", 0o604), ("serve", 0o644)])
def test_a_session_file_others_can_read_is_refused(tmp_path, command, mode):
    with FixtureCloud() as cloud:
        env = environment(
            cloud, tmp_path, ENPHASE_EMAIL=EMAIL, ENPHASE_PASSWORD=PASSWORD, ENPHASE_SITE_ID=SITE
        )
        assert run("once", env).returncode == 0  # creates the session file
        session = tmp_path / "state" / "session.json"
        session.chmod(mode)
        env["ENPHASE_LISTEN"] = f"127.0.0.1:{free_port()}"
        result = run(command, env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("enphase-exporter: error:")]
    assert len(lines) == 1, result.stderr
    assert str(session) in lines[0] and "readable by other users" in lines[0] and "chmod 600" in lines[0]
    assert "Traceback" not in result.stderr
    assert_clean(result.stdout + result.stderr, "the output")


# -- in the process: exception messages, tracebacks and repr -------------------------------------------------


def test_exceptions_and_reprs_carry_no_secret(tmp_path):
    with FixtureCloud() as cloud:
        transport = Transport(
            cloud.base_url, RequestMetrics(CollectorRegistry()), retries=1, sleep=lambda _: None
        )
        session_file = SessionFile(tmp_path / "session.json", EMAIL)
        client = CloudClient(transport, PasswordLogin(transport, EMAIL, PASSWORD, session_file))
        path = f"/pv/systems/{SITE}/today"
        for status, body, content_type in (
            (500, ECHO, "application/json"),
            (200, LOGIN_PAGE, "text/html"),
            (404, ECHO, "application/json"),
            (200, "{not json " + TOKEN, "application/json"),
        ):
            for _ in range(2):
                cloud.answer_next("GET", path, status, body, content_type)
            with pytest.raises(Exception) as raised:
                client.get_json("today", path)
            text = "".join(traceback.format_exception(raised.value))  # with every chained cause
            assert_clean(text + repr(raised.value), f"the exception for HTTP {status}")
        refused = CloudClient(transport, PasswordLogin(transport, EMAIL, WRONG_PASSWORD, None))
        with pytest.raises(CloudError) as raised:
            refused.get_json("today", path)
        assert "rejected" in str(raised.value)
        assert_clean("".join(traceback.format_exception(raised.value)), "the refused login's exception")
        assert_clean(repr(client.auth.credentials()) + repr(session_file.load()), "repr of a session")

    env = {
        "ENPHASE_EMAIL": EMAIL,
        "ENPHASE_PASSWORD": PASSWORD,
        "ENPHASE_INFLUX_URL": "http://127.0.0.1:1",
        "ENPHASE_INFLUX_DATABASE": "d",
        "ENPHASE_INFLUX_USERNAME": "u",
        "ENPHASE_INFLUX_PASSWORD": INFLUX_PASSWORD,
    }
    settings = config.load({}, env)
    assert_clean(repr(settings) + str(settings), "repr of the settings")
    pasted = config.load({}, {"ENPHASE_E_AUTH_TOKEN": REJECTED_TOKEN, "ENPHASE_COOKIE": PASTED_COOKIE})
    assert_clean(repr(pasted), "repr of the settings with pasted headers")


# -- secrets never come from the command line ----------------------------------------------------------------


def test_secrets_have_no_command_line_flag_and_the_readme_says_why():
    secret_settings = [spec for spec in config.SETTINGS if spec.parse is config._secret]
    assert {spec.env for spec in secret_settings} >= {
        "ENPHASE_PASSWORD",
        "ENPHASE_E_AUTH_TOKEN",
        "ENPHASE_COOKIE",
        "ENPHASE_INFLUX_TOKEN",
        "ENPHASE_INFLUX_PASSWORD",
    }
    assert all(spec.flag is None for spec in secret_settings)
    readme = (ROOT / "README.md").read_text()
    assert "Secrets belong in the environment or in a file, not on the command line" in readme


# -- charger control: refusals and failures that echo the secrets, and a dry run --------------------------


def test_charger_commands_show_no_secret_whatever_the_cloud_answers(tmp_path):
    control = f"/service/evse_controller/{SITE}/ev_chargers/EV1111111111"
    env = environment(cloud := FixtureCloud(), tmp_path, ENPHASE_EMAIL=EMAIL, ENPHASE_PASSWORD=PASSWORD)
    runs = []
    with cloud:
        cloud.answer_next("POST", f"{control}/start_charging", 500, ECHO)  # no answer: not sent again
        cloud.answer_next("POST", f"{control}/stop_charging", 466, ECHO)  # a refusal
        for args in (
            ("start", "--serial", "EV1111111111", "--amps", "16"),
            ("stop", "--serial", "EV1111111111", "--json"),
            ("start", "--serial", "EV1111111111", "--dry-run", "--json"),
            ("list", "--json"),
        ):
            result = subprocess.run(
                [sys.executable, "-m", "exporter", "charger", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=90,
            )
            runs.append(result.returncode)
            assert_clean(result.stdout + result.stderr, f"the output of charger {args[0]}")
    assert runs == [1, 1, 0, 0]
    sent = [(method, path) for method, path in cloud.requests if "_charging" in path]
    assert sent == [("POST", f"{control}/start_charging"), ("POST", f"{control}/stop_charging")]
