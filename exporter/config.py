"""Settings: command-line flags over environment over defaults, validated once into one typed object.

Every setting is one row of ``SETTINGS``; the README's configuration table is written from the same rows
(``enphase-exporter settings-table``). A bad value raises ``ConfigError`` naming the setting and what is
wrong; the CLI prints that one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from exporter.sources import NAMES

DEFAULT_BASE_URL = "https://enlighten.enphaseenergy.com"
DEFAULT_PORT = 8466


class ConfigError(Exception):
    pass


class Secret:
    """A string that does not show itself in ``repr`` or ``str``: settings objects get logged."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Settings:
    base_url: str
    e_auth_token: Secret | None
    cookie: Secret | None
    email: str | None
    password: Secret | None
    session_file: Path
    site_ids: tuple[str, ...]
    ev_status_interval: int
    ev_status_charging_interval: int
    ev_summary_interval: int
    today_interval: int
    daily_energy_interval: int
    request_budget: int
    listen_host: str
    listen_port: int
    demo: bool
    log_level: str
    connect_timeout: float
    read_timeout: float
    retries: int
    login_backoff: int
    history_start: date | None
    sources: tuple[str, ...]

    @property
    def uses_pasted_headers(self) -> bool:
        return self.e_auth_token is not None


# -- value parsers: each raises ValueError with the reason ------------------------------------------------


def _seconds(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not re.fullmatch(r"\d+", text.strip()):
            raise ValueError(f"expected a whole number of seconds, got {text!r}")
        value = int(text)
        if value < minimum:
            raise ValueError(f"must be at least {minimum} seconds, got {value}")
        return value

    return parse


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"must be greater than 0, got {text}")
    return value


def _count(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not re.fullmatch(r"\d+", text.strip()):
            raise ValueError(f"expected a whole number, got {text!r}")
        value = int(text)
        if not minimum <= value <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum}, got {value}")
        return value

    return parse


def _url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http(s) URL such as {DEFAULT_BASE_URL}, got {text!r}")
    return text.strip().rstrip("/")


def _site_ids(text: str) -> tuple[str, ...]:
    ids = [part.strip() for part in text.split(",") if part.strip()]
    bad = [site for site in ids if not site.isdigit()]
    if bad:
        raise ValueError(f"site ids are numbers, got {', '.join(repr(b) for b in bad)}")
    return tuple(dict.fromkeys(ids))  # order kept, repeats dropped


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _listen(text: str) -> tuple[str, int]:
    match = re.fullmatch(
        r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\s]*)):(?P<port>\d+)|(?P<only>\d+)", text.strip()
    )
    if not match:
        raise ValueError(f"expected HOST:PORT, :PORT or PORT, got {text!r}")
    port = int(match["port"] or match["only"])
    if not 0 < port < 65536:
        raise ValueError(f"port must be 1-65535, got {port}")
    return (match["v6"] or match["host"] or ""), port


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"expected debug, info, warning or error, got {text!r}")
    return level


def _email(text: str) -> str:
    if "@" not in text:
        raise ValueError("expected an email address")
    return text.strip()


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _secret(text: str) -> Secret:
    if not text.strip():
        raise ValueError("is empty")
    return Secret(text.strip())


def _sources(text: str) -> tuple[str, ...]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in chosen if name not in NAMES]
    if unknown or not chosen:
        raise ValueError(f"expected some of {', '.join(NAMES)}, got {text!r}")
    return tuple(name for name in NAMES if name in chosen)


def default_session_file() -> Path:
    state_home = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state_home) / "enphase-exporter" / "session.json"


