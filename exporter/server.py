"""The HTTP endpoints: ``/metrics`` (the latest snapshot, rendered), ``/`` (a status page), ``/healthz``.

Nothing here talks to the cloud, so a scrape is fast even while the cloud is slow or down.
"""

from __future__ import annotations

import gzip
import html
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from exporter import __version__
from exporter.snapshot import Snapshot

log = logging.getLogger(__name__)


class MetricsServer:
    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        snapshot: Callable[[], Snapshot],
        clock: Callable[[], float] = time.time,
    ) -> None:
        handler = type(
            "Handler",
            (_Handler,),
            {"registry": registry, "snapshot": staticmethod(snapshot), "clock": staticmethod(clock)},
        )
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    snapshot: Callable[[], Snapshot]
    clock: Callable[[], float]
    server_version = f"enphase-exporter/{__version__}"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._reply(200, content_type, encoder(self.registry))
        elif path == "/healthz":
            self._reply(200, "text/plain; charset=utf-8", b"ok\n")
        elif path == "/":
            self._reply(200, "text/html; charset=utf-8", self._status_page().encode())
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "") and len(body) > 1024
        if gzipped:
            body = gzip.compress(body, compresslevel=5)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
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
