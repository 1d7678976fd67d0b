"""Does /metrics answer every scrape while the demo cloud misbehaves, hostile strings included?

    python3 benchmarks/hostile_run.py [--seconds 1800] [--faults mixed] [--rate 0.3] [--seed 1] [--every 1.0]

Runs ``enphase-exporter serve --demo --demo-faults mixed`` in a process of its own on 127.0.0.1, with the
shortest poll intervals the settings allow, so that each source meets many faults. ``mixed`` includes
``hostile_strings``: every string value of a spoiled payload carries a lone surrogate, control characters,
quotes, backslashes and newlines, or 20,000 characters. A scraper asks for /metrics every ``--every``
seconds and checks that each answer is a 200 that decodes as UTF-8 and parses as the text format. Prints
the counts and exits 1 when any scrape failed or the exporter logged a traceback. The test suite runs a
20-second version (tests/test_hostile_run.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent


@dataclass(slots=True)
class Tally:
    scrapes: int = 0
    failed: int = 0
    with_hostile_text: int = 0  # answers carrying a label the exporter had to make safe (U+FFFD)
    slowest: float = 0.0
    first_failure: str = ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(url: str, tally: Tally) -> None:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode("utf-8")
        list(text_string_to_metric_families(text))
    except Exception as error:  # any failure at all is what this run looks for
        tally.failed += 1
        tally.first_failure = tally.first_failure or f"{type(error).__name__}: {error}"[:200]
    else:
        tally.with_hostile_text += "\ufffd" in text
    tally.scrapes += 1
    tally.slowest = max(tally.slowest, time.monotonic() - started)


def run(seconds: float, faults: str, rate: float, seed: int, every: float) -> tuple[Tally, int, int, str]:
    """The tally, the exporter's exit status, the tracebacks it logged, and the tail of its log."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="enphase-hostile-") as state:
        environ = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "ENPHASE_SESSION_FILE": str(Path(state) / "session.json"),
            "ENPHASE_REQUEST_BUDGET": "100000",
        }
        command = [
            sys.executable, "-m", "exporter", "serve", "--demo",
            "--demo-faults", f"{faults},rate={rate},seed={seed}",
            "--listen", f"127.0.0.1:{port}",
            "--ev-status-interval", "15", "--ev-status-charging-interval", "15",
            "--ev-summary-interval", "60", "--today-interval", "60", "--daily-energy-interval", "300",
        ]  # fmt: skip
        log_path = Path(state) / "exporter.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(command, env=environ, stdout=log, stderr=subprocess.STDOUT)
            tally = Tally()
            try:
                url = f"http://127.0.0.1:{port}/metrics"
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:  # until it listens
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
                        break
                    except OSError:
                        time.sleep(0.2)
                end = time.monotonic() + seconds
                while time.monotonic() < end and process.poll() is None:
                    scrape(url, tally)
                    time.sleep(every)
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    status = process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    status = process.wait()
        text = log_path.read_text(errors="replace")
    return tally, status, text.count("Traceback"), "\n".join(text.splitlines()[-5:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1800.0)
    parser.add_argument("--faults", default="mixed", help="the --demo-faults names (default: mixed)")
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--every", type=float, default=1.0)
    args = parser.parse_args()
    tally, status, tracebacks, tail = run(args.seconds, args.faults, args.rate, args.seed, args.every)
    print(f"faults: {args.faults}")
    print("| seconds | fault rate | scrapes | failed | with hostile text | slowest s | exit | tracebacks |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.seconds:.0f} | {args.rate} | {tally.scrapes} | {tally.failed} | {tally.with_hostile_text} "
        f"| {tally.slowest:.3f} | {status} | {tracebacks} |"
    )
    if tally.first_failure:
        print(f"first failure: {tally.first_failure}")
    if tally.failed or tracebacks or status != 0 or not tally.scrapes:
        print(tail)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
