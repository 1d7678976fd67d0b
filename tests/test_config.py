from __future__ import annotations

import re
import subprocess
import sys
from datetime import date

import pytest

from exporter.config import SETTINGS, ConfigError, Secret, load, markdown_table, sources_markdown_table

CREDENTIALS = {"ENPHASE_EMAIL": "owner@example.com", "ENPHASE_PASSWORD": "pw-123456"}


def test_defaults():
    settings = load({}, CREDENTIALS)
    assert settings.base_url == "https://enlighten.enphaseenergy.com"
    assert (settings.intervals["ev_status"], settings.ev_status_charging_interval) == (60, 30)
    assert dict(settings.intervals) == {
        "ev_status": 60,
        "ev_summary": 1800,
        "today": 600,
        "lifetime_energy": 3600,
        "daily_energy": 3600,
        "latest_power": 600,
        "devices": 3600,
        "battery_status": 1800,
        "battery_settings": 3600,
        "charge_mode": 3600,
        "inverters": 3600,
    }
    assert settings.request_budget == 500
    assert (settings.listen_host, settings.listen_port) == ("", 8466)
    assert not 9100 <= settings.listen_port <= 9999
    assert settings.login_backoff >= 3600
    assert settings.session_file.name == "session.json"


def test_flags_override_environment_which_overrides_defaults():
    env = {**CREDENTIALS, "ENPHASE_TODAY_INTERVAL": "600", "ENPHASE_EV_STATUS_INTERVAL": "120"}
    settings = load({"today_interval": "900"}, env)
    assert settings.intervals["today"] == 900
    assert settings.intervals["ev_status"] == 120


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ENPHASE_TODAY_INTERVAL": "5m"}, "ENPHASE_TODAY_INTERVAL: expected a whole number of seconds"),
        ({"ENPHASE_EV_STATUS_INTERVAL": "5"}, "ENPHASE_EV_STATUS_INTERVAL: must be at least 15"),
        ({"ENPHASE_SITE_ID": "12,abc"}, "ENPHASE_SITE_ID: site ids are numbers"),
        ({"ENPHASE_BASE_URL": "enlighten"}, "ENPHASE_BASE_URL: expected an http(s) URL"),
        ({"ENPHASE_LISTEN": "localhost:99999"}, "ENPHASE_LISTEN: port must be 1-65535"),
        ({"ENPHASE_REQUEST_BUDGET": "0"}, "ENPHASE_REQUEST_BUDGET: must be between 10"),
        ({"ENPHASE_DEMO": "maybe"}, "ENPHASE_DEMO: expected true or false"),
        ({"ENPHASE_HISTORY_START": "2023/08/10"}, "ENPHASE_HISTORY_START: expected a date"),
    ],
)
def test_bad_values_name_the_setting(env, message):
    with pytest.raises(ConfigError) as raised:
        load({}, {**CREDENTIALS, **env})
    assert str(raised.value).startswith(message)


def test_a_bad_flag_names_the_flag_and_its_variable():
    with pytest.raises(ConfigError, match=r"^--today-interval \(ENPHASE_TODAY_INTERVAL\): "):
        load({"today_interval": "x"}, CREDENTIALS)


def test_credential_rules():
    with pytest.raises(ConfigError, match="no credentials"):
        load({}, {})
    with pytest.raises(ConfigError, match="need both"):
        load({}, {"ENPHASE_E_AUTH_TOKEN": "t-1234"})
    with pytest.raises(ConfigError, match="ENPHASE_EMAIL: a password is set"):
        load({}, {"ENPHASE_PASSWORD": "pw-1234"})
    assert load({"demo": "1"}, {}).demo
    assert load({}, {"ENPHASE_E_AUTH_TOKEN": "t-1234", "ENPHASE_COOKIE": "c=1"}).uses_pasted_headers


def test_password_file(tmp_path):
    secret_file = tmp_path / "password"
    secret_file.write_text("from-a-file-77\n")
    settings = load({}, {"ENPHASE_EMAIL": "a@b.c", "ENPHASE_PASSWORD_FILE": str(secret_file)})
    assert settings.password == Secret("from-a-file-77")
    with pytest.raises(ConfigError, match="ENPHASE_PASSWORD_FILE: cannot read"):
        load({}, {"ENPHASE_EMAIL": "a@b.c", "ENPHASE_PASSWORD_FILE": str(tmp_path / "missing")})


def test_secrets_stay_out_of_repr():
    settings = load({}, {**CREDENTIALS, "ENPHASE_HISTORY_START": "2023-08-10"})
    assert "pw-123456" not in repr(settings) and "pw-123456" not in str(settings.password)
    assert settings.history_start == date(2023, 8, 10)


def test_site_ids_are_deduplicated_in_order():
    assert load({}, {**CREDENTIALS, "ENPHASE_SITE_ID": "3, 1,3"}).site_ids == ("3", "1")


@pytest.mark.parametrize("listen", ["127.0.0.1:9000", ":8466", "8466", "[::1]:8466"])
def test_listen_forms(listen):
    settings = load({}, {**CREDENTIALS, "ENPHASE_LISTEN": listen})
    assert settings.listen_port in (9000, 8466)


