"""The web config file (``--web.config.file``) in the Prometheus exporter-toolkit format: TLS, basic auth.

The same file works for node_exporter and for this exporter::

    tls_server_config:
      cert_file: exporter.crt            # relative paths are relative to this file's directory
      key_file: exporter.key
      client_auth_type: RequireAndVerifyClientCert    # optional: only clients with a certificate ...
      client_ca_file: clients-ca.crt                  # ... signed by this CA
      min_version: TLS12
    http_server_config:
      headers: {X-Content-Type-Options: nosniff}
    basic_auth_users:
      prometheus: $2y$10$…               # a bcrypt hash: htpasswd -nBC 10 "" | tr -d ':\\n'
    rate_limit: {interval: 1s, burst: 20}

Where this differs from the Go toolkit, and why:

- ``client_auth_type`` ``RequestClientCert`` and ``RequireAnyClientCert`` (ask for a certificate and accept it
  unverified) are refused: Python's ``ssl`` only asks for certificates it verifies, and an unverified
  certificate proves nothing anyway.
- ``curve_preferences`` is checked but not applied (Python's ``ssl`` cannot set a list of curves; OpenSSL's
  defaults are used), and ``http2`` is accepted while HTTP/1.1 is spoken; Prometheus scrapes either.

Anything wrong in the file (an unknown key, an unreadable certificate, a password that is not a bcrypt hash)
is a ``ConfigError`` naming the file and the key. ``WebConfigFile`` re-reads the file, and the files it
names, when one of them changes, so renewed certificates and new users apply without a restart.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from exporter import strict_yaml
from exporter.config import ConfigError
from exporter.web_auth import BasicAuth, RateLimit, is_bcrypt_hash

log = logging.getLogger(__name__)

_TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
_TLS_KEYS = (
    "cert_file", "key_file", "cert", "key", "client_ca_file", "client_ca", "client_auth_type",
    "client_allowed_sans", "min_version", "max_version", "cipher_suites", "prefer_server_cipher_suites",
    "curve_preferences",
)  # fmt: skip
_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
# Go's names (the IANA names) of the TLS 1.2 suites Go offers -> OpenSSL's names for the same suites.
_CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
}
# TLS 1.3 suites are not configurable, in Go as in OpenSSL's cipher list: accepted and left to the defaults.
_TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
_CURVES = ("CurveP256", "CurveP384", "CurveP521", "X25519")
# header -> accepted values (lower case), or None for any value
_HEADERS: Mapping[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


@dataclass(frozen=True, slots=True)
class TlsServer:
    context: ssl.SSLContext
    allowed_sans: frozenset[str]  # empty: any verified client certificate (or none) will do


@dataclass(frozen=True, slots=True)
class WebConfig:
    tls: TlsServer | None
    auth: BasicAuth | None
    headers: Mapping[str, str]
    rate_limit: RateLimit | None
    files: tuple[Path, ...]  # the certificate and key files it read, watched for changes like the file itself

    def describe(self) -> str:
        tls = "TLS on" if self.tls else "TLS off"
        users = f"basic auth for {self.auth.user_count} user(s)" if self.auth else "no basic auth"
        return f"{tls}, {users}"


class _Problem(Exception):
    """One thing wrong in the file, with where it is; ``load`` adds the file name."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}" if where else what)


def load(path: Path) -> WebConfig:
    """The checked web config, or ``ConfigError("web config file <path>: <key>: <problem>")``."""
    try:
        return _load(path)
    except _Problem as problem:
        raise ConfigError(f"web config file {path}: {problem}") from None


def _load(path: Path) -> WebConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _Problem("", f"cannot read it: {_reason(error)}") from None
    try:
        root = yaml.load(text, Loader=strict_yaml.StrictLoader) or {}  # a SafeLoader: no Python objects
    except yaml.YAMLError as error:
        raise _Problem("", f"not valid YAML: {strict_yaml.problem(error)}") from None
    except RecursionError:  # PyYAML composes recursively: "[" * 5000 exhausts the stack
        raise _Problem("", "not valid YAML: nested too deeply for a web config") from None
    root = _mapping(root, "", _TOP_KEYS)
    base = path.parent
    tls, files = _tls(root.get("tls_server_config"), base)
    auth = _users(root.get("basic_auth_users"))
    if auth is not None and tls is None:
        log.warning(
            "%s: basic_auth_users without tls_server_config: passwords cross the network in clear", path
        )
    return WebConfig(
        tls=tls,
        auth=auth,
        headers=_http_server(root.get("http_server_config")),
        rate_limit=_rate_limit(root.get("rate_limit")),
        files=files,
    )


