"""Settings: command-line flags over environment over defaults, validated once into one typed object.

Every setting is one row of ``SETTINGS``; the README's configuration table is written from the same rows
(``markdown_table``, which a test compares with the README). A bad value raises ``ConfigError`` naming the
setting and what is wrong; the CLI prints that one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from exporter import strict_yaml
from exporter.demo.faults import FAULT_NAMES, FaultMix, parse_fault_mix
from exporter.sources import BY_NAME, DEFAULTS, NAMES, REGISTRY
from exporter.sources.energy_day import DEFAULT_MAX_SITE_POWER_WATTS

DEFAULT_BASE_URL = "https://enlighten.enphaseenergy.com"
DEFAULT_PORT = 8466
# Upper bounds, so that a typo such as 99999999999999999999 is refused here instead of overflowing a timer
# or a date later, deep inside a running exporter.
MAX_INTERVAL = 7 * 86400
MAX_TIMEOUT = 3600.0
EARLIEST_HISTORY = date(2000, 1, 1)  # before any Enphase site reported
MAX_WATTS = 1e9  # no home site comes near a gigawatt
SECRET_FILE_LIMIT = 64 * 1024  # a password or token file is short; /dev/zero is not
MIN_QUEUE_BYTES = 10**6
RESOLUTIONS = (1, 3600)  # seconds: from every frame to one point an hour


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
class InfluxSettings:
    """Where points go: InfluxDB 2.x/3.x (``bucket``, via influxdb-client) or 1.x (``database``, /write)."""

    url: str
    bucket: str | None
    org: str | None
    token: Secret | None
    database: str | None
    retention_policy: str | None
    username: str | None
    password: Secret | None
    queue_dir: Path
    queue_max_bytes: int

    @property
    def api_version(self) -> int:
        return 2 if self.bucket is not None else 1

    @property
    def target(self) -> str:
        """Where the points go, for logs: no credentials."""
        return f"{self.url} bucket {self.bucket}" if self.bucket else f"{self.url} database {self.database}"


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """The IQ Gateway on the local network, an optional source of EV status (see sources/gateway.py)."""

    url: str
    token: Secret
    cert_sha256: str | None  # lower-case hex, no colons; None only with insecure_skip_verify
    insecure_skip_verify: bool
    site_id: str | None  # None: the one site the exporter polls
    ev_status_interval: int
    discovery_interval: int


@dataclass(frozen=True, slots=True)
class Settings:
    base_url: str
    e_auth_token: Secret | None
    cookie: Secret | None
    email: str | None
    password: Secret | None
    session_file: Path
    site_ids: tuple[str, ...]
    intervals: Mapping[str, int]  # source -> seconds between polls (sources that follow another have none)
    ev_status_charging_interval: int
    request_budget: int
    listen_host: str
    listen_port: int
    demo: bool
    demo_faults: FaultMix | None  # None: the demo cloud answers every request well
    log_level: str
    connect_timeout: float
    read_timeout: float
    retries: int
    login_backoff: int
    history_start: date | None
    max_site_power_watts: float
    sources: tuple[str, ...]
    influx: InfluxSettings | None  # None: no InfluxDB output
    web_config_file: Path | None
    shard: tuple[int, int] | None  # (k, n): this exporter polls the k-th of n shares of the sites
    gateway: GatewaySettings | None = None  # None: no local gateway, EV status from the cloud only
    live_stream: str = "auto"  # auto, on or off
    live_influx_resolution: float = 10.0  # seconds per enphase_site_live point
    # Set by serve --demo only (no setting): the demo broker speaks plain ws:// on the loopback interface.
    live_plain_loopback: bool = False

    @property
    def uses_pasted_headers(self) -> bool:
        return self.e_auth_token is not None


# -- value parsers: each raises ValueError with the reason ------------------------------------------------


class Bounded:
    """A value parser that knows its allowed range: ``--help`` and the README show the very bounds it checks.

    Each factory below builds the text from the same numbers its check uses, so the two cannot drift.
    """

    __slots__ = ("_parse", "range")

    def __init__(self, parse: Callable[[str], Any], range_text: str) -> None:
        self._parse = parse
        self.range = range_text

    def __call__(self, text: str) -> Any:
        return self._parse(text)


def _seconds(minimum: int, maximum: int = MAX_INTERVAL) -> Bounded:
    def parse(text: str) -> int:
        if not re.fullmatch(r"\d+", text.strip()):
            raise ValueError(f"expected a whole number of seconds, got {text!r}")
        value = int(text)
        if value < minimum:
            raise ValueError(f"must be at least {minimum} seconds, got {value}")
        if value > maximum:
            raise ValueError(f"must be at most {maximum} seconds ({_days(maximum)}), got {value}")
        return value

    return Bounded(parse, f"{minimum} to {maximum} s ({_days(maximum)})")


def _days(seconds: int) -> str:
    days = seconds / 86400
    return f"{days:g} day{'s' if days != 1 else ''}"


def _above_zero(unit: str, maximum: float, maximum_text: str) -> Bounded:
    """A number above 0 and at most ``maximum``: seconds of a timeout, watts of a site."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected a number of {unit}, got {text!r}") from None
        if not (math.isfinite(value) and 0 < value <= maximum):
            raise ValueError(f"must be a number of {unit} above 0 and at most {maximum_text}, got {text}")
        return value

    return Bounded(parse, f"above 0, at most {maximum_text} {unit}")


