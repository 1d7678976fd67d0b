"""The HTTP endpoints: ``/metrics`` (the latest snapshot, rendered), ``/`` (a status page), ``/healthz``.

Nothing here talks to the cloud, so a scrape is fast even while the cloud is slow or down.

With a web config file (``exporter.web_config``) the server speaks HTTPS only and asks for basic auth on
``/`` and ``/metrics``. ``/healthz`` stays open (still over HTTPS): container health checks should not need
the scrape password, and its answer, ``ok``, says nothing a port scan would not.

How connections are served, and why. ``http.server`` gave every connection a thread of its own with a listen
backlog of 5 and only a per-read timeout: 200 concurrent scrapes waited seconds in the backlog, a client
sending one header byte every 20 s held a thread for good, and at the file-descriptor limit the accept loop
spun. Here one thread (``_ConnectionLoop``) accepts (backlog 512), does the TLS handshake and reads each
request head without blocking, for every connection at once; only a complete request goes to a bounded
pool of worker threads, which answer it. A connection has one deadline for all of it, handshake to last
byte written; the number of open connections is capped (below the descriptor limit), and accepting pauses
while the cap or the descriptor limit is reached instead of spinning. Scrapes that arrive while /metrics is
being rendered in their format share that render. The request handling itself (parsing, basic auth, the
answers) is still ``http.server``'s, which is why this is not a server library: waitress speaks no TLS, and
cheroot and the others would each need the HTTPS-only answer, the SAN check and the web config reloaded per
connection rebuilt around their own TLS layers, for no more than what this loop does.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import logging
import math
import resource
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from exporter import __version__, exposition, status_page
from exporter.config import ConfigError
from exporter.snapshot import Snapshot
from exporter.status_page import StatusSources
from exporter.web_auth import FailureThrottle
from exporter.web_config import WebConfig, WebConfigFile

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz"})
BACKLOG = 512  # the kernel caps it at net.core.somaxconn (4096 on current kernels)
WORKERS = 4  # answering takes milliseconds; reading slow clients is done by the loop, not by workers
MAX_CONNECTIONS = 512  # open at once, in every stage; lowered to half the descriptor limit if that is less
REQUEST_DEADLINE = 15.0  # seconds from accept to the answer's last byte, whatever the client does
MAX_HEAD = 64 * 1024  # a request line and headers beyond this are refused (431)
ACCEPT_PAUSE = 0.5  # seconds without accepting after the descriptor limit was hit
_TLS_HANDSHAKE = 0x16  # first byte of every TLS connection (a handshake record)
_HTTPS_ONLY = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"This exporter speaks HTTPS only: scrape it with https:// (scheme: https in Prometheus).\n"
)
_TOO_LARGE = (
    b"HTTP/1.0 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nrequest head too large\n"
)
_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class MetricsServer:
    """``web_config_file`` is checked here, before the port is bound: a bad file raises ``ConfigError``.

    A port that cannot be bound (in use, an address not on this machine) raises ``ConfigError`` too."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        snapshot: Callable[[], Snapshot],
        clock: Callable[[], float] = time.time,
        web_config_file: Path | None = None,
        status: StatusSources | None = None,
    ) -> None:
        self._web_config = WebConfigFile(web_config_file) if web_config_file is not None else None
        if self._web_config is not None:
            log.info("Web config file %s: %s", web_config_file, self._web_config.current().describe())
        self._site = _Site(
            registry,
            snapshot,
            clock,
            self._web_config,
            FailureThrottle(),
            _SharedRenders(registry),
            status or StatusSources(),
        )
        listener = _listen(host, port)
        self._workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="http-worker")
        self._loop = _ConnectionLoop(listener, self._site, self._workers, _connection_cap())
        self._thread = threading.Thread(target=self._loop.run, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._loop.listener.getsockname()[1])

    @property
    def scheme(self) -> str:
        return "https" if self._web_config is not None and self._web_config.current().tls else "http"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._loop.stop()
        if self._thread.is_alive():
            self._thread.join(5)
        self._workers.shutdown(wait=False, cancel_futures=True)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # [::1]:PORT; "" stays IPv4's every address
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(BACKLOG)
    except OSError as error:  # in use, not an address of this machine, a name that does not resolve
        listener.close()
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reason = error.strerror or str(error)
        raise ConfigError(f"--listen (ENPHASE_LISTEN): cannot listen on {shown}: {reason}") from None
    listener.setblocking(False)
    return listener