# -- sections ---------------------------------------------------------------------------------------------


def _tls(raw: Any, base: Path) -> tuple[TlsServer | None, tuple[Path, ...]]:
    section = _mapping(raw, "tls_server_config", _TLS_KEYS)
    if not section:
        return None, ()
    where = "tls_server_config"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    low = _choice(section, "min_version", where, _VERSIONS, "TLS12")
    high = _choice(section, "max_version", where, _VERSIONS, "TLS13")
    if low > high:
        raise _Problem(where, "min_version is higher than max_version")
    context.minimum_version, context.maximum_version = low, high
    files = _certificate(context, section, base)
    files += _client_auth(context, section, base)
    sans = _strings(section.get("client_allowed_sans"), f"{where}.client_allowed_sans")
    if sans and context.verify_mode != ssl.CERT_REQUIRED:
        raise _Problem(f"{where}.client_allowed_sans", "needs client_auth_type: RequireAndVerifyClientCert")
    _ciphers(context, section)
    if _boolean(section, "prefer_server_cipher_suites", where, default=True):
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    curves = _strings(section.get("curve_preferences"), f"{where}.curve_preferences")
    unknown = [curve for curve in curves if curve not in _CURVES]
    if unknown:
        raise _Problem(
            f"{where}.curve_preferences", f"unknown curve {unknown[0]!r}; known: {', '.join(_CURVES)}"
        )
    if curves:
        log.warning("%s.curve_preferences is not applied here: OpenSSL's default curves are used", where)
    return TlsServer(context, frozenset(sans)), files


def _certificate(context: ssl.SSLContext, section: Mapping[str, Any], base: Path) -> tuple[Path, ...]:
    where = "tls_server_config"
    for inline, file in (("cert", "cert_file"), ("key", "key_file")):
        if section.get(inline) is not None and section.get(file) is not None:
            raise _Problem(where, f"set {inline} or {file}, not both")
        if section.get(inline) is None and section.get(file) is None:
            raise _Problem(where, f"{file} (or {inline}) is missing: TLS needs a certificate and its key")
    files: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="enphase-web-config-") as scratch:  # mode 0700
        paths = []
        for inline, file in (("cert", "cert_file"), ("key", "key_file")):
            if section.get(file) is not None:
                path = _file(section, file, base)
                files.append(path)
            else:  # inline PEM: OpenSSL loads certificates and keys from files only
                path = Path(scratch) / file
                path.write_text(_text(section[inline], f"{where}.{inline}"))
            paths.append(path)
        try:
            context.load_cert_chain(paths[0], paths[1], password=_refuse_encrypted_key)
        except _EncryptedKey:
            raise _Problem(
                where, "the private key is encrypted; give an unencrypted key (mode 0600)"
            ) from None
        except (ssl.SSLError, OSError) as error:
            raise _Problem(
                where,
                f"the certificate and key cannot be used together ({_reason(error)}): both PEM, same pair?",
            ) from None
    return tuple(files)


def _client_auth(context: ssl.SSLContext, section: Mapping[str, Any], base: Path) -> tuple[Path, ...]:
    where = "tls_server_config"
    kind = _text(section.get("client_auth_type") or "NoClientCert", f"{where}.client_auth_type")
    if kind in _UNVERIFIED_CLIENT_AUTH:
        raise _Problem(
            f"{where}.client_auth_type",
            f"{kind} (an unverified client certificate) is not supported; use RequireAndVerifyClientCert",
        )
    if kind not in _CLIENT_AUTH:
        raise _Problem(
            f"{where}.client_auth_type", f"unknown value {kind!r}; known: {', '.join(_CLIENT_AUTH)}"
        )
    if section.get("client_ca") is not None and section.get("client_ca_file") is not None:
        raise _Problem(where, "set client_ca or client_ca_file, not both")
    has_ca = section.get("client_ca") is not None or section.get("client_ca_file") is not None
    if has_ca and kind == "NoClientCert":
        raise _Problem(
            where, "client_ca_file is set but client_auth_type is NoClientCert: no client is checked"
        )
    if not has_ca and kind != "NoClientCert":
        raise _Problem(where, f"client_auth_type {kind} needs client_ca_file to verify client certificates")
    context.verify_mode = _CLIENT_AUTH[kind]
    if not has_ca:
        return ()
    try:
        if section.get("client_ca_file") is not None:
            path = _file(section, "client_ca_file", base)
            context.load_verify_locations(cafile=path)
            return (path,)
        context.load_verify_locations(cadata=_text(section["client_ca"], f"{where}.client_ca"))
    except ssl.SSLError as error:
        raise _Problem(where, f"the client CA cannot be used ({_reason(error)})") from None
    return ()


