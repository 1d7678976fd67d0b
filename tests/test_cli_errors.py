"""Mistakes a user can make on the command line or in the environment: each is one line naming the setting,
and exit status 2, before anything is fetched. Never a traceback (an exception escaping ``main`` here)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from exporter.cli import main

# Pasted headers need no login, and the cloud's address answers nothing: a request made before the check
# would fail with exit status 1, not 2.
PASTED = {
    "ENPHASE_E_AUTH_TOKEN": "pasted-token-4471",
    "ENPHASE_COOKIE": "pasted-cookie-9183",
    "ENPHASE_BASE_URL": "http://127.0.0.1:9",
    "ENPHASE_SITE_ID": "1234567",
}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in (
        "ENPHASE_EMAIL",
        "ENPHASE_PASSWORD",
        "ENPHASE_PASSWORD_FILE",
        "ENPHASE_INFLUX_URL",
        "ENPHASE_WEB_CONFIG_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in PASTED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ENPHASE_SESSION_FILE", str(tmp_path / "state" / "session.json"))
    return monkeypatch


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    status = main(argv)
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert status == 2, errors
    assert len(errors) == 1 and errors[0].startswith("enphase-exporter: error: "), errors
    return errors[0]


@pytest.fixture
def busy_port() -> int:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_listen_on_a_port_in_use(environ, capsys, busy_port):
    line = one_error_line(capsys, ["serve", "--listen", f"127.0.0.1:{busy_port}"])
    assert f"--listen (ENPHASE_LISTEN): cannot listen on 127.0.0.1:{busy_port}" in line


def test_listen_on_an_address_not_on_this_machine(environ, capsys):
    line = one_error_line(capsys, ["serve", "--listen", "192.0.2.1:18466"])  # TEST-NET-1
    assert "cannot listen on 192.0.2.1:18466" in line


def test_listen_on_ipv6_loopback_serves(tmp_path: Path):
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    environ = {**PASTED, "ENPHASE_SESSION_FILE": str(tmp_path / "session.json"), "PATH": ""}
    command = [sys.executable, "-m", "exporter", "serve", "--listen", f"[::1]:{port}"]
    process = subprocess.Popen(command, env=environ, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://[::1]:{port}/healthz", timeout=2) as answer:
                    assert answer.read() == b"ok\n"
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
                time.sleep(0.2)
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=20)
    assert "Traceback" not in errors


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--read-timeout", "inf"], "--read-timeout (ENPHASE_READ_TIMEOUT): must be a number of seconds"),
        (["--connect-timeout", "1e400"], "--connect-timeout (ENPHASE_CONNECT_TIMEOUT): must be"),
        (["--ev-status-interval", "9" * 20], "--ev-status-interval (ENPHASE_EV_STATUS_INTERVAL)"),
        (["--daily-energy-interval", "9" * 30], "--daily-energy-interval (ENPHASE_DAILY_ENERGY_INTERVAL)"),
        (["--login-backoff", "99999999999999999999"], "--login-backoff (ENPHASE_LOGIN_BACKOFF): must be"),
        (["--history-start", "9999-12-31"], "--history-start (ENPHASE_HISTORY_START): must be between"),
        (["--history-start", "0001-01-01"], "--history-start (ENPHASE_HISTORY_START): must be between"),
    ],
    ids=["read-timeout-inf", "connect-timeout-overflow", "interval", "daily-interval", "login-backoff",
         "history-start-far-future", "history-start-year-1"],
)  # fmt: skip
def test_values_that_would_overflow_later(environ, capsys, argv, expected):
    assert expected in one_error_line(capsys, ["once", *argv])


@pytest.mark.parametrize("name", ["ENPHASE_EMAIL", "ENPHASE_PASSWORD", "ENPHASE_COOKIE"])
def test_bytes_that_are_not_utf8_in_a_variable(environ, capsys, name):
    environ.setenv("ENPHASE_EMAIL", "owner@example.com")
    secret = "pw-\udcff-\udcfe-5521"  # how Python keeps the bytes b"\xff\xfe" of a Latin-1 terminal
    environ.setenv(name, secret if name != "ENPHASE_EMAIL" else "owner\udce9@example.com")
    if name == "ENPHASE_PASSWORD":
        environ.delenv("ENPHASE_E_AUTH_TOKEN")
        environ.delenv("ENPHASE_COOKIE")
    line = one_error_line(capsys, ["once"])
    assert (
        line == f"enphase-exporter: error: {name}: holds bytes that are not UTF-8; set it again as UTF-8 text"
    )
    assert "5521" not in line


def test_password_file_that_never_ends(environ, capsys):
    environ.setenv("ENPHASE_EMAIL", "owner@example.com")
    environ.setenv("ENPHASE_PASSWORD_FILE", "/dev/zero")
    environ.delenv("ENPHASE_E_AUTH_TOKEN")
    environ.delenv("ENPHASE_COOKIE")
    line = one_error_line(capsys, ["once"])
    assert "ENPHASE_PASSWORD_FILE: cannot read /dev/zero: longer than 64 KiB" in line


def test_password_file_that_is_not_utf8(environ, capsys, tmp_path):
    secret = tmp_path / "password"
    secret.write_bytes(b"geheim-\xe9-7731\n")
    environ.setenv("ENPHASE_EMAIL", "owner@example.com")
    environ.setenv("ENPHASE_PASSWORD_FILE", str(secret))
    environ.delenv("ENPHASE_E_AUTH_TOKEN")
    environ.delenv("ENPHASE_COOKIE")
    line = one_error_line(capsys, ["once"])
    assert line.endswith("not UTF-8 text") and "7731" not in line


@pytest.mark.parametrize("where", ["missing-directory", "a-directory"])
def test_backfill_output_checked_before_any_request(environ, capsys, tmp_path, where):
    output = tmp_path / "no-such-dir" / "history.om" if where == "missing-directory" else tmp_path
    argv = ["backfill", "--since", "2026-01-01", "--format", "openmetrics", "--output", str(output)]
    line = one_error_line(capsys, argv)
    assert line.startswith(f"enphase-exporter: error: --output {output}: ")