def _connection_cap() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft // 2))  # the other half: the cloud, InfluxDB, the queue, logs


@dataclass(frozen=True, slots=True)
class _Site:
    """What answering needs, shared by every request."""

    registry: CollectorRegistry
    snapshot: Callable[[], Snapshot]
    clock: Callable[[], float]
    web_config: WebConfigFile | None
    auth_throttle: FailureThrottle  # kept across web config reloads: re-saving the file forgives no one
    renders: _SharedRenders
    status: StatusSources


@dataclass(slots=True, eq=False)
class _Connection:
    sock: socket.socket
    address: tuple[Any, ...]
    accepted: float  # time.monotonic()
    deadline: float
    stage: str  # "peek" (TLS port: HTTPS or not?), "handshake", "head"
    head: bytearray = field(default_factory=bytearray)


class _ConnectionLoop:
    """Accepts, shakes hands and reads request heads for every connection, without blocking on any."""

    def __init__(self, listener: socket.socket, site: _Site, workers: ThreadPoolExecutor, cap: int) -> None:
        self.listener = listener
        self._site = site
        self._workers = workers
        self._cap = cap
        self._selector = selectors.DefaultSelector()
        self._waiting: set[_Connection] = set()
        self._open = 0  # every connection not yet closed, in the loop or with a worker
        self._lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, "wake")
        self._accepting = False
        self._paused_until = 0.0
        self._next_expiry_check = 0.0
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._accept_if_room()
                for key, _ in self._selector.select(timeout=0.25):
                    if key.data == "wake":
                        with contextlib.suppress(OSError):
                            self._wake_reader.recv(4096)
                    elif key.data == "listen":
                        self._accept()
                    else:
                        self._advance(key.data)
                self._expire()
        finally:
            for connection in list(self._waiting):
                self._close(connection)
            self._selector.close()
            self.listener.close()
            self._wake_reader.close()
            self._wake_writer.close()

    def stop(self) -> None:
        self._stopping.set()
        self._wake()

    def closed_by_worker(self) -> None:
        with self._lock:
            self._open -= 1
            full = self._open + 1 >= self._cap
        if full:
            self._wake()  # room again: the loop may accept once more (otherwise it already does)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    # -- accepting ------------------------------------------------------------------------------------

    def _accept_if_room(self) -> None:
        with self._lock:
            room = self._open < self._cap
        want = room and time.monotonic() >= self._paused_until
        if want and not self._accepting:
            self._selector.register(self.listener, selectors.EVENT_READ, "listen")
        elif not want and self._accepting:
            self._selector.unregister(self.listener)  # new clients wait in the backlog meanwhile
        self._accepting = want

    def _accept(self) -> None:
        while True:
            with self._lock:
                if self._open >= self._cap:
                    return
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in _OUT_OF_DESCRIPTORS:  # retrying at once would only spin
                    log.warning("Cannot accept connections (%s); pausing for %.1f s", error, ACCEPT_PAUSE)
                    self._paused_until = time.monotonic() + ACCEPT_PAUSE
                    self._accept_if_room()
                return
            sock.setblocking(False)
            config = self._site.web_config.current() if self._site.web_config is not None else None
            stage = "peek" if config is not None and config.tls is not None else "head"
            now = time.monotonic()
            connection = _Connection(sock, address, now, now + REQUEST_DEADLINE, stage)
            with self._lock:
                self._open += 1
            self._waiting.add(connection)
            self._selector.register(sock, selectors.EVENT_READ, connection)
            self._advance(connection)  # a scraper sends its request with the connection: often here already

    # -- reading ---------------------------------------------------------------------------------------

    def _advance(self, connection: _Connection) -> None:
        try:
            if connection.stage == "peek":
                self._peek(connection)
            if connection.stage == "handshake":
                self._handshake(connection)
            if connection.stage == "head":
                self._read_head(connection)
        except (ssl.SSLError, OSError) as error:  # a failed handshake, a vanished client: theirs to fix
            log.debug("Connection from %s failed: %s", connection.address[0], error)
            self._close(connection)

    def _peek(self, connection: _Connection) -> None:
        try:
            first = connection.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return
        if not first:
            self._close(connection)
        elif first[0] != _TLS_HANDSHAKE:
            self._hand_over(connection, self._https_only)
        else:
            tls = self._tls()
            if tls is None:  # cannot happen: switching TLS off needs a restart
                self._close(connection)
                return
            self._selector.unregister(connection.sock)
            connection.sock = tls.context.wrap_socket(
                connection.sock, server_side=True, do_handshake_on_connect=False
            )
            self._selector.register(connection.sock, selectors.EVENT_READ, connection)
            connection.stage = "handshake"

    def _handshake(self, connection: _Connection) -> None:
        sock = connection.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._selector.modify(sock, selectors.EVENT_READ, connection)
            return
        except ssl.SSLWantWriteError:
            self._selector.modify(sock, selectors.EVENT_WRITE, connection)
            return
        self._selector.modify(sock, selectors.EVENT_READ, connection)
        tls = self._tls()
        if tls is not None and tls.allowed_sans and not _san_allowed(sock.getpeercert(), tls.allowed_sans):
            log.debug("Refused a client certificate from %s: no allowed SAN", connection.address[0])
            self._close(connection)
            return
        connection.stage = "head"

    def _read_head(self, connection: _Connection) -> None:
        while b"\r\n\r\n" not in connection.head:
            if len(connection.head) > MAX_HEAD:
                self._hand_over(connection, _refuse_large_head)
                return
            try:
                chunk = connection.sock.recv(16384)
            except (BlockingIOError, ssl.SSLWantReadError):
                return
            except ssl.SSLWantWriteError:
                self._selector.modify(connection.sock, selectors.EVENT_WRITE, connection)
                return
            if not chunk:
                self._close(connection)
                return
            connection.head += chunk
        self._hand_over(connection, self._answer)

    def _tls(self) -> Any:
        return self._site.web_config.current().tls if self._site.web_config is not None else None

    def _expire(self) -> None:
        now = time.monotonic()
        if now < self._next_expiry_check:  # a sweep of every waiting connection, a few times a second
            return
        self._next_expiry_check = now + 0.1
        for connection in [c for c in self._waiting if c.deadline <= now]:
            log.debug("Closed a connection from %s: no complete request in time", connection.address[0])
            self._close(connection)

    def _close(self, connection: _Connection) -> None:
        self._waiting.discard(connection)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection.sock)
        connection.sock.close()
        with self._lock:
            self._open -= 1

    # -- answering, in a worker ------------------------------------------------------------------------

    def _hand_over(self, connection: _Connection, job: Callable[[_Connection], None]) -> None:
        self._waiting.discard(connection)
        self._selector.unregister(connection.sock)
        try:
            self._workers.submit(self._in_worker, connection, job)
        except RuntimeError:  # shutting down
            connection.sock.close()
            with self._lock:
                self._open -= 1

    def _in_worker(self, connection: _Connection, job: Callable[[_Connection], None]) -> None:
        sock = connection.sock
        try:
            sock.setblocking(True)
            sock.settimeout(max(0.05, connection.deadline - time.monotonic()))  # sendall: a total, too
            job(connection)
        except (ssl.SSLError, ConnectionError, TimeoutError) as error:
            log.debug("Connection from %s failed: %s", connection.address[0], error)
        except Exception:
            log.error("Request from %s failed", connection.address[0], exc_info=True)
        finally:
            if isinstance(sock, ssl.SSLSocket):
                with contextlib.suppress(OSError, ValueError):  # the client may be gone already
                    sock.shutdown(socket.SHUT_WR)
            sock.close()
            self.closed_by_worker()

    def _answer(self, connection: _Connection) -> None:
        # http.server's handler, fed a connection whose head is read already (see _Handler.setup): it needs
        # only what setup() gives it, not a socket and a server.
        _Handler(connection, connection.address, self._site)  # type: ignore[arg-type]

    @staticmethod
    def _https_only(connection: _Connection) -> None:
        connection.sock.settimeout(min(1.0, max(0.05, connection.deadline - time.monotonic())))
        with contextlib.suppress(TimeoutError):
            connection.sock.recv(65536)  # read the request first, so that closing does not reset the answer
        connection.sock.sendall(_HTTPS_ONLY)