def _ciphers(context: ssl.SSLContext, section: Mapping[str, Any]) -> None:
    where = "tls_server_config.cipher_suites"
    names = _strings(section.get("cipher_suites"), where)
    unknown = [name for name in names if name not in _CIPHER_SUITES and name not in _TLS13_SUITES]
    if unknown:
        raise _Problem(
            where, f"unknown cipher suite {unknown[0]!r} (Go's names, such as {next(iter(_CIPHER_SUITES))})"
        )
    chosen = [_CIPHER_SUITES[name] for name in names if name in _CIPHER_SUITES]
    if chosen:
        try:
            context.set_ciphers(":".join(dict.fromkeys(chosen)))
        except ssl.SSLError:
            raise _Problem(where, "none of these cipher suites is available in this OpenSSL") from None


def _users(raw: Any) -> BasicAuth | None:
    where = "basic_auth_users"
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _Problem(where, f"expected user: bcrypt-hash pairs, got {_kind(raw)}")
    users = {}
    for name, hashed in raw.items():
        if not isinstance(name, str | int) or isinstance(name, bool) or str(name) == "":
            raise _Problem(where, f"user names are strings, got {_kind(name)}")
        # Never echo the value: whoever put a plain password here must not find it in a log.
        if not isinstance(hashed, str) or not is_bcrypt_hash(hashed):
            raise _Problem(
                f"{where}.{name}",
                "is not a bcrypt hash ($2y$10$ followed by 53 characters); make one with "
                "htpasswd -nBC 10 \"\" | tr -d ':\\n'",
            )
        users[str(name)] = hashed.encode()
    return BasicAuth(users) if users else None  # no users: no authentication, as in the toolkit


def _http_server(raw: Any) -> Mapping[str, str]:
    section = _mapping(raw, "http_server_config", ("http2", "headers"))
    _boolean(section, "http2", "http_server_config", default=True)  # checked; HTTP/1.1 is spoken either way
    headers = _mapping(section.get("headers"), "http_server_config.headers", tuple(_HEADERS))
    chosen = {}
    for name, value in headers.items():
        text = _text(value, f"http_server_config.headers.{name}") if value is not None else ""
        allowed = _HEADERS[name]
        if "\r" in text or "\n" in text:
            raise _Problem(f"http_server_config.headers.{name}", "a header value is one line")
        if text and allowed is not None and text.lower() not in allowed:
            raise _Problem(f"http_server_config.headers.{name}", f"expected one of {', '.join(allowed)}")
        if text:
            chosen[name] = text
    return chosen


def _rate_limit(raw: Any) -> RateLimit | None:
    where = "rate_limit"
    section = _mapping(raw, where, ("interval", "burst"))
    if not section:
        return None
    interval = _duration(section.get("interval", 0), f"{where}.interval")
    burst = section.get("burst", 0)
    if not isinstance(burst, int) or isinstance(burst, bool) or burst < 0:
        raise _Problem(f"{where}.burst", f"expected a whole number, got {_kind(burst)}")
    if interval == 0:
        return None  # the toolkit's way of switching the limiter off
    if burst == 0:
        raise _Problem(f"{where}.burst", "0 would refuse every request; allow a burst of at least 1")
    return RateLimit(interval, burst)


# -- small readers ----------------------------------------------------------------------------------------


def _mapping(raw: Any, where: str, known: tuple[str, ...]) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _Problem(where, f"expected a mapping, got {_kind(raw)}")
    for key in raw:
        if key not in known:
            inside = f"{where}." if where else ""
            raise _Problem(f"{inside}{key}", f"unknown key; known here: {', '.join(known)}")
    return raw


