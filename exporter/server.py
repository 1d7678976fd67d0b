"""The HTTP endpoints: ``/metrics`` (the latest snapshot, rendered), ``/`` (a status page), ``/healthz``.

Nothing here talks to the cloud, so a scrape is fast even while the cloud is slow or down.

With a web config file (``exporter.web_config``) the server speaks HTTPS only and asks for basic auth on
``/`` and ``/metrics``. ``/healthz`` stays open (still over HTTPS): container health checks should not need
the scrape password, and its answer, ``ok``, says nothing a port scan would not.
"""

from __future__ import annotations

import contextlib
import gzip
import html
import logging
import math
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from exporter import __version__, exposition
from exporter.config import ConfigError
from exporter.snapshot import Snapshot
from exporter.web_auth import FailureThrottle
from exporter.web_config import WebConfig, WebConfigFile

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz"})
CONNECTION_TIMEOUT = 30.0  # a client that stalls mid-handshake or mid-request frees its thread after this
_TLS_HANDSHAKE = 0x16  # first byte of every TLS connection (a handshake record)
_HTTPS_ONLY = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"This exporter speaks HTTPS only: scrape it with https:// (scheme: https in Prometheus).\n"
)


class MetricsServer:
    """``web_config_file`` is checked here, before the port is bound: a bad file raises ``ConfigError``."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        snapshot: Callable[[], Snapshot],
        clock: Callable[[], float] = time.time,
        web_config_file: Path | None = None,
    ) -> None:
        self._web_config = WebConfigFile(web_config_file) if web_config_file is not None else None
        if self._web_config is not None:
            log.info("Web config file %s: %s", web_config_file, self._web_config.current().describe())
        handler = type(
            "Handler",
            (_Handler,),
            {"registry": registry, "snapshot": staticmethod(snapshot), "clock": staticmethod(clock)},
        )
        try:
            self._server = _Server((host, port), handler, self._web_config)
        except OSError as error:  # in use, not an address of this machine, a name that does not resolve
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            reason = error.strerror or str(error)
            raise ConfigError(f"--listen (ENPHASE_LISTEN): cannot listen on {shown}: {reason}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def scheme(self) -> str:
        return "https" if self._web_config is not None and self._web_config.current().tls else "http"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[_Handler], web_config: WebConfigFile | None
    ) -> None:
        self.web_config = web_config
        # Kept across web config reloads: re-saving the file must not forgive a guesser.
        self.auth_throttle = FailureThrottle()
        if ":" in address[0]:  # [::1]:PORT; an empty host keeps IPv4's all interfaces, as before
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS is set up here, in the connection's own thread: a slow client delays no one else."""
        tls = self.web_config.current().tls if self.web_config is not None else None
        if tls is None:
            return super().finish_request(request, client_address)
        request.settimeout(CONNECTION_TIMEOUT)
        first = request.recv(1, socket.MSG_PEEK)
        if not first:
            return None
        if first[0] != _TLS_HANDSHAKE:
            request.recv(65536)  # read the request first, so that closing does not reset the answer away
            request.sendall(_HTTPS_ONLY)
            return None
        secure = tls.context.wrap_socket(request, server_side=True)
        try:
            if tls.allowed_sans and not _san_allowed(secure.getpeercert(), tls.allowed_sans):
                log.debug("Refused a client certificate from %s: no allowed SAN", client_address[0])
                return None
            super().finish_request(secure, client_address)
        finally:
            with contextlib.suppress(OSError):  # the client may be gone already
                secure.shutdown(socket.SHUT_WR)
            secure.close()
        return None

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed handshakes and vanished clients are the client's business: one debug line, no traceback.
        error = sys.exc_info()[1]
        if isinstance(error, ssl.SSLError | ConnectionError | TimeoutError):
            log.debug("Connection from %s failed: %s", client_address[0], error)
        else:
            log.error("Request from %s failed", client_address[0], exc_info=True)