def _refuse_large_head(connection: _Connection) -> None:
    connection.sock.sendall(_TOO_LARGE)


class _SendAll(io.RawIOBase):
    """The handler's ``wfile``: ``sendall``, whose timeout counts for the whole write (the deadline)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.sendall(data)
        return len(data)


@dataclass(slots=True, eq=False)
class _Render:
    content_type: str
    started: float  # time.monotonic()
    done: threading.Event = field(default_factory=threading.Event)
    body: bytes = b""
    failed: bool = False
    _gzipped: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def gzipped(self) -> bytes:
        with self._lock:
            if self._gzipped is None:
                self._gzipped = gzip.compress(self.body, compresslevel=5)
            return self._gzipped


class _SharedRenders:
    """A scrape is answered with a render of its format that *began after the scrape arrived*: the latest
    finished one, or one under way, or a new one. So no answer is older than its question, and 200 scrapes
    arriving at once cost a few renders (of about 7 ms for the demo), not 200."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._running: dict[str, _Render] = {}
        self._latest: dict[str, _Render] = {}

    def render(self, accept: str, asked_at: float) -> _Render:
        _, content_type = choose_encoder(accept)
        with self._lock:
            for candidate in (self._latest.get(content_type), self._running.get(content_type)):
                if candidate is not None and candidate.started >= asked_at:
                    break
            else:
                candidate = None
            mine = candidate is None
            if candidate is None:
                candidate = self._running[content_type] = _Render(content_type, time.monotonic())
        render = candidate
        if not mine:
            render.done.wait()
            if render.failed:
                raise RuntimeError("the /metrics render this scrape waited for failed (see the log)")
            return render
        try:
            form = exposition.Format.from_content_type(content_type)
            render.body = exposition.write(self._registry.collect(), form)
        except BaseException:
            render.failed = True
            raise
        finally:
            with self._lock:
                if self._running.get(content_type) is render:
                    del self._running[content_type]
                latest = self._latest.get(content_type)
                if not render.failed and (latest is None or latest.started < render.started):
                    self._latest[content_type] = render
            render.done.set()
        return render