_timeout = _above_zero("seconds", MAX_TIMEOUT, f"{MAX_TIMEOUT:.0f}")
_watts = _above_zero("watts", MAX_WATTS, "1e9 (1 GW)")


def _count(minimum: int, maximum: int) -> Bounded:
    def parse(text: str) -> int:
        if not re.fullmatch(r"\d+", text.strip()):
            raise ValueError(f"expected a whole number, got {text!r}")
        value = int(text)
        if not minimum <= value <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum}, got {value}")
        return value

    return Bounded(parse, f"{minimum} to {maximum}")


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


def _parse_day(text: str) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected a date as YYYY-MM-DD, got {text!r}") from None
    if not EARLIEST_HISTORY <= day <= date.today():
        raise ValueError(f"must be between {EARLIEST_HISTORY} and today, got {day}")
    return day


_day = Bounded(_parse_day, f"{EARLIEST_HISTORY} to today")


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _secret(text: str) -> Secret:
    if not text.strip():
        raise ValueError("is empty")
    return Secret(text.strip())


def _sources(text: str) -> tuple[str, ...]:
    """Names, or (all starting with "-") the defaults without some: "-ev_status,-ev_summary,-charge_mode"."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    leaving_out = bool(parts) and all(part.startswith("-") for part in parts)
    named = [part.removeprefix("-") for part in parts] if leaving_out else parts
    unknown = [name for name in named if name not in NAMES]
    if unknown or not parts:
        raise ValueError(f"expected some of {', '.join(NAMES)} (or -name to leave one out), got {text!r}")
    chosen = [name for name in DEFAULTS if name not in named] if leaving_out else named
    if not chosen:
        raise ValueError("leaves no source to poll")
    if {"today", "daily_energy"} & set(chosen):
        # The lifetime counters start from lifetime_energy: without it they would never appear (the setting
        # "today,daily_energy" of earlier releases, for sites without a charger, left it out).
        chosen.append("lifetime_energy")
    for name in chosen:
        leader = BY_NAME[name].follows
        if leader is not None and leader not in chosen:
            raise ValueError(f"{name} comes from {leader}'s answer: add {leader}, or leave {name} out")
    return tuple(name for name in NAMES if name in chosen)


_SIZE_UNITS = {"": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _parse_bytes(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([kmg]i?b)?", text.strip().lower())
    if not match:
        raise ValueError(f"expected a size such as 100000000, 500MB or 1GiB, got {text!r}")
    value = int(match[1]) * _SIZE_UNITS[match[2] or ""]
    if value < MIN_QUEUE_BYTES:
        raise ValueError(f"must be at least {MIN_QUEUE_BYTES:,} bytes (1MB), got {text!r}")
    return value


_bytes = Bounded(_parse_bytes, f"at least {MIN_QUEUE_BYTES:,} bytes (1MB)")


def _name(text: str) -> str:
    if not text.strip():
        raise ValueError("is empty")
    return text.strip()


def _https_url(text: str) -> str:
    url = _url(text)
    if not url.startswith("https://"):
        raise ValueError(f"the gateway answers over HTTPS only, such as https://envoy.local; got {text!r}")
    return url


def _sha256(text: str) -> str:
    digits = text.strip().replace(":", "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digits):
        raise ValueError("expected a SHA-256 fingerprint: 64 hex digits, colons allowed")
    return digits


def _site_id(text: str) -> str:
    ids = _site_ids(text)
    if len(ids) != 1:
        raise ValueError(f"expected one site id, got {text!r}")
    return ids[0]


def _shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ValueError(f"expected K/N with 1 <= K <= N, such as 2/3, got {text!r}")
    return int(match[1]), int(match[2])


def _live_mode(text: str) -> str:
    mode = text.strip().lower()
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"expected auto, on or off, got {text!r}")
    return mode


def _parse_resolution(text: str) -> float:
    match = re.fullmatch(r"(\d+)\s*(s|m)?", text.strip().lower())
    if not match:
        raise ValueError(f"expected seconds such as 10s, 1s or 1m, got {text!r}")
    seconds = int(match[1]) * (60 if match[2] == "m" else 1)
    if not RESOLUTIONS[0] <= seconds <= RESOLUTIONS[1]:
        raise ValueError(f"must be between {RESOLUTIONS[0]}s and {RESOLUTIONS[1]}s, got {text!r}")
    return float(seconds)


_resolution = Bounded(_parse_resolution, f"{RESOLUTIONS[0]} to {RESOLUTIONS[1]} s")


def default_session_file() -> Path:
    state_home = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state_home) / "enphase-exporter" / "session.json"


def default_queue_dir() -> Path:
    return default_session_file().parent / "influx-queue"


@dataclass(frozen=True, slots=True)
class SettingSpec:
    field: str
    env: str
    flag: str | None  # None: environment only (secrets do not belong on a command line)
    parse: Callable[[str], Any]
    default: Any
    help: str

    @property
    def range(self) -> str | None:
        """The allowed values, as the parser checks them; None for a setting without bounds."""
        return self.parse.range if isinstance(self.parse, Bounded) else None

    @property
    def shown_default(self) -> str | None:
        """The default as a user would write it; None when there is none (the help says what happens)."""
        default = self.default
        if self.field == "listen":
            return f":{DEFAULT_PORT}"
        if self.field == "live_influx_resolution":
            return f"{default:.0f}s"
        if isinstance(default, tuple):
            default = ",".join(default)
        if self.parse is _flag:
            return "on" if default else "off"
        if isinstance(default, float) and default.is_integer():
            default = int(default)
        return None if default in (None, "") else str(default)


CONFIG_FILE = SettingSpec(
    "config_file",
    "ENPHASE_CONFIG_FILE",
    "--config",
    _path,
    None,
    "A YAML (.yml, .yaml) or TOML (.toml) file of settings, by their environment names; flags and the "
    "environment override it. No secrets: only their *_FILE settings.",
)

SETTINGS: tuple[SettingSpec, ...] = (
    CONFIG_FILE,
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
    *(
        SettingSpec(
            f"{source.name}_interval",
            source.interval_setting,
            source.interval_flag,
            _seconds(source.minimum_interval),
            source.default_interval,
            f"Seconds between {source.name} polls ({source.reads}).",
        )
        for source in REGISTRY
        if source.follows is None
    ),
    SettingSpec(
        "ev_status_charging_interval",
        "ENPHASE_EV_STATUS_CHARGING_INTERVAL",
        "--ev-status-charging-interval",
        _seconds(15),
        30,
        "Seconds between ev_status polls while a charger of the site is charging.",
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
        "demo_faults",
        "ENPHASE_DEMO_FAULTS",
        "--demo-faults",
        parse_fault_mix,
        None,
        "With --demo: the demo cloud misbehaves at random, reproducibly. `mixed`, or some of "
        f"{', '.join(FAULT_NAMES)}; plus seed=N and rate=X (share of requests, default 0.05).",
    ),
    SettingSpec(
        "log_level", "ENPHASE_LOG_LEVEL", "--log-level", _log_level, "INFO", "debug, info, warning or error."
    ),
    SettingSpec(
        "connect_timeout",
        "ENPHASE_CONNECT_TIMEOUT",
        "--connect-timeout",
        _timeout,
        5.0,
        "Seconds to wait for a connection to the cloud.",
    ),
    SettingSpec(
        "read_timeout",
        "ENPHASE_READ_TIMEOUT",
        "--read-timeout",
        _timeout,
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
        "First day of the lifetime counters. Default: the site's first day (lifetime_energy's start_date).",
    ),
    SettingSpec(
        "max_site_power_watts",
        "ENPHASE_MAX_SITE_POWER",
        "--max-site-power",
        _watts,
        DEFAULT_MAX_SITE_POWER_WATTS,
        "Watts the site can never exceed: a 15-minute bucket or a day above this power is a broken value, "
        "counted in enphase_parse_errors_total and left out of every series and counter.",
    ),
    SettingSpec(
        "sources",
        "ENPHASE_SOURCES",
        "--sources",
        _sources,
        DEFAULTS,
        f"Sources to poll, comma-separated, of {', '.join(NAMES)}; or the defaults without some: "
        "-ev_status,-ev_summary,-charge_mode for a site without a charger, so that enphase_up is about "
        "what the site has. lifetime_energy comes with today or daily_energy: the lifetime counters start "
        "from it.",
    ),
    SettingSpec(
        "influx_url",
        "ENPHASE_INFLUX_URL",
        "--influx-url",
        _url,
        None,
        "InfluxDB to push every reading to, such as http://localhost:8086. Off when unset.",
    ),
    SettingSpec(
        "influx_bucket",
        "ENPHASE_INFLUX_BUCKET",
        "--influx-bucket",
        _name,
        None,
        "InfluxDB 2.x/3.x: the bucket (with ENPHASE_INFLUX_ORG and ENPHASE_INFLUX_TOKEN).",
    ),
    SettingSpec(
        "influx_org", "ENPHASE_INFLUX_ORG", "--influx-org", _name, None, "InfluxDB 2.x/3.x: the organisation."
    ),
    SettingSpec(
        "influx_token", "ENPHASE_INFLUX_TOKEN", None, _secret, None, "InfluxDB 2.x/3.x: the API token."
    ),
    SettingSpec(
        "influx_token_file",
        "ENPHASE_INFLUX_TOKEN_FILE",
        "--influx-token-file",
        _path,
        None,
        "File holding the InfluxDB token; instead of ENPHASE_INFLUX_TOKEN.",
    ),
    SettingSpec(
        "influx_database",
        "ENPHASE_INFLUX_DATABASE",
        "--influx-database",
        _name,
        None,
        "InfluxDB 1.x: the database (written through /write).",
    ),
    SettingSpec(
        "influx_retention_policy",
        "ENPHASE_INFLUX_RETENTION_POLICY",
        "--influx-retention-policy",
        _name,
        None,
        "InfluxDB 1.x: the retention policy. Default: the database's default policy.",
    ),
    SettingSpec(
        "influx_username",
        "ENPHASE_INFLUX_USERNAME",
        "--influx-username",
        _name,
        None,
        "InfluxDB 1.x: user name, when authentication is on.",
    ),
    SettingSpec(
        "influx_password",
        "ENPHASE_INFLUX_PASSWORD",
        None,
        _secret,
        None,
        "InfluxDB 1.x: the user's password.",
    ),
    SettingSpec(
        "influx_password_file",
        "ENPHASE_INFLUX_PASSWORD_FILE",
        "--influx-password-file",
        _path,
        None,
        "File holding the InfluxDB 1.x password; instead of ENPHASE_INFLUX_PASSWORD.",
    ),
    SettingSpec(
        "influx_queue_dir",
        "ENPHASE_INFLUX_QUEUE_DIR",
        "--influx-queue-dir",
        _path,
        None,
        "Where points wait while InfluxDB is unreachable; kept across restarts. Default: influx-queue/ "
        "beside the session file.",
    ),
    SettingSpec(
        "influx_queue_max_bytes",
        "ENPHASE_INFLUX_QUEUE_MAX_BYTES",
        "--influx-queue-max-bytes",
        _bytes,
        100_000_000,
        "Bound of the waiting points; beyond it the oldest are dropped. One site queues about 11MB a day "
        "while InfluxDB is unreachable, so 100MB holds about 8 days (benchmarks/queue_growth.py).",
    ),
    SettingSpec(
        "web_config_file",
        "ENPHASE_WEB_CONFIG_FILE",
        "--web.config.file",
        _path,
        None,
        "Exporter-toolkit web config: TLS (`tls_server_config`) and bcrypt `basic_auth_users` for /metrics.",
    ),
    SettingSpec(
        "shard",
        "ENPHASE_SHARD",
        "--shard",
        _shard,
        None,
        "K/N: poll only the K-th of N deterministic shares of the account's sites (one exporter per share).",
    ),
    SettingSpec(
        "gateway_url",
        "ENPHASE_GATEWAY_URL",
        "--gateway-url",
        _https_url,
        None,
        "The IQ Gateway on the local network, such as https://envoy.local: EV status is read there while "
        "it answers, the cloud otherwise. Needs an installer-scope token: owner tokens get 401 today.",
    ),
    SettingSpec("gateway_token", "ENPHASE_GATEWAY_TOKEN", None, _secret, None, "The gateway's access token."),
    SettingSpec(
        "gateway_token_file",
        "ENPHASE_GATEWAY_TOKEN_FILE",
        "--gateway-token-file",
        _path,
        None,
        "File holding the gateway token; instead of ENPHASE_GATEWAY_TOKEN.",
    ),
    SettingSpec(
        "gateway_cert_sha256",
        "ENPHASE_GATEWAY_CERT_SHA256",
        "--gateway-cert-sha256",
        _sha256,
        None,
        "SHA-256 fingerprint of the gateway's self-signed certificate; no other certificate is accepted.",
    ),
    SettingSpec(
        "gateway_insecure_skip_verify",
        "ENPHASE_GATEWAY_INSECURE_SKIP_VERIFY",
        "--gateway-insecure-skip-verify",
        _flag,
        False,
        "Accept any gateway certificate (logged as a warning); instead of ENPHASE_GATEWAY_CERT_SHA256.",
    ),
    SettingSpec(
        "gateway_site_id",
        "ENPHASE_GATEWAY_SITE_ID",
        "--gateway-site-id",
        _site_id,
        None,
        "The site the gateway belongs to. Default: the one site polled (needed when there are several).",
    ),
    SettingSpec(
        "gateway_ev_status_interval",
        "ENPHASE_GATEWAY_EV_STATUS_INTERVAL",
        "--gateway-ev-status-interval",
        _seconds(5),
        15,
        "Seconds between EV status reads from the gateway (no cloud request while it answers).",
    ),
    SettingSpec(
        "gateway_discovery_interval",
        "ENPHASE_GATEWAY_DISCOVERY_INTERVAL",
        "--gateway-discovery-interval",
        _seconds(600),
        10800,
        "Seconds between asks of the gateway's charger list; after a 401 it is not asked again before this.",
    ),
    SettingSpec(
        "live_stream",
        "ENPHASE_LIVE_STREAM",
        "--live-stream",
        _live_mode,
        "auto",
        "Live power from the cloud's live stream (about 4 requests an hour per site): auto (every site with "
        "a gateway; after a refusal, show_livestream says whether to ask again soon or in a day), on, or "
        "off. `serve` only.",
    ),
    SettingSpec(
        "live_influx_resolution",
        "ENPHASE_LIVE_INFLUX_RESOLUTION",
        "--live-influx-resolution",
        _resolution,
        10.0,
        "Live points in InfluxDB: the mean of the frames in each window of this length; 1s keeps each frame.",
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for spec in SETTINGS:
        if spec.flag is None:
            continue
        if spec.parse is _flag:
            parser.add_argument(spec.flag, dest=spec.field, action="store_const", const="1", help=_help(spec))
        else:
            parser.add_argument(spec.flag, dest=spec.field, metavar="VALUE", help=_help(spec))


def _help(spec: SettingSpec) -> str:
    """``Seconds between EV status polls. [ENPHASE_EV_STATUS_INTERVAL; default: 60; 15 to 604800 s]``"""
    notes = [spec.env]
    if spec.shown_default is not None:
        notes.append(f"default: {spec.shown_default}")
    if spec.range is not None:
        notes.append(spec.range)
    # argparse formats help with %: a literal one in a setting's text must not be read as a placeholder.
    return f"{spec.help} [{'; '.join(notes)}]".replace("%", "%%")


def load(
    flags: Mapping[str, str | None], environ: Mapping[str, str], *, require_credentials: bool = True
) -> Settings:
    """Settings from parsed flags (strings, None when not given), the environment and the config file.

    ``require_credentials=False`` is for ``login``, which asks on the terminal for what is missing.
    """
    given_path, config_label = _given(CONFIG_FILE, flags, environ)
    config_path = None if given_path is None else _path(given_path)
    from_file = {} if config_path is None else read_config_file(config_path, config_label)
    values: dict[str, Any] = {}
    for spec in SETTINGS:
        if spec is CONFIG_FILE:
            continue
        raw, label = _given(spec, flags, environ)
        in_file = from_file.get(spec.env)
        if raw is None and config_path is not None and in_file is not None and _set(in_file, spec):
            raw, label = in_file, f"{config_path}: {spec.env}"
            if spec.parse is _path and raw.strip():
                # Relative to the file, not to wherever the exporter was started (/ under systemd).
                raw = str(config_path.parent / Path(raw).expanduser())
        if raw is None:
            values[spec.field] = spec.default
            continue
        if not _encodable(raw):  # Python keeps bytes that are not UTF-8 as lone surrogates, which fail later
            raise ConfigError(f"{label}: holds bytes that are not UTF-8; set it again as UTF-8 text")
        try:
            values[spec.field] = spec.parse(raw)
        except ValueError as error:
            raise ConfigError(f"{label}: {error}") from None
    return _finish(values, require_credentials)


def _given(
    spec: SettingSpec, flags: Mapping[str, str | None], environ: Mapping[str, str]
) -> tuple[str | None, str]:
    """The flag's value, else the variable's, with the label an error names it by; None: the settings file
    or the default applies."""
    for raw, label in (
        (flags.get(spec.field), f"{spec.flag} ({spec.env})"),
        (environ.get(spec.env), spec.env),
    ):
        if raw is not None and _set(raw, spec):
            return raw, label
    return None, spec.env


def _set(raw: str, spec: SettingSpec) -> bool:
    """Empty is unset, except for on/off settings, where empty is off."""
    return raw != "" or spec.parse is _flag


# A settings file is a few hundred bytes; the bound keeps /dev/zero or a log file named by mistake out.
CONFIG_FILE_LIMIT = 1024 * 1024
_SECRET_ENVS = frozenset(spec.env for spec in SETTINGS if spec.parse is _secret)
# Secrets are left out: a suggestion never leads to one, and they are refused before this is asked.
_FILE_ENVS = frozenset(
    spec.env for spec in SETTINGS if spec is not CONFIG_FILE and spec.env not in _SECRET_ENVS
)


def read_config_file(path: Path, label: str) -> dict[str, str]:
    """The settings in a YAML or TOML file, by environment name, each as the text the environment would hold.

    Every problem is a ``ConfigError`` of one line naming the file (and the key, when there is one).
    """
    where = f"{label} {path}"
    kind = {".yml": "YAML", ".yaml": "YAML", ".toml": "TOML"}.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{where}: expected a .yml, .yaml or .toml file")
    try:
        with path.open("rb") as file:
            content = file.read(CONFIG_FILE_LIMIT + 1)
        if len(content) > CONFIG_FILE_LIMIT:
            raise ValueError(f"longer than {CONFIG_FILE_LIMIT // 1024} KiB, so not a settings file")
        text = content.decode()
    except (OSError, ValueError) as error:
        reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else _os_reason(error)
        raise ConfigError(f"{where}: cannot read it: {reason}") from None
    try:
        # TextLoader keeps every YAML value as the text written and refuses a key given twice, as TOML does.
        root = yaml.load(text, Loader=strict_yaml.TextLoader) if kind == "YAML" else tomllib.loads(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{where}: not valid YAML: {strict_yaml.problem(error)}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML: {' '.join(str(error).split())}") from None
    except RecursionError:  # both parsers descend recursively: "[" * 5000 exhausts the stack
        raise ConfigError(f"{where}: not valid {kind}: nested too deeply for a settings file") from None
    if root is None:  # an empty YAML file: no settings
        return {}
    if not isinstance(root, dict):
        raise ConfigError(f"{path}: expected a mapping of settings such as ENPHASE_SITE_ID: 1234567")
    return {_config_key(path, key): _config_value(path, key, value) for key, value in root.items()}


def _os_reason(error: BaseException) -> str:
    return error.strerror or str(error) if isinstance(error, OSError) else str(error)


def _config_key(path: Path, key: object) -> str:
    if not isinstance(key, str):
        raise ConfigError(f"{path}: {key!r}: keys are setting names such as ENPHASE_SITE_ID")
    if key in _SECRET_ENVS:
        raise ConfigError(
            f"{path}: {key}: secrets are not read from a settings file; put it in a file of its own (mode "
            f"0600) and set {key}_FILE to that file"
        )
    if key == CONFIG_FILE.env:
        raise ConfigError(f"{path}: {key}: a settings file cannot name another")
    if key not in _FILE_ENVS:
        # site_id for ENPHASE_SITE_ID, or a typo: the one setting meant, when it is clear which.
        prefixed = f"ENPHASE_{key.upper()}"
        close = (
            [prefixed] if prefixed in _FILE_ENVS else difflib.get_close_matches(key.upper(), _FILE_ENVS, 1)
        )
        hint = (
            f"did you mean {close[0]}?" if close else "keys are the environment names, e.g. ENPHASE_SITE_ID"
        )
        raise ConfigError(f"{path}: {key[:80]!r}: not a setting; {hint}")
    return key


def _config_value(path: Path, key: str, value: object) -> str:
    """The text the environment variable would hold: the same parser then checks it."""
    if isinstance(value, list) and all(_is_scalar(item) for item in value):
        return ",".join(_scalar_text(item) for item in value)  # ENPHASE_SITE_ID: [1234567, 7654321]
    if not _is_scalar(value):
        raise ConfigError(f"{path}: {key}: expected text, a number or true/false, got a {_type_name(value)}")
    return _scalar_text(value)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | date)  # bool is an int; datetime a date


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):  # TOML reads 2023-08-10 as a date
        return value.isoformat()
    return str(value)


def _type_name(value: object) -> str:
    return "mapping" if isinstance(value, dict) else type(value).__name__


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _finish(values: dict[str, Any], require_credentials: bool) -> Settings:
    if values["demo_faults"] is not None and not values["demo"]:
        raise ConfigError("ENPHASE_DEMO_FAULTS: faults are for the demo cloud; add --demo (ENPHASE_DEMO=1)")
    _secret_from_file(values, "password", "ENPHASE_PASSWORD")
    _secret_from_file(values, "influx_token", "ENPHASE_INFLUX_TOKEN")
    _secret_from_file(values, "influx_password", "ENPHASE_INFLUX_PASSWORD")
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
    parsed = Parsed(values)
    influx = _influx(parsed)
    # After InfluxDB's checks, as before: which error is named first stays what it was.
    _secret_from_file(values, "gateway_token", "ENPHASE_GATEWAY_TOKEN")
    gateway = _gateway(parsed)
    listen_host, listen_port = parsed.take("listen", tuple)
    if not (isinstance(listen_host, str) and isinstance(listen_port, int)):
        raise TypeError(f"setting listen: ({type(listen_host).__name__}, {type(listen_port).__name__})")
    settings = Settings(
        base_url=parsed.take("base_url", str),
        e_auth_token=parsed.optional("e_auth_token", Secret),
        cookie=parsed.optional("cookie", Secret),
        email=parsed.optional("email", str),
        password=parsed.optional("password", Secret),
        session_file=parsed.optional("session_file", Path) or default_session_file(),
        site_ids=parsed.tuple_of("site_ids", str),
        intervals=MappingProxyType(
            {
                source.name: parsed.take(f"{source.name}_interval", int)
                for source in REGISTRY
                if source.follows is None
            }
        ),
        ev_status_charging_interval=parsed.take("ev_status_charging_interval", int),
        request_budget=parsed.take("request_budget", int),
        listen_host=listen_host,
        listen_port=listen_port,
        demo=parsed.take("demo", bool),
        demo_faults=parsed.optional("demo_faults", FaultMix),
        log_level=parsed.take("log_level", str),
        connect_timeout=parsed.take("connect_timeout", float),
        read_timeout=parsed.take("read_timeout", float),
        retries=parsed.take("retries", int),
        login_backoff=parsed.take("login_backoff", int),
        history_start=parsed.optional("history_start", date),
        max_site_power_watts=parsed.take("max_site_power_watts", float),
        sources=parsed.tuple_of("sources", str),
        influx=influx,
        web_config_file=parsed.optional("web_config_file", Path),
        shard=parsed.pair_of_ints("shard"),
        gateway=gateway,
        live_stream=parsed.take("live_stream", str),
        live_influx_resolution=parsed.take("live_influx_resolution", float),
    )
    parsed.all_taken()
    return settings


Kind = TypeVar("Kind")


class Parsed:
    """The typed step between the settings table and the dataclasses: each parsed value is taken by its field
    with the type the dataclass wants, checked here, so mypy checks the dataclasses' construction and a parser
    that returns the wrong type fails at start-up, naming the field, rather than somewhere later."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def take(self, field: str, kind: type[Kind]) -> Kind:
        value = self._values.pop(field)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # a whole number of seconds or watts is a float too
        if not isinstance(value, kind):
            raise TypeError(f"setting {field}: a {type(value).__name__}, where a {kind.__name__} belongs")
        return value

    def optional(self, field: str, kind: type[Kind]) -> Kind | None:
        if self._values[field] is None:
            del self._values[field]
            return None
        return self.take(field, kind)

    def tuple_of(self, field: str, kind: type[Kind]) -> tuple[Kind, ...]:
        items = self.take(field, tuple)
        wrong = [type(item).__name__ for item in items if not isinstance(item, kind)]
        if wrong:
            raise TypeError(f"setting {field}: holds a {wrong[0]}, where only {kind.__name__} belongs")
        return items

    def pair_of_ints(self, field: str) -> tuple[int, int] | None:
        if self._values[field] is None:
            del self._values[field]
            return None
        first, second = self.tuple_of(field, int)
        return first, second

    def all_taken(self) -> None:
        """A setting of the table that no dataclass takes is a mistake in this module, not the user's."""
        if self._values:
            raise TypeError(f"settings parsed but not used: {', '.join(sorted(self._values))}")


