"""The HTTP server under load and abuse: a bounded pool of threads whatever the number of connections, one
deadline for the whole request, a deep backlog, HEAD, and a Server header that names no Python version."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client import CollectorRegistry, Gauge

from exporter import __version__, server
from exporter.server import MetricsServer
from exporter.snapshot import SnapshotStore


@pytest.fixture
def metrics_server() -> Iterator[MetricsServer]:
    registry = CollectorRegistry()
    Gauge("enphase_test_marker", "Proves the body is the exposition.", registry=registry).set(1)
    store = SnapshotStore()
    running = MetricsServer("127.0.0.1", 0, registry, lambda: store.current)
    running.start()
    yield running
    running.stop()


def url(running: MetricsServer, path: str = "/metrics") -> str:
    return f"http://127.0.0.1:{running.port}{path}"


def idle_connections(running: MetricsServer, count: int, first_bytes: bytes = b"GET /metrics HT") -> list:
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        sock.sendall(first_bytes)  # a request head that never ends
        held.append(sock)
    return held


def test_head_answers_like_get_without_a_body_and_the_server_header_names_no_python(metrics_server):
    got = requests.get(url(metrics_server), timeout=5)
    head = requests.head(url(metrics_server), timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Type"] == got.headers["Content-Type"]
    assert int(head.headers["Content-Length"]) == len(got.content)
    assert got.headers["Server"] == head.headers["Server"] == f"enphase-exporter/{__version__}"


def test_slow_clients_hold_no_thread_and_scrapes_are_answered_meanwhile(metrics_server):
    before = threading.active_count()
    held = idle_connections(metrics_server, 60)
    try:
        time.sleep(0.3)
        assert threading.active_count() <= before + 8  # the workers at most; was one thread per connection
        started = time.monotonic()
        assert requests.get(url(metrics_server), timeout=5).status_code == 200
        assert time.monotonic() - started < 1.0
    finally:
        for sock in held:
            sock.close()


def test_one_deadline_for_the_whole_request_cuts_a_client_that_trickles(metrics_server, monkeypatch):
    monkeypatch.setattr(server, "REQUEST_DEADLINE", 1.0, raising=False)
    sock = socket.create_connection(("127.0.0.1", metrics_server.port), timeout=5)
    started = time.monotonic()
    closed_after = None
    try:
        for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 60:
            try:
                sock.sendall(bytes([byte]))  # one byte at a time, each well within any per-read timeout
                sock.settimeout(0.1)
                if sock.recv(1) == b"":
                    raise ConnectionResetError
            except TimeoutError:
                continue  # still open: the pause between two bytes
            except OSError:
                closed_after = time.monotonic() - started
                break
    finally:
        sock.close()
    assert closed_after is not None and closed_after < 4.0  # was never: 30 s per read, reset by each byte


def test_200_concurrent_scrapes_are_all_answered_quickly_while_slow_clients_hold_connections(metrics_server):
    held = idle_connections(metrics_server, 50)
    try:

        def scrape(_: int) -> float:
            started = time.monotonic()
            assert requests.get(url(metrics_server), timeout=10).status_code == 200
            return time.monotonic() - started

        with ThreadPoolExecutor(200) as pool:
            times = sorted(pool.map(scrape, range(200)))
        p95 = times[int(len(times) * 0.95) - 1]
        assert p95 < 0.9, p95  # a SYN dropped at a full backlog of 5 waits 1 s before it is sent again
    finally:
        for sock in held:
            sock.close()


def test_accepting_pauses_at_the_connection_cap_instead_of_failing(metrics_server, monkeypatch):
    loop = metrics_server._loop
    monkeypatch.setattr(loop, "_cap", 5)
    held = idle_connections(metrics_server, 5)
    try:
        time.sleep(0.3)
        waiting = socket.create_connection(("127.0.0.1", metrics_server.port), timeout=5)  # in the backlog
        waiting.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        waiting.settimeout(0.5)
        with pytest.raises(TimeoutError):
            waiting.recv(100)  # not accepted while 5 are open
        held.pop().close()
        waiting.settimeout(5)
        assert waiting.recv(100).startswith(b"HTTP/1.0 200")
        waiting.close()
    finally:
        for sock in held:
            sock.close()