def _san_allowed(certificate: Any, allowed: frozenset[str]) -> bool:
    names = {value for _, value in (certificate or {}).get("subjectAltName", ())}
    return bool(names & allowed)


class _Handler(BaseHTTPRequestHandler):
    """One request, whose head the loop has read already (``rfile``); the answer goes out with sendall."""

    request: _Connection
    server: _Site  # type: ignore[assignment]  # what answering needs; there is no socketserver here
    server_version = f"enphase-exporter/{__version__}"
    _config: WebConfig | None = None  # of the request being answered
    _shared: _Render | None = None

    def setup(self) -> None:
        self.connection = self.request.sock
        self.rfile = io.BytesIO(bytes(self.request.head))
        self.wfile = _SendAll(self.request.sock)  # type: ignore[assignment]  # a raw writer is all it uses

    def finish(self) -> None:
        pass  # the worker closes the connection

    def version_string(self) -> str:
        return self.server_version  # not the Python version: it only helps whoever looks for a weakness

    def do_HEAD(self) -> None:
        self.do_GET()  # _reply leaves the body out

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self._config = self.server.web_config.current() if self.server.web_config is not None else None
        if self._config is not None and path not in OPEN_PATHS and not self._admitted(self._config):
            return
        if path == "/metrics":
            self._shared = self.server.renders.render(self.headers.get("Accept", ""), self.request.accepted)
            self._reply(200, self._shared.content_type, self._shared.body)
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
        address = str(self.client_address[0])
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
            shared = self._shared if self._shared is not None and self._shared.body is body else None
            body = shared.gzipped() if shared is not None else gzip.compress(body, compresslevel=5)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        configured = self._config.headers if self._config is not None else {}
        for name, value in {**configured, **(extra_headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _status_page(self) -> str:
        site = self.server
        return status_page.render(site.snapshot(), site.status, site.clock(), __version__)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)