@dataclass(frozen=True, slots=True)
class SettingSpec:
    field: str
    env: str
    flag: str | None  # None: environment only (secrets do not belong on a command line)
    parse: Callable[[str], Any]
    default: Any
    help: str


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "base_url",
        "ENPHASE_BASE_URL",
        "--base-url",
        _url,
        DEFAULT_BASE_URL,
        "Enlighten base URL (regions, proxies, tests).",
    ),
    SettingSpec("email", "ENPHASE_EMAIL", "--email", _email, None, "Enlighten account email, to log in."),
    SettingSpec("password", "ENPHASE_PASSWORD", None, _secret, None, "Enlighten account password."),
    SettingSpec(
        "password_file",
        "ENPHASE_PASSWORD_FILE",
        "--password-file",
        _path,
        None,
        "File holding the password (e.g. a Docker secret); instead of ENPHASE_PASSWORD.",
    ),
    SettingSpec(
        "e_auth_token",
        "ENPHASE_E_AUTH_TOKEN",
        None,
        _secret,
        None,
        "Pasted `e-auth-token` header from a logged-in browser (with ENPHASE_COOKIE); no login is made.",
    ),
    SettingSpec(
        "cookie", "ENPHASE_COOKIE", None, _secret, None, "Pasted `Cookie` header, with ENPHASE_E_AUTH_TOKEN."
    ),
    SettingSpec(
        "session_file",
        "ENPHASE_SESSION_FILE",
        "--session-file",
        _path,
        None,
        "Where the login session is kept (mode 0600). Default: $XDG_STATE_HOME/enphase-exporter/"
        "session.json, else ~/.local/state/enphase-exporter/session.json.",
    ),
    SettingSpec(
        "site_ids",
        "ENPHASE_SITE_ID",
        "--site-id",
        _site_ids,
        (),
        "Site ids, comma-separated. Default: every site of the account (search_sites.json).",
    ),
    SettingSpec(
        "ev_status_interval",
        "ENPHASE_EV_STATUS_INTERVAL",
        "--ev-status-interval",
        _seconds(15),
        60,
        "Seconds between EV status polls.",
    ),
    SettingSpec(
        "ev_status_charging_interval",
        "ENPHASE_EV_STATUS_CHARGING_INTERVAL",
        "--ev-status-charging-interval",
        _seconds(15),
        30,
        "Seconds between EV status polls while a charger of the site is charging.",
    ),
    SettingSpec(
        "ev_summary_interval",
        "ENPHASE_EV_SUMMARY_INTERVAL",
        "--ev-summary-interval",
        _seconds(60),
        900,
        "Seconds between EV summary polls.",
    ),
    SettingSpec(
        "today_interval",
        "ENPHASE_TODAY_INTERVAL",
        "--today-interval",
        _seconds(60),
        300,
        "Seconds between battery/site today polls.",
    ),
    SettingSpec(
        "daily_energy_interval",
        "ENPHASE_DAILY_ENERGY_INTERVAL",
        "--daily-energy-interval",
        _seconds(300),
        3600,
        "Seconds between daily energy polls.",
    ),
    SettingSpec(
        "request_budget",
        "ENPHASE_REQUEST_BUDGET",
        "--request-budget",
        _count(10, 1_000_000),
        500,
        "Most requests per hour for the whole account; intervals stretch to stay within it.",
    ),
    SettingSpec(
        "listen",
        "ENPHASE_LISTEN",
        "--listen",
        _listen,
        ("", DEFAULT_PORT),
        f"Address of /metrics: HOST:PORT, :PORT or PORT. Default :{DEFAULT_PORT} (all interfaces).",
    ),
    SettingSpec(
        "demo",
        "ENPHASE_DEMO",
        "--demo",
        _flag,
        False,
        "Run against the built-in demo cloud (no account needed).",
    ),
    SettingSpec(
        "log_level", "ENPHASE_LOG_LEVEL", "--log-level", _log_level, "INFO", "debug, info, warning or error."
    ),
    SettingSpec(
        "connect_timeout",
        "ENPHASE_CONNECT_TIMEOUT",
        "--connect-timeout",
        _positive_number,
        5.0,
        "Seconds to wait for a connection to the cloud.",
    ),
    SettingSpec(
        "read_timeout",
        "ENPHASE_READ_TIMEOUT",
        "--read-timeout",
        _positive_number,
        30.0,
        "Seconds to wait for the cloud's answer.",
    ),
    SettingSpec(
        "retries",
        "ENPHASE_RETRIES",
        "--retries",
        _count(0, 10),
        3,
        "Retries after a timeout or 5xx, with jittered exponential back-off.",
    ),
    SettingSpec(
        "login_backoff",
        "ENPHASE_LOGIN_BACKOFF",
        "--login-backoff",
        _seconds(60),
        3600,
        "Seconds without any login attempt after 'Too many active sessions', bad credentials or MFA.",
    ),
    SettingSpec(
        "history_start",
        "ENPHASE_HISTORY_START",
        "--history-start",
        _day,
        None,
        "First day of the lifetime counters. Default: the site's own start date.",
    ),
    SettingSpec(
        "sources",
        "ENPHASE_SOURCES",
        "--sources",
        _sources,
        NAMES,
        "Sources to poll, comma-separated. Leave out ev_status,ev_summary for a site without a charger, "
        "so that enphase_up is about what the site has.",
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for spec in SETTINGS:
        if spec.flag is None:
            continue
        if spec.parse is _flag:
            parser.add_argument(spec.flag, dest=spec.field, action="store_const", const="1", help=spec.help)
        else:
            parser.add_argument(spec.flag, dest=spec.field, metavar="VALUE", help=f"{spec.help} [{spec.env}]")


def load(
    flags: Mapping[str, str | None], environ: Mapping[str, str], *, require_credentials: bool = True
) -> Settings:
    """Settings from parsed flags (strings, None when not given) and the environment.

    ``require_credentials=False`` is for ``login``, which asks on the terminal for what is missing.
    """
    values: dict[str, Any] = {}
    for spec in SETTINGS:
        raw, origin = flags.get(spec.field), f"{spec.flag}"
        if raw is None:
            raw, origin = environ.get(spec.env), spec.env
        if raw is None or (raw == "" and spec.parse is not _flag):
            values[spec.field] = spec.default
            continue
        try:
            values[spec.field] = spec.parse(raw)
        except ValueError as error:
            label = spec.env if origin == spec.env else f"{spec.flag} ({spec.env})"
            raise ConfigError(f"{label}: {error}") from None
    return _finish(values, require_credentials)


def _finish(values: dict[str, Any], require_credentials: bool) -> Settings:
    password_file: Path | None = values.pop("password_file")
    if password_file is not None:
        if values["password"] is not None:
            raise ConfigError(
                "ENPHASE_PASSWORD_FILE: set either ENPHASE_PASSWORD or ENPHASE_PASSWORD_FILE, not both"
            )
        try:
            values["password"] = _secret(password_file.read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"ENPHASE_PASSWORD_FILE: cannot read {password_file}: {error}") from None
    if (values["e_auth_token"] is None) != (values["cookie"] is None):
        raise ConfigError(
            "ENPHASE_E_AUTH_TOKEN/ENPHASE_COOKIE: pasted headers need both, the token and the cookie"
        )
    if values["password"] is not None and values["email"] is None:
        raise ConfigError("ENPHASE_EMAIL: a password is set but no email to log in with")
    if (
        require_credentials
        and not values["demo"]
        and values["e_auth_token"] is None
        and values["email"] is None
    ):
        raise ConfigError(
            "ENPHASE_EMAIL: no credentials. Set ENPHASE_EMAIL and ENPHASE_PASSWORD, or ENPHASE_E_AUTH_TOKEN "
            "and "
            "ENPHASE_COOKIE, or try the demo cloud with --demo"
        )
    values["listen_host"], values["listen_port"] = values.pop("listen")
    values["session_file"] = values["session_file"] or default_session_file()
    return Settings(**values)


def markdown_table() -> str:
    """The README's configuration table, from the same rows the loader uses."""
    lines = ["| environment | flag | default | meaning |", "|---|---|---|---|"]
    for spec in SETTINGS:
        default = spec.default
        if spec.field == "listen":
            default = f":{DEFAULT_PORT}"
        if isinstance(default, tuple):
            default = ",".join(default)
        shown = "—" if default in (None, "") else f"`{default}`"
        flag = f"`{spec.flag}`" if spec.flag else "— (environment only)"
        lines.append(f"| `{spec.env}` | {flag} | {shown} | {spec.help} |")
    return "\n".join(lines)
