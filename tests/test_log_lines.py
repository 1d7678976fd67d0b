"""Log lines a person can act on: an unreachable cloud is named as such, with its URL and the cause; a login
that got no answer says why; a site lookup that will be tried again says when; a finished backfill says done.

The network failures are real ones on 127.0.0.1: a port nobody listens on, and a listener that answers a
TLS handshake with plain text.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import requests
import urllib3
from fixture_cloud import EMAIL, PASSWORD
from prometheus_client import CollectorRegistry
from test_backfill import ScriptedClient
from tqdm import tqdm

from exporter import backfill, cli, sites
from exporter.auth import PasswordLogin
from exporter.client import CloudClient, RequestMetrics, Transport, Unreachable, network_cause


def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections: bound for a moment, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def plain_text_listener() -> Iterator[int]:
    """Answers whatever it is sent with a line of plain text: a TLS client fails its handshake."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed at the end of the test
            with connection:
                connection.recv(1024)
                connection.sendall(b"HTTP/1.0 200 OK\r\n\r\nnot TLS\r\n")

    threading.Thread(target=answer, daemon=True).start()
    yield int(listener.getsockname()[1])
    listener.close()


def password_client(base_url: str, tmp_path: Path) -> CloudClient:
    transport = Transport(base_url, RequestMetrics(CollectorRegistry()), retries=0, connect_timeout=2)
    login = PasswordLogin(transport, EMAIL, PASSWORD, None)
    return CloudClient(transport, login)


# -- the cause of a network failure --------------------------------------------------------------------------


def test_a_refused_connection_and_a_failed_tls_handshake_are_named_with_the_host(plain_text_listener):
    port = closed_port()
    transport = Transport(f"http://127.0.0.1:{port}", RequestMetrics(CollectorRegistry()), retries=0)
    with pytest.raises(Unreachable) as refused:
        transport.request("search_sites", "GET", "/")
    assert str(refused.value) == f"search_sites: connection refused (127.0.0.1:{port})"

    secure = Transport(
        f"https://127.0.0.1:{plain_text_listener}", RequestMetrics(CollectorRegistry()), retries=0
    )
    with pytest.raises(Unreachable) as tls:
        secure.request("search_sites", "GET", "/")
    assert str(tls.value) == f"search_sites: TLS failed (127.0.0.1:{plain_text_listener})"


def test_a_dns_failure_is_found_however_deep_requests_wrapped_it() -> None:
    """The shape requests raises for a name that does not resolve (built here: no DNS query leaves the
    machine in tests)."""
    resolution = urllib3.exceptions.NameResolutionError("no.such.host", None, socket.gaierror(-2, "x"))  # type: ignore[arg-type]
    wrapped = requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", resolution))  # type: ignore[arg-type]
    assert network_cause(wrapped) == "DNS lookup failed"
    assert network_cause(requests.ConnectionError("something else")) == "connection failed (ConnectionError)"


def test_the_host_in_messages_leaves_out_a_user_and_password_in_the_url() -> None:
    port = closed_port()
    transport = Transport(
        f"http://someone:{PASSWORD}@127.0.0.1:{port}", RequestMetrics(CollectorRegistry()), retries=0
    )
    with pytest.raises(Unreachable) as refused:
        transport.request("login", "POST", "/login/login.json")
    assert PASSWORD not in str(refused.value) and "someone" not in str(refused.value)
    assert cli._shown_url(transport.base_url) == f"http://127.0.0.1:{port}"


# -- site lookup --------------------------------------------------------------------------------------------


def test_an_unreachable_cloud_during_the_login_is_not_an_account_without_a_site(tmp_path, caplog):
    port = closed_port()
    client = password_client(f"http://127.0.0.1:{port}", tmp_path)
    with caplog.at_level(logging.INFO, logger="exporter"):
        assert cli._discover(client, retry_in=60) == ()
        assert cli._discover(client, retry_in=60) == ()  # while logins pause, the cause is still given
    lines = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    expected = (
        f"The cloud could not be reached at http://127.0.0.1:{port}: connection refused (logging in); "
        "retrying in 60 s"
    )
    assert lines == [expected, expected]
    assert not any("no site" in line.lower() for line in lines)
    assert all(PASSWORD not in record.getMessage() for record in caplog.records)


def test_an_account_without_a_site_says_so_and_when_it_is_asked_again(monkeypatch, caplog):
    monkeypatch.setattr(sites, "discover", functools.partial(sites.discover, sleep=lambda seconds: None))
    client = ScriptedClient([{"sites": []}] * 3)
    with caplog.at_level(logging.ERROR, logger="exporter"):
        assert cli._discover(client, retry_in=60) == ()  # type: ignore[arg-type]
    assert [record.getMessage() for record in caplog.records] == [
        "The account has no site: search_sites listed none; set ENPHASE_SITE_ID if it has one; "
        "retrying in 60 s"
    ]


def test_serve_against_an_unreachable_cloud_names_its_url_and_says_it_retries(tmp_path):
    """As a user meets it: ``serve`` with a base URL where nothing listens."""
    port = closed_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ENPHASE_")}
    env.update(
        ENPHASE_BASE_URL=f"http://127.0.0.1:{port}",
        ENPHASE_EMAIL=EMAIL,
        ENPHASE_PASSWORD=PASSWORD,
        ENPHASE_SESSION_FILE=str(tmp_path / "session.json"),
        ENPHASE_RETRIES="0",
        ENPHASE_LISTEN=f"127.0.0.1:{closed_port()}",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and not any("could not be reached" in line for line in lines):
            time.sleep(0.1)
    finally:
        process.kill()
        process.wait(5)
    reader.join(5)
    text = "".join(lines)
    assert (
        f"The cloud could not be reached at http://127.0.0.1:{port}: connection refused (logging in); "
        "retrying in 60 s" in text
    ), text[-3000:]
    assert "No site found" not in text and "no site" not in text.lower()
    assert PASSWORD not in text


def test_login_on_the_terminal_names_the_network_cause_and_host(tmp_path):
    port = closed_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ENPHASE_")}
    env.update(
        ENPHASE_BASE_URL=f"http://127.0.0.1:{port}",
        ENPHASE_EMAIL=EMAIL,
        ENPHASE_PASSWORD=PASSWORD,
        ENPHASE_SESSION_FILE=str(tmp_path / "session.json"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "login"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"login failed: login: connection refused (127.0.0.1:{port})" in result.stderr, result.stderr
    assert PASSWORD not in result.stderr + result.stdout


# -- backfill -----------------------------------------------------------------------------------------------


def test_the_backfill_progress_bar_ends_on_done(monkeypatch, tmp_path):
    screen = io.StringIO()
    # The bar as a terminal shows it: by default it is off when stderr is not a terminal.
    monkeypatch.setattr(
        backfill, "_progress", lambda total, name: tqdm(total=total, unit="day", desc=name, file=screen)
    )
    lifetime = {"start_date": "2026-03-20", "production": [10, 20]}
    day = {"start_time": 1774566000, "interval_length": 900, "production": [5]}
    history = backfill.History(ScriptedClient([lifetime, {"stats": [day]}]))  # type: ignore[arg-type]
    span = backfill.Span(date(2026, 3, 27), date(2026, 3, 27))
    backfill.to_openmetrics(history, tmp_path / "h.om", ("1",), span, None, 1e10)
    last = screen.getvalue().rstrip().split("\r")[-1]
    assert last.startswith("done: 1 site(s) fetched") and "fetching" not in last, repr(last)