def _secret_from_file(values: dict[str, Any], field: str, env: str) -> None:
    """``<field>_file`` (e.g. a Docker secret) fills ``<field>``; setting both is an error."""
    path: Path | None = values.pop(f"{field}_file")
    if path is None:
        return
    if values[field] is not None:
        raise ConfigError(f"{env}_FILE: set either {env} or {env}_FILE, not both")
    try:
        with path.open("rb") as file:
            content = file.read(SECRET_FILE_LIMIT + 1)
        if len(content) > SECRET_FILE_LIMIT:
            raise ValueError(f"longer than {SECRET_FILE_LIMIT // 1024} KiB, so not a secret")
        values[field] = _secret(content.decode())  # UnicodeDecodeError is a ValueError
    except (OSError, ValueError) as error:
        # The error's text never quotes the content: UnicodeDecodeError's own message would show bytes of it.
        reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else str(error)
        raise ConfigError(f"{env}_FILE: cannot read {path}: {reason}") from None


_INFLUX_TEXTS = ("bucket", "org", "database", "retention_policy", "username")
_INFLUX_SECRETS = ("token", "password")
_INFLUX_FIELDS = ("bucket", "org", "token", "database", "retention_policy", "username", "password")


def _influx(parsed: Parsed) -> InfluxSettings | None:
    url = parsed.optional("influx_url", str)
    texts = {name: parsed.optional(f"influx_{name}", str) for name in _INFLUX_TEXTS}
    secrets = {name: parsed.optional(f"influx_{name}", Secret) for name in _INFLUX_SECRETS}
    given: dict[str, object] = {**texts, **secrets}
    queue_dir = parsed.optional("influx_queue_dir", Path) or default_queue_dir()
    queue_max_bytes = parsed.take("influx_queue_max_bytes", int)
    if url is None:
        stray = [f"ENPHASE_INFLUX_{name.upper()}" for name in _INFLUX_FIELDS if given[name] is not None]
        if stray:
            raise ConfigError(f"ENPHASE_INFLUX_URL: {stray[0]} is set but no InfluxDB URL to write to")
        return None
    v2 = [name for name in ("bucket", "org", "token") if given[name] is not None]
    v1_names = ("database", "retention_policy", "username", "password")
    v1 = [name for name in v1_names if given[name] is not None]
    if v2 and v1:
        raise ConfigError(
            f"ENPHASE_INFLUX_{v1[0].upper()}: InfluxDB 1.x settings mixed with 2.x settings "
            f"(ENPHASE_INFLUX_{v2[0].upper()}); choose a bucket (2.x) or a database (1.x)"
        )
    if v2 and (given["bucket"] is None or given["org"] is None):
        missing = "BUCKET" if given["bucket"] is None else "ORG"
        raise ConfigError(f"ENPHASE_INFLUX_{missing}: InfluxDB 2.x/3.x needs a bucket and an organisation")
    if not v2 and given["database"] is None:
        raise ConfigError(
            "ENPHASE_INFLUX_URL: set ENPHASE_INFLUX_BUCKET and ENPHASE_INFLUX_ORG (InfluxDB 2.x/3.x) or "
            "ENPHASE_INFLUX_DATABASE (InfluxDB 1.x)"
        )
    if (given["username"] is None) != (given["password"] is None):
        raise ConfigError("ENPHASE_INFLUX_USERNAME/ENPHASE_INFLUX_PASSWORD: set both or neither")
    return InfluxSettings(
        url=url,
        bucket=texts["bucket"],
        org=texts["org"],
        token=secrets["token"],
        database=texts["database"],
        retention_policy=texts["retention_policy"],
        username=texts["username"],
        password=secrets["password"],
        queue_dir=queue_dir,
        queue_max_bytes=queue_max_bytes,
    )