def test_cli_prints_one_line_and_exits_2():
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "once", "--today-interval", "soon"],
        capture_output=True,
        text=True,
        env={"ENPHASE_EMAIL": "a@b.c", "PATH": ""},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "enphase-exporter: error: --today-interval (ENPHASE_TODAY_INTERVAL): "
        "expected a whole number of seconds, "
        "got 'soon'"
    ]


def test_readme_configuration_table_is_current():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert markdown_table() in readme
    assert sources_markdown_table() in readme  # the sources, their intervals and costs, from the registry


def test_sources_can_be_narrowed_for_a_site_without_a_charger():
    site = ("site_status", "latest_power", "devices", "battery_status", "battery_settings")
    every = (
        "ev_status",
        "ev_summary",
        "today",
        "lifetime_energy",
        "daily_energy",
        *site,
        "charge_mode",
        "inverters",
    )
    assert load({}, CREDENTIALS).sources == every
    without_charger = load({"sources": "-ev_status, -ev_summary,-charge_mode"}, CREDENTIALS).sources
    assert without_charger == ("today", "lifetime_energy", "daily_energy", *site, "inverters")
    bad_choices = [
        ("-today,ev_status", "expected some of"),
        ("-weather", "expected some of"),
        (",".join(f"-{name}" for name in every), "leaves no source to poll"),
        ("site_status,devices", "site_status comes from today's answer: add today"),
    ]
    for bad, reason in bad_choices:
        with pytest.raises(ConfigError, match=reason):
            load({"sources": bad}, CREDENTIALS)
    # lifetime_energy comes with them: without it the lifetime counters would never start (earlier releases
    # advised "today,daily_energy" for a site without a charger)
    narrowed = ("today", "lifetime_energy", "daily_energy")
    assert load({"sources": "daily_energy, today"}, CREDENTIALS).sources == narrowed
    assert load({"sources": "ev_status"}, CREDENTIALS).sources == ("ev_status",)
    with pytest.raises(ConfigError, match="ENPHASE_SOURCES: expected some of ev_status"):
        load({}, {**CREDENTIALS, "ENPHASE_SOURCES": "today,weather"})


def _help_text(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str) -> str:
    from exporter.cli import main

    monkeypatch.setenv("COLUMNS", "200")  # argparse wraps at the terminal's width
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # one line: wrapping never splits a note


def test_help_shows_each_default_and_allowed_range(monkeypatch, capsys):
    shown = _help_text(monkeypatch, capsys, "serve")
    for expected in (
        "[ENPHASE_EV_STATUS_INTERVAL; default: 60; 15 to 604800 s (7 days)]",
        "[ENPHASE_TODAY_INTERVAL; default: 600; 60 to 604800 s (7 days)]",
        "[ENPHASE_DAILY_ENERGY_INTERVAL; default: 3600; 300 to 604800 s (7 days)]",
        "[ENPHASE_READ_TIMEOUT; default: 30; above 0, at most 3600 seconds]",
        "[ENPHASE_RETRIES; default: 3; 0 to 10]",
        "[ENPHASE_REQUEST_BUDGET; default: 500; 10 to 1000000]",
        "[ENPHASE_INFLUX_QUEUE_MAX_BYTES; default: 100000000; at least 1,000,000 bytes (1MB)]",
        "[ENPHASE_LISTEN; default: :8466]",
        "[ENPHASE_DEMO; default: off]",
    ):
        assert expected in shown
    bounded = [spec for spec in SETTINGS if spec.range is not None]
    assert len(bounded) >= 15
    for spec in bounded:
        assert spec.flag is not None and f"{spec.range}]" in shown.split(spec.flag, 1)[1]


@pytest.mark.parametrize("spec", [s for s in SETTINGS if s.range and " to " in s.range], ids=lambda s: s.env)
def test_a_range_shown_is_the_range_enforced(spec):
    """Whole-number ranges, "LOW to HIGH": both ends pass and one step beyond either fails."""
    match = re.match(r"(\d+) to (\d+)", spec.range)
    if match is None:  # a date range: its start is the earliest day
        assert spec.range.startswith("2000-01-01") and spec.parse("2000-01-01") == date(2000, 1, 1)
        with pytest.raises(ValueError):
            spec.parse("1999-12-31")
        return
    low, high = int(match[1]), int(match[2])
    spec.parse(str(low)), spec.parse(str(high))
    for outside in ([str(low - 1)] if low > 0 else []) + [str(high + 1)]:
        with pytest.raises(ValueError):
            spec.parse(outside)


def test_the_typed_step_names_a_value_of_the_wrong_type_and_a_setting_no_dataclass_takes():
    from exporter.config import Parsed

    parsed = Parsed({"retries": "3", "read_timeout": 30, "email": None, "stray": 1})
    with pytest.raises(TypeError, match="setting retries: a str, where a int belongs"):
        parsed.take("retries", int)
    assert parsed.take("read_timeout", float) == 30.0  # a whole number is a float too
    assert parsed.optional("email", str) is None
    with pytest.raises(TypeError, match="settings parsed but not used: stray"):
        parsed.all_taken()
    items = Parsed({"site_ids": ("1", 2), "shard": ("2", "3"), "sources": ("today",)})
    with pytest.raises(TypeError, match="setting site_ids: holds a int, where only str belongs"):
        items.tuple_of("site_ids", str)
    with pytest.raises(TypeError, match="setting shard: holds a str, where only int belongs"):
        items.pair_of_ints("shard")
    assert items.tuple_of("sources", str) == ("today",)