def _text(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _Problem(where, f"expected a non-empty string, got {_kind(raw)}")
    return raw


def _strings(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _Problem(where, f"expected a list of strings, got {_kind(raw)}")
    return [_text(item, where) for item in raw]


def _boolean(section: Mapping[str, Any], key: str, where: str, *, default: bool) -> bool:
    raw = section.get(key, default)
    if not isinstance(raw, bool):
        raise _Problem(f"{where}.{key}", f"expected true or false, got {_kind(raw)}")
    return raw


def _choice(
    section: Mapping[str, Any], key: str, where: str, choices: Mapping[str, Any], default: str
) -> Any:
    raw = section.get(key) or default
    if not isinstance(raw, str) or raw not in choices:
        raise _Problem(f"{where}.{key}", f"expected one of {', '.join(choices)}, got {_kind(raw)}")
    return choices[raw]


def _file(section: Mapping[str, Any], key: str, base: Path) -> Path:
    """A readable file; relative to the web config file's directory, as in the toolkit."""
    path = base / _text(section[key], f"tls_server_config.{key}")
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise _Problem(f"tls_server_config.{key}", f"cannot read {path}: {_reason(error)}") from None
    return path


def _duration(raw: Any, where: str) -> float:
    """Seconds from a Prometheus duration such as ``1s``, ``500ms`` or ``1m30s``; ``0`` is zero."""
    text = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else None
    if text == "0":
        return 0.0
    if not text or _DURATION.sub("", text) != "":
        raise _Problem(where, f"expected a duration such as 1s or 500ms, got {_kind(raw)}")
    return sum(int(amount) * _DURATION_SECONDS[unit] for amount, unit in _DURATION.findall(text))


class _EncryptedKey(Exception):
    pass


def _refuse_encrypted_key() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal, and a service would hang at start-up.
    raise _EncryptedKey


def _kind(raw: Any) -> str:
    """What a value is, for messages: strings are quoted when short, other values named by type."""
    if isinstance(raw, str):
        return repr(raw) if len(raw) <= 40 else "a long string"
    if raw is None:
        return "nothing"
    return type(raw).__name__


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return getattr(error, "reason", None) or type(error).__name__


# -- the file, re-read when it or a file it names changes --------------------------------------------------

Stamp = tuple[tuple[int, int, int] | None, ...]


class WebConfigFile:
    """The current ``WebConfig`` of a file; the file is loaded (and checked) in the constructor.

    A change that breaks the file, that would switch TLS on or off, or that would switch basic auth off, is
    logged and ignored: the server keeps the last good configuration rather than falling open. Switching TLS
    needs a restart, as in the toolkit; so does removing the last user, on purpose: an editor's half-saved
    file or an emptied secret mount must not open /metrics to everyone.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._files: tuple[Path, ...] = ()
        self._config, self._stamp = self._load()

    def current(self) -> WebConfig:
        stamp = _stamp((self.path, *self._files))
        if stamp == self._stamp:
            return self._config
        with self._lock:
            if _stamp((self.path, *self._files)) != self._stamp:
                self._reload()
            return self._config

    def _reload(self) -> None:
        try:
            config, stamp = self._load()
        except ConfigError as error:
            log.error("%s; keeping the previous web configuration", error)
            self._stamp = _stamp((self.path, *self._files))  # say it once, not on every request
            return
        except Exception:  # whatever else a file can provoke, every request must not pay for it
            log.exception("web config file %s: cannot be loaded; keeping the previous one", self.path)
            self._stamp = _stamp((self.path, *self._files))
            return
        refusal = None
        if (config.tls is None) != (self._config.tls is None):
            refusal = "switching TLS on or off needs a restart"
        elif self._config.auth is not None and config.auth is None:
            refusal = "switching basic auth off needs a restart"
        if refusal is not None:
            log.error("web config file %s: %s; keeping the previous web configuration", self.path, refusal)
            self._stamp = stamp
            return
        self._config, self._stamp = config, stamp
        log.info("Reloaded the web config file %s: %s", self.path, config.describe())

    def _load(self) -> tuple[WebConfig, Stamp]:
        """The config, and the stamp of its files taken *before* reading them, so a later change is seen.

        Files the config names for the first time can only be stamped after it is read, a moment later.
        """
        stamp = _stamp((self.path, *self._files))
        config = load(self.path)
        if config.files != self._files:
            self._files = config.files
            stamp = _stamp((self.path, *self._files))
        return config, stamp


def _stamp(paths: tuple[Path, ...]) -> Stamp:
    stamps: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            stamps.append(None)
        else:
            stamps.append((info.st_mtime_ns, info.st_size, info.st_ino))
    return tuple(stamps)
