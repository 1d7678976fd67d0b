"""The settings file (--config, ENPHASE_CONFIG_FILE): YAML or TOML, keys are the environment names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exporter import config
from exporter.config import SETTINGS, ConfigError, Secret, load

ROOT = Path(__file__).parent.parent
SECRET_ENVS = [spec.env for spec in SETTINGS if spec.parse is config._secret]


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_the_yaml_and_toml_examples_load_to_the_same_settings(tmp_path):
    for name in ("config.example.yml", "config.example.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "enphase-password").write_text("from-a-file-77\n")  # named relative to the settings file
    from_yaml = load({}, {"ENPHASE_CONFIG_FILE": str(tmp_path / "config.example.yml")})
    from_toml = load({"config_file": str(tmp_path / "config.example.toml")}, {})
    assert from_yaml == from_toml
    assert from_yaml.email == "owner@example.com" and from_yaml.password == Secret("from-a-file-77")
    assert from_yaml.site_ids == ("1234567",)
    assert (from_yaml.listen_host, from_yaml.listen_port) == ("127.0.0.1", 8466)
    assert from_yaml.sources == ("today", "lifetime_energy", "daily_energy")
    assert str(from_yaml.history_start) == "2023-08-10"


def test_flags_over_environment_over_file_over_defaults(tmp_path):
    config = write(
        tmp_path,
        "settings.yml",
        "ENPHASE_DEMO: true\nENPHASE_TODAY_INTERVAL: 600\nENPHASE_EV_STATUS_INTERVAL: 120\n"
        "ENPHASE_EV_SUMMARY_INTERVAL: 1200\nENPHASE_RETRIES: 5\n",
    )
    environ = {
        "ENPHASE_CONFIG_FILE": str(config),
        "ENPHASE_EV_STATUS_INTERVAL": "180",
        "ENPHASE_EV_SUMMARY_INTERVAL": "1800",
        "ENPHASE_RETRIES": "",  # empty is unset: the file's value stands
    }
    settings = load({"ev_summary_interval": "2400"}, environ)
    assert settings.demo
    assert settings.intervals["today"] == 600  # file
    assert settings.intervals["ev_status"] == 180  # environment over file
    assert settings.intervals["ev_summary"] == 2400  # flag over environment
    assert settings.retries == 5
    assert settings.intervals["daily_energy"] == 3600  # default


def test_the_flag_names_the_file_over_the_variable(tmp_path):
    chosen = write(tmp_path, "chosen.toml", "ENPHASE_DEMO = true\nENPHASE_TODAY_INTERVAL = 900\n")
    other = write(tmp_path, "other.toml", "ENPHASE_DEMO = true\nENPHASE_TODAY_INTERVAL = 60\n")
    assert load({"config_file": str(chosen)}, {"ENPHASE_CONFIG_FILE": str(other)}).intervals["today"] == 900


# (file name, content or None for no file, what the error says)
BAD_FILES = [
    ("absent.yml", None, "--config (ENPHASE_CONFIG_FILE) {path}: cannot read it: No such file"),
    (
        "settings.ini",
        "x=1",
        "--config (ENPHASE_CONFIG_FILE) {path}: expected a .yml, .yaml or .toml file",
    ),
    ("bad.yml", "ENPHASE_DEMO: [true\n", "--config (ENPHASE_CONFIG_FILE) {path}: not valid YAML: "),
    ("bad.toml", "ENPHASE_DEMO = \n", "--config (ENPHASE_CONFIG_FILE) {path}: not valid TOML: "),
    (
        "twice.yml",
        "ENPHASE_DEMO: 1\nENPHASE_DEMO: 0\n",
        "{path}: not valid YAML: 'ENPHASE_DEMO' appears twice",
    ),
    ("deep.yml", "ENPHASE_SITE_ID: " + "[" * 5000, "{path}: not valid YAML: nested too deeply"),
    ("deep.toml", "ENPHASE_SITE_ID = " + "[" * 5000, "{path}: not valid TOML: nested too deeply"),
    ("binary.yml", b"ENPHASE_EMAIL: \xff\xfe\n", "{path}: cannot read it: not UTF-8 text"),
    ("list.yml", "- ENPHASE_DEMO\n", "{path}: expected a mapping of settings"),
    (
        "unknown.yml",
        "ENPHASE_SITE: 1234567\n",
        "{path}: 'ENPHASE_SITE': not a setting; did you mean ENPHASE_SITE_ID?",
    ),
    (
        "lower.toml",
        "site_id = 1234567\n",
        "{path}: 'site_id': not a setting; did you mean ENPHASE_SITE_ID?",
    ),
    ("other.yml", "colour: blue\n", "{path}: 'colour': not a setting; keys are the environment names"),
    # never a hint towards a secret's own key, which the file refuses
    (
        "secret.yml",
        "password: hunter2\n",
        "{path}: 'password': not a setting; keys are the environment names",
    ),
    (
        "number.yml",
        "1234567: ENPHASE_SITE_ID\n",
        "{path}: '1234567': not a setting; keys are the environment",
    ),
    ("complex.yml", "? [a]\n: x\n", "{path}: not valid YAML: found unhashable key (line 1, column 3)"),
    (
        "nested.yml",
        "ENPHASE_SITE_ID:\n  id: 1234567\n",
        "{path}: ENPHASE_SITE_ID: expected text, a number or true/false, got a mapping",
    ),
    (
        "nested.toml",
        "[ENPHASE_SITE_ID]\nid = 1\n",
        "{path}: ENPHASE_SITE_ID: expected text, a number or true/false, got a mapping",
    ),
    (
        "value.yml",
        "ENPHASE_TODAY_INTERVAL: 5\n",
        "{path}: ENPHASE_TODAY_INTERVAL: must be at least 60 seconds, got 5",
    ),
    (
        "value.toml",
        "ENPHASE_DEMO = true\nENPHASE_HISTORY_START = 1999-01-01\n",
        "{path}: ENPHASE_HISTORY_START: must be between 2000-01-01",
    ),
    (
        "itself.yml",
        "ENPHASE_CONFIG_FILE: other.yml\n",
        "{path}: ENPHASE_CONFIG_FILE: a settings file cannot name another",
    ),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_each_error_is_one_line_naming_the_file_and_the_key(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        write(tmp_path, name, content)
    with pytest.raises(ConfigError) as raised:
        load({"config_file": str(path)}, {})
    text = str(raised.value)
    assert "\n" not in text
    assert message.format(path=path) in text


@pytest.mark.parametrize("env", SECRET_ENVS)
def test_secrets_are_refused_in_the_file(tmp_path, env):
    path = write(tmp_path, "settings.yml", f"ENPHASE_DEMO: true\n{env}: hunter2-secret\n")
    with pytest.raises(ConfigError) as raised:
        load({}, {"ENPHASE_CONFIG_FILE": str(path)})
    text = str(raised.value)
    assert text.startswith(f"{path}: {env}: secrets are not read from a settings file")
    assert f"set {env}_FILE" in text and "hunter2" not in text


def test_every_secret_is_refused():
    # The rule is read from SETTINGS: a secret added later is refused without a change here.
    assert set(SECRET_ENVS) == {
        "ENPHASE_PASSWORD",
        "ENPHASE_E_AUTH_TOKEN",
        "ENPHASE_COOKIE",
        "ENPHASE_INFLUX_TOKEN",
        "ENPHASE_INFLUX_PASSWORD",
        "ENPHASE_GATEWAY_TOKEN",
    }


def test_yaml_values_are_read_as_written(tmp_path):
    # YAML 1.1 would make off and yes booleans, and 2023-08-10 a date: here they are the text the
    # environment variable would hold, for the same parser.
    path = write(
        tmp_path,
        "settings.yml",
        "ENPHASE_LIVE_STREAM: off\nENPHASE_DEMO: yes\nENPHASE_HISTORY_START: 2023-08-10\nENPHASE_RETRIES:\n",
    )
    settings = load({}, {"ENPHASE_CONFIG_FILE": str(path)})
    assert settings.live_stream == "off" and settings.demo and str(settings.history_start) == "2023-08-10"
    assert settings.retries == 3  # empty, as an empty variable: the default


def test_a_secret_from_its_file_named_in_the_settings_file(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "influx").write_text("influx-token-9\n")
    path = write(
        tmp_path,
        "settings.toml",
        'ENPHASE_DEMO = true\nENPHASE_INFLUX_URL = "http://127.0.0.1:8086"\nENPHASE_INFLUX_BUCKET = "b"\n'
        'ENPHASE_INFLUX_ORG = "o"\nENPHASE_INFLUX_TOKEN_FILE = "secrets/influx"\n',
    )
    settings = load({}, {"ENPHASE_CONFIG_FILE": str(path)})
    assert settings.influx is not None and settings.influx.token == Secret("influx-token-9")


def test_an_empty_file_changes_nothing(tmp_path):
    path = write(tmp_path, "settings.yaml", "# nothing yet\n")
    assert load({}, {"ENPHASE_CONFIG_FILE": str(path), "ENPHASE_DEMO": "1"}) == load(
        {}, {"ENPHASE_DEMO": "1"}
    )


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    clean["ENPHASE_SESSION_FILE"] = str(tmp_path / "session.json")
    command = [sys.executable, "-m", "exporter", *args]
    return subprocess.run(command, env=clean, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_once_honours_the_settings_file(tmp_path):
    path = write(tmp_path, "settings.yml", "ENPHASE_SOURCES: [ev_status]\nENPHASE_LOG_LEVEL: error\n")
    result = run(tmp_path, "once", "--demo", "--config", str(path))
    assert result.returncode == 0, result.stderr
    sources = {
        line.split('source="')[1].split('"')[0]
        for line in result.stdout.splitlines()
        if line.startswith("enphase_source_up{")
    }
    assert sources == {"ev_status"}  # the file's ENPHASE_SOURCES, not every source


def test_a_bad_settings_file_exits_2_with_one_line(tmp_path):
    path = write(tmp_path, "settings.yml", "ENPHASE_PASSWORD: hunter2-secret\n")
    result = run(tmp_path, "serve", "--demo", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"enphase-exporter: error: {path}: ENPHASE_PASSWORD: secrets are not read from a settings file; put "
        "it in a file of its own (mode 0600) and set ENPHASE_PASSWORD_FILE to that file"
    ]
