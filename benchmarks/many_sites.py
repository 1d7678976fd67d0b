"""Many sites in one exporter process, in real time: memory, CPU per hour of polling, late and missed polls.

    python3 benchmarks/many_sites.py [--sites 1000] [--seconds 3900]

The demo cloud runs in a child process (so that its CPU is not counted) and answers for every site id with
its one simulated site. The exporter polls them with the real scheduler, wall-clock time, its request
budget raised to fit every site at the default intervals. The reference is the same exporter polling one site
for the same time, in a process of its own at the same time: the "per site" ratio says whether a site costs
more when there are many. A poll is late when it ends more than 10 s after its planned time; missed when
APScheduler skipped it (more than 60 s late, or the previous poll of the same job still running).

First runs are spread over one interval, and daily energy's is an hour: its first poll of each site fetches
the whole history (a quarter per request). The default 65 minutes therefore cover every site's first history
and then the steady state; RSS is sampled through the run, so a shorter run shows how far it got.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from tables import machine, markdown

import exporter
from exporter.app import build
from exporter.config import load
from exporter.demo.server import DEMO_EMAIL, DEMO_PASSWORD
from exporter.scheduler import PollScheduler

LATE_SECONDS = 10.0
CLOUD = """
import sys, time
from exporter.demo.server import DemoCloud
ids = tuple(str(2_000_000 + n) for n in range(int(sys.argv[1])))
with DemoCloud(more_site_ids=ids) as cloud:
    print(cloud.base_url, flush=True)
    sys.stdin.read()  # until the benchmark closes the pipe
"""


def site_ids(count: int) -> list[str]:
    return [str(2_000_000 + n) for n in range(count)]


@dataclass(frozen=True, slots=True)
class Figures:
    sites: int
    seconds: float
    rss_mib: float
    cpu_seconds: float
    polls: int
    failed: int
    late: int
    missed: int
    worst_delay: float
    rss_samples: tuple[float, ...]  # MiB at each tenth of the run
    peak_rss_mib: float

    @property
    def cpu_per_hour(self) -> float:
        return self.cpu_seconds * 3600 / self.seconds


def status_mib(field: str) -> float:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith(field + ":")) / 1024


def rss_mib() -> float:
    return status_mib("VmRSS")


def measure(count: int, seconds: float, state: Path) -> Figures:
    cloud = subprocess.Popen(
        [sys.executable, "-c", CLOUD, str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert cloud.stdout is not None
        base_url = cloud.stdout.readline().strip()
        environ = {
            "ENPHASE_BASE_URL": base_url,
            "ENPHASE_EMAIL": DEMO_EMAIL,
            "ENPHASE_PASSWORD": DEMO_PASSWORD,
            "ENPHASE_SESSION_FILE": str(state / f"session-{count}.json"),
            "ENPHASE_SITE_ID": ",".join(site_ids(count)),
            "ENPHASE_REQUEST_BUDGET": str(200 * count),  # above the 148 per site the worst-case plan needs
        }
        settings = load({}, environ)
        exporter = build(settings)
        scheduler = PollScheduler(settings, exporter.poller, exporter.store)
        lock = threading.Lock()
        delays: list[float] = []
        missed = failed = 0
        poll = exporter.poller.poll

        def counted(site_id: str, source: str) -> bool:
            nonlocal failed
            succeeded = poll(site_id, source)
            with lock:
                failed += not succeeded
            return succeeded

        exporter.poller.poll = counted  # type: ignore[method-assign]

        def heard(event: JobEvent) -> None:
            nonlocal missed
            with lock:
                if event.code == EVENT_JOB_EXECUTED:
                    delays.append(time.time() - event.scheduled_run_time.timestamp())
                else:
                    missed += 1

        jobs = scheduler._scheduler  # PollScheduler owns it; its events tell when each job ran
        jobs.add_listener(heard, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        scheduler.start(settings.site_ids)
        samples = []
        for _ in range(10):
            time.sleep(seconds / 10)
            samples.append(rss_mib())
        scheduler.shutdown()
        spent = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu_seconds = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
        with lock:
            return Figures(
                count,
                spent,
                rss_mib(),
                cpu_seconds,
                len(delays),
                failed,
                sum(delay > LATE_SECONDS for delay in delays),
                missed,
                max(delays, default=0.0),
                tuple(samples),
                status_mib("VmHWM"),  # not ru_maxrss: a child inherits its parent's through fork
            )
    finally:
        cloud.communicate(timeout=30)


def measure_apart(count: int, seconds: float) -> subprocess.Popen[str]:
    """A fresh process per measurement: RSS and CPU are then its own, and both runs share the same time
    (and the machine: on two cores, lateness includes the other run and both demo clouds)."""
    package_root = str(Path(exporter.__file__).parent.parent)  # the child imports the same exporter
    path = os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH"))))
    return subprocess.Popen(
        [sys.executable, __file__, "--measure", str(count), "--seconds", str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3900.0)
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # in the child: one measurement
    args = parser.parse_args(argv)
    if args.measure is not None:
        with tempfile.TemporaryDirectory(prefix="enphase-many-") as state:
            print(json.dumps(asdict(measure(args.measure, args.seconds, Path(state)))))
        return 0
    runs = [measure_apart(1, args.seconds), measure_apart(args.sites, args.seconds)]
    outputs = [run.communicate()[0] for run in runs]
    if any(run.returncode for run in runs):
        print("A measurement failed; its error is above.", file=sys.stderr)
        return 1
    one, many = (Figures(**json.loads(output.splitlines()[-1])) for output in outputs)
    print(f"{args.seconds:g} s of real time per run, both at once, pid {os.getpid()}; {machine()}\n")
    rows = [
        [
            figures.sites,
            f"{figures.peak_rss_mib:.0f}",
            f"{figures.rss_mib:.0f}",
            f"{figures.cpu_per_hour:.0f}",
            f"{figures.cpu_per_hour / figures.sites:.2f}",
            figures.polls,
            figures.failed,
            figures.late,
            figures.missed,
            f"{figures.worst_delay:.1f}",
        ]
        for figures in (one, many)
    ]
    per_site = (many.cpu_per_hour / many.sites) / (one.cpu_per_hour / one.sites)
    rows.append(["ratio, per site", "", "", "", f"{per_site:.2f}", "", "", "", "", ""])
    header = (
        "sites",
        "peak RSS MiB",
        "RSS MiB at the end",
        "CPU s per hour",
        "CPU s per hour per site",
        "polls",
        "failed",
        f"late (> {LATE_SECONDS:.0f} s)",
        "missed",
        "worst delay s",
    )
    print(markdown(header, rows))
    tenths = [f"{tenth}/10" for tenth in range(1, 11)]
    print("\nRSS MiB through the run\n")
    samples = [
        [f"{f.sites} site{'s' * (f.sites > 1)}", *(f"{mib:.0f}" for mib in f.rss_samples)]
        for f in (one, many)
    ]
    print(markdown(("RSS MiB of", *tenths), samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