def _gateway(parsed: Parsed) -> GatewaySettings | None:
    url = parsed.optional("gateway_url", str)
    token = parsed.optional("gateway_token", Secret)
    cert_sha256 = parsed.optional("gateway_cert_sha256", str)
    insecure_skip_verify = parsed.take("gateway_insecure_skip_verify", bool)
    site_id = parsed.optional("gateway_site_id", str)
    ev_status_interval = parsed.take("gateway_ev_status_interval", int)
    discovery_interval = parsed.take("gateway_discovery_interval", int)
    if url is None:
        named = (("token", token), ("cert_sha256", cert_sha256), ("site_id", site_id))
        stray = [name for name, value in named if value is not None]
        if stray or insecure_skip_verify:
            name = stray[0].upper() if stray else "INSECURE_SKIP_VERIFY"
            raise ConfigError(f"ENPHASE_GATEWAY_URL: ENPHASE_GATEWAY_{name} is set but no gateway URL")
        return None
    if token is None:
        raise ConfigError("ENPHASE_GATEWAY_TOKEN: the gateway needs a token (or ENPHASE_GATEWAY_TOKEN_FILE)")
    if (cert_sha256 is None) == (not insecure_skip_verify):
        raise ConfigError(
            "ENPHASE_GATEWAY_CERT_SHA256: the gateway's certificate is self-signed; pin it by its SHA-256 "
            "fingerprint, or set ENPHASE_GATEWAY_INSECURE_SKIP_VERIFY=1 to accept any (not both)"
        )
    return GatewaySettings(
        url=url,
        token=token,
        cert_sha256=cert_sha256,
        insecure_skip_verify=insecure_skip_verify,
        site_id=site_id,
        ev_status_interval=ev_status_interval,
        discovery_interval=discovery_interval,
    )