def _san_allowed(certificate: Any, allowed: frozenset[str]) -> bool:
    names = {value for _, value in (certificate or {}).get("subjectAltName", ())}
    return bool(names & allowed)


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    snapshot: Callable[[], Snapshot]
    clock: Callable[[], float]
    server: _Server
    server_version = f"enphase-exporter/{__version__}"
    timeout = CONNECTION_TIMEOUT
    _config: WebConfig | None = None  # of the request being answered

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self._config = self.server.web_config.current() if self.server.web_config is not None else None
        if self._config is not None and path not in OPEN_PATHS and not self._admitted(self._config):
            return
        if path == "/metrics":
            body, content_type = exposition.render(self.registry, self.headers.get("Accept", ""))
            self._reply(200, content_type, body)
        elif path == "/healthz":
            self._reply(200, "text/plain; charset=utf-8", b"ok\n")
        elif path == "/":
            self._reply(200, "text/html; charset=utf-8", self._status_page().encode(errors="replace"))
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")

    def _admitted(self, config: WebConfig) -> bool:
        """Rate limit first: a flood of guesses is turned away before it costs a bcrypt check."""
        if config.rate_limit is not None and not config.rate_limit.take():
            self._reply(429, "text/plain; charset=utf-8", b"too many requests\n")
            return False
        if config.auth is None:
            return True
        address = self.client_address[0]
        verdict = config.auth.check(self.headers.get("Authorization"), address, self.server.auth_throttle)
        if verdict == "throttled":
            log.debug("Refused %s from %s: too many failed logins", self.path, address)
            wait = {"Retry-After": str(math.ceil(self.server.auth_throttle.retry_after(address)) or 1)}
            self._reply(429, "text/plain; charset=utf-8", b"too many failed logins; try again later\n", wait)
            return False
        if verdict == "refused":
            log.debug("Refused %s from %s: no valid credentials", self.path, address)
            challenge = {"WWW-Authenticate": 'Basic realm="enphase-exporter", charset="UTF-8"'}
            self._reply(401, "text/plain; charset=utf-8", b"unauthorized\n", challenge)
            return False
        return True

    def _reply(
        self, status: int, content_type: str, body: bytes, extra_headers: dict[str, str] | None = None
    ) -> None:
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "") and len(body) > 1024
        if gzipped:
            body = gzip.compress(body, compresslevel=5)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        configured = self._config.headers if self._config is not None else {}
        for name, value in {**configured, **(extra_headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _status_page(self) -> str:
        now = self.clock()
        rows = []
        for site in self.snapshot().sites.values():
            for source in site.sources:
                health = site.health.get(source)
                state = "waiting" if health is None else ("up" if health.up else "down")
                last = _ago(now, health.last_success_timestamp) if health else "never"
                error = health.error or "" if health else ""
                rows.append(
                    f"<tr class={state}><td>{html.escape(site.site_id)}</td><td>{source}</td>"
                    f"<td>{state}</td><td>{last}</td><td>{html.escape(error)}</td></tr>"
                )
        table = (
            "".join(rows)
            or "<tr><td colspan=5>No site yet: discovery is running or failed (see the log).</td></tr>"
        )
        return (
            "<!doctype html><html><head><meta charset=utf-8><title>Enphase exporter</title><style>"
            "body{font-family:sans-serif;margin:2em}td,th{padding:.3em .8em;text-align:left}"
            ".up td:nth-child(3){color:#080}.down td:nth-child(3){color:#b00}</style></head><body>"
            f"<h1>Enphase exporter {html.escape(__version__)}</h1>"
            "<p><a href=/metrics>/metrics</a> · <a href=/healthz>/healthz</a></p>"
            "<table><tr><th>site</th><th>source</th><th>state</th><th>last success</th>"
            "<th>last error</th></tr>"
            f"{table}</table></body></html>"
        )

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _ago(now: float, timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    moment = datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%S UTC")
    return f"{moment} ({now - timestamp:.0f} s ago)"
