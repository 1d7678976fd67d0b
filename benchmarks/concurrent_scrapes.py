"""200 concurrent scrapes of /metrics while 50 slow clients hold connections open.

    python3 benchmarks/concurrent_scrapes.py [--scrapes 200] [--slow 50] [--rounds 5]

Runs ``enphase-exporter serve --demo`` in a process of its own on 127.0.0.1, as a user would, waits for its
first polls, then opens ``--slow`` connections that send half a request head and nothing more, and fires
``--scrapes`` scrapes at once, each on a new connection. A scrape counts as refused when its connection is
refused or reset, or it is answered anything but 200. The reference is the same exporter, same demo, same
process set-up, serving its registry through prometheus_client's own ``start_http_server`` (http.server's
threads and backlog of 5), as many Python exporters do. Rounds alternate between the two; the table shows
the median of the rounds' p50, p95 and slowest scrape, and the refusals of all rounds. Exits 1 unless the
exporter's p95 is under 100 ms with no scrape refused.
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tables import machine, markdown  # benchmarks/tables.py, beside this file

ROOT = Path(__file__).resolve().parent.parent
P95_GOAL = 0.100


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(kind: str, state: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ENPHASE_SESSION_FILE": str(state / kind / "session.json"),
    }
    command = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
    process = subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the first polls are in: the body is its full size
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                if answer.read().count(b"\n") > 200:  # the demo's full body has about 260 lines
                    return process, port
        except OSError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"the {kind} server did not come up")


def one_round(port: int, scrapes: int, slow: int) -> tuple[list[float], int]:
    """Latencies of the scrapes that got a 200, and how many did not.

    The scrapes are driven by one thread with non-blocking sockets: 200 client threads would spend more of
    this 2-core machine's time on themselves than the server spends answering."""
    held = []
    for _ in range(slow):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow")  # and never the rest
        held.append(sock)
    request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    selector = selectors.DefaultSelector()
    started: dict[socket.socket, float] = {}
    answers: dict[socket.socket, bytearray] = {}
    times, failed = [], 0
    try:
        for _ in range(scrapes):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            started[sock], answers[sock] = time.perf_counter(), bytearray()
            selector.register(sock, selectors.EVENT_WRITE)
        deadline = time.monotonic() + 60
        while selector.get_map() and time.monotonic() < deadline:
            for key, events in selector.select(timeout=1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    if events & selectors.EVENT_WRITE:
                        sock.sendall(request)
                        selector.modify(sock, selectors.EVENT_READ)
                        continue
                    chunk = sock.recv(65536)
                except OSError:  # refused or reset
                    chunk, answers[sock] = b"", bytearray(b"failed")
                if chunk:
                    answers[sock] += chunk
                    continue
                selector.unregister(sock)
                sock.close()
                if answers[sock].startswith(b"HTTP/1.0 200") or answers[sock].startswith(b"HTTP/1.1 200"):
                    times.append(time.perf_counter() - started[sock])
                else:
                    failed += 1
        for key in list(selector.get_map().values()):  # still unanswered after a minute
            failed += 1
            key.fileobj.close()  # type: ignore[union-attr]
    finally:
        selector.close()
        for sock in held:
            sock.close()
    return sorted(times), failed


def percentile(times: list[float], share: float) -> float:
    return times[max(0, int(len(times) * share + 0.5) - 1)] if times else float("nan")


def serve(kind: str, port: int) -> int:
    """Run in the child process: ``serve --demo``, with the exporter's server or the reference."""
    from exporter import cli

    if kind == "reference":
        cli.MetricsServer = _ReferenceServer  # type: ignore[misc,assignment]
    return cli.main(["serve", "--demo", "--listen", f"127.0.0.1:{port}", "--log-level", "warning"])


class _ReferenceServer:
    """prometheus_client's start_http_server, in MetricsServer's shape."""

    def __init__(self, host: str, port: int, registry: object, *_: object, **__: object) -> None:
        self._where = (host, port, registry)
        self.port, self.scheme = port, "http"

    def start(self) -> None:
        from prometheus_client import start_http_server

        host, port, registry = self._where
        self._server, _ = start_http_server(port, host, registry)  # type: ignore[arg-type]

    def stop(self) -> None:
        self._server.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--slow", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", choices=("exporter", "reference"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.port)
    figures: dict[str, list[tuple[list[float], int]]] = {"exporter": [], "reference": []}
    with tempfile.TemporaryDirectory(prefix="enphase-bench-") as state:
        servers = {kind: start(kind, Path(state)) for kind in figures}
        try:
            for _ in range(args.rounds):
                for kind, (_, port) in servers.items():
                    figures[kind].append(one_round(port, args.scrapes, args.slow))
                    time.sleep(1)  # let the slow clients' connections close
        finally:
            for process, _ in servers.values():
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    rows = []
    summary = {}
    for kind, rounds in figures.items():
        p50 = statistics.median(percentile(times, 0.50) for times, _ in rounds)
        p95 = statistics.median(percentile(times, 0.95) for times, _ in rounds)
        slowest = statistics.median(times[-1] if times else float("nan") for times, _ in rounds)
        refused = sum(failed for _, failed in rounds)
        summary[kind] = (p95, refused)
        rows.append([kind, args.scrapes, args.slow, f"{p50 * 1000:.1f}", f"{p95 * 1000:.1f}",
                     f"{slowest * 1000:.1f}", f"{refused} of {args.scrapes * args.rounds}"])  # fmt: skip
    ratio = summary["exporter"][0] / summary["reference"][0]
    print(f"Machine: {machine()}; {args.rounds} rounds, medians")
    print(markdown(["server", "scrapes", "slow clients", "p50 ms", "p95 ms", "slowest ms", "refused"], rows))
    print(f"\np95 ratio exporter / reference: {ratio:.3f}")
    p95, refused = summary["exporter"]
    met = p95 < P95_GOAL and refused == 0
    verdict = "met" if met else "NOT met"
    print(f'Goal "p95 under 100 ms, none refused": {verdict} ({p95 * 1000:.1f} ms, {refused} refused)')
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