def markdown_table() -> str:
    """The README's configuration table, from the same rows the loader uses."""
    lines = ["| environment | flag | default | allowed | meaning |", "|---|---|---|---|---|"]
    for spec in SETTINGS:
        shown = "—" if spec.shown_default is None else f"`{spec.shown_default}`"
        flag = f"`{spec.flag}`" if spec.flag else "— (environment only)"
        allowed = spec.range or "—"
        lines.append(f"| `{spec.env}` | {flag} | {shown} | {allowed} | {spec.help} |")
    return "\n".join(lines)


def sources_markdown_table() -> str:
    """The README's table of sources, from the registry the exporter runs on."""
    lines = [
        "| source | reads | every (default) | at least | requests an hour | on by default |",
        "|---|---|---|---|---|---|",
    ]
    for source in REGISTRY:
        if source.follows is not None:
            every = minimum = f"after each `{source.follows}`"
            cost = "0"
        else:
            every, minimum = f"{source.default_interval} s", f"{source.minimum_interval} s"
            cost = f"{source.hourly_requests(source.default_interval):g}"
            cost += " per charger" if source.per_charger else ""
        needs = f"; needs {source.needs}" if source.needs else ""
        default = "yes" if source.enabled_by_default else "no"
        lines.append(
            f"| `{source.name}` | {source.reads}{needs} | {every} | {minimum} | {cost} | {default} |"
        )
    return "\n".join(lines)
