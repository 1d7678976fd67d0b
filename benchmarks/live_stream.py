"""Many sites streaming live power into one exporter process: CPU, memory, and how fresh /metrics is.

    python3 benchmarks/live_stream.py [--sites 100] [--seconds 60]

The demo cloud runs in a child process (its CPU is not counted) and is the local publisher: its broker sends
every subscribed stream a frame a second (``exporter/demo/live.py``), for every site id it answers for. Two
more child processes run at the same time, for the same window:

- **exporter**: the real exporter (``build`` and ``start_live_streams``, as ``serve`` does): credentials
  through the cloud client, one MQTT-over-WebSocket session per site, each frame decoded, integrated and
  swapped in, and /metrics served and scraped every 15 s, as Prometheus would;
- **reference**: the same number of paho-mqtt WebSocket clients, subscribed to the same streams, that only
  receive each frame and discard it: what streaming costs before the exporter does anything with a frame.

CPU is the process's CPU seconds over the window divided by the window (1.0 = one core busy). RSS is read at
the end of the window. Freshness is measured after the window: /metrics scraped 20 times a second for
``FRESHNESS_SECONDS``; for each new ``enphase_site_live_last_frame_timestamp_seconds`` a scrape shows, the
time from that frame's arrival to the end of the scrape that first showed it.

Goals (issue 11): for 100 sites, under 25 % of one core and under 100 MB above the reference; frame to
/metrics under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tables import machine, markdown

CLOUD = """
import sys
from exporter.demo.server import DemoCloud
ids = tuple(str(2_000_000 + n) for n in range(int(sys.argv[1])))
with DemoCloud(more_site_ids=ids) as cloud:
    print(cloud.base_url, flush=True)
    sys.stdin.read()  # until the benchmark closes the pipe
"""
SCRAPE_EVERY = 15.0
FRESHNESS_SECONDS = 10.0
READY_TIMEOUT = 120.0
LAST_FRAME = re.compile(r'^enphase_site_live_last_frame_timestamp_seconds\{site_id="(\d+)"\} (\S+)$', re.M)


def site_ids(count: int) -> list[str]:
    return [str(2_000_000 + n) for n in range(count)]


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024


def wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"not ready within {timeout:.0f} s")
        time.sleep(0.2)


def window(seconds: float, during: Any = None) -> tuple[float, float]:
    """(CPU share of one core, RSS MiB) over ``seconds``; ``during(now)`` is called every second."""
    cpu, wall = time.process_time(), time.monotonic()
    while time.monotonic() - wall < seconds:
        time.sleep(min(1.0, seconds - (time.monotonic() - wall)))
        if during:
            during(time.monotonic() - wall)
    return (time.process_time() - cpu) / (time.monotonic() - wall), rss_mib()


# -- the two measured roles -------------------------------------------------------------------------------


def exporter_role(base_url: str, sites: int, seconds: float) -> dict[str, Any]:
    import requests

    from exporter.app import build, start_live_streams
    from exporter.config import load
    from exporter.demo.server import DEMO_EMAIL, DEMO_PASSWORD
    from exporter.server import MetricsServer

    ids = site_ids(sites)
    with tempfile.TemporaryDirectory(prefix="enphase-live-bench-") as state:
        environ = {
            "ENPHASE_BASE_URL": base_url,
            "ENPHASE_EMAIL": DEMO_EMAIL,
            "ENPHASE_PASSWORD": DEMO_PASSWORD,
            "ENPHASE_SESSION_FILE": str(Path(state) / "session.json"),
            "ENPHASE_SITE_ID": ",".join(ids),
            "ENPHASE_SOURCES": "today",
            "ENPHASE_REQUEST_BUDGET": "100000",
            "ENPHASE_LIVE_STREAM": "on",
        }
        settings = replace(load({}, environ), live_plain_loopback=True)  # the demo broker: ws:// on loopback
        exporter = build(settings)
        for site_id in ids:  # today names each site's gateway
            exporter.poller.poll(site_id, "today")
        streams = start_live_streams(exporter, tuple(ids))
        assert streams is not None and exporter.live is not None
        server = MetricsServer("127.0.0.1", 0, exporter.registry, lambda: exporter.store.current)
        server.start()
        url = f"http://127.0.0.1:{server.port}/metrics"
        live = exporter.live
        wait_for(lambda: all((s := live.get(i)) and s.frames > 0 for i in ids), READY_TIMEOUT)
        frames_before = sum(live.get(i).frames for i in ids)  # type: ignore[union-attr]
        scrapes = []

        def scrape(elapsed: float) -> None:
            if elapsed >= SCRAPE_EVERY * (len(scrapes) + 1):
                scrapes.append(len(requests.get(url, timeout=10).content))

        cpu, rss = window(seconds, scrape)
        frames = sum(live.get(i).frames for i in ids) - frames_before  # type: ignore[union-attr]
        lags = freshness(url)
        streams.stop()
        server.stop()
    return {"cpu": cpu, "rss": rss, "frames": frames, "lags": lags, "scrape_bytes": max(scrapes, default=0)}


def freshness(url: str) -> list[float]:
    import requests

    seen: dict[str, float] = {}
    lags: list[float] = []
    session = requests.Session()
    end = time.monotonic() + FRESHNESS_SECONDS
    while time.monotonic() < end:
        text = session.get(url, timeout=10).text
        shown_at = time.time()
        for site_id, value in LAST_FRAME.findall(text):
            arrived = float(value)
            if site_id in seen and arrived > seen[site_id]:
                lags.append(shown_at - arrived)
            seen[site_id] = arrived
        time.sleep(0.05)
    return lags


def reference_role(base_url: str, sites: int, seconds: float) -> dict[str, Any]:
    import paho.mqtt.client as mqtt
    import requests
    from paho.mqtt.enums import CallbackAPIVersion

    from exporter.demo.server import DEMO_EMAIL, DEMO_PASSWORD
    from exporter.demo.simulation import GATEWAY_SERIAL

    session = requests.Session()
    session.post(
        f"{base_url}/login/login.json", data={"user[email]": DEMO_EMAIL, "user[password]": DEMO_PASSWORD}
    )
    received = [0]
    clients = []
    for site_id in site_ids(sites):
        answer = session.get(
            f"{base_url}/pv/aws_sigv4/livestream.json", params={"serial_num": GATEWAY_SERIAL}, timeout=10
        ).json()
        username = (
            f"?x-amz-customauthorizer-name={answer['aws_authorizer']}&{answer['aws_token_key']}="
            f"{answer['aws_token_value']}&site-id={site_id}&x-amz-customauthorizer-signature="
            + requests.utils.quote(answer["aws_digest"], safe="")
        )
        client = mqtt.Client(CallbackAPIVersion.VERSION2, transport="websockets")
        client.ws_set_options(path="/mqtt")
        client.username_pw_set(username, None)
        topic = answer["live_stream_topic"]
        client.on_connect = lambda c, u, f, r, p, topic=topic: c.subscribe(topic, 1)
        client.on_message = lambda c, u, m: received.__setitem__(0, received[0] + 1)  # and discarded
        host, port = answer["aws_iot_endpoint"].split(":")
        client.connect(host, int(port), 60)
        client.loop_start()
        clients.append(client)
    wait_for(lambda: received[0] >= sites, READY_TIMEOUT)
    before = received[0]
    cpu, rss = window(seconds)
    frames = received[0] - before
    for client in clients:
        client.disconnect()
        client.loop_stop()
    return {"cpu": cpu, "rss": rss, "frames": frames}


# -- the orchestrator -------------------------------------------------------------------------------------


def measure(sites: int, seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, (str(Path(__file__).parent.parent), env.get("PYTHONPATH")))
    )
    cloud = subprocess.Popen(
        [sys.executable, "-c", CLOUD, str(sites)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert cloud.stdout is not None
        base_url = cloud.stdout.readline().strip()
        command = [
            sys.executable,
            __file__,
            "--sites",
            str(sites),
            "--seconds",
            str(seconds),
            "--cloud",
            base_url,
        ]
        roles = {
            role: subprocess.Popen([*command, "--role", role], stdout=subprocess.PIPE, text=True, env=env)
            for role in ("exporter", "reference")
        }
        results = {}
        for role, process in roles.items():
            output, _ = process.communicate(timeout=seconds + READY_TIMEOUT + 120)
            if process.returncode != 0:
                raise SystemExit(f"the {role} run failed ({process.returncode})")
            results[role] = json.loads(output.strip().splitlines()[-1])
        return results["exporter"], results["reference"]
    finally:
        if cloud.stdin:
            cloud.stdin.close()
        cloud.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--role", choices=("exporter", "reference"), help=argparse.SUPPRESS)
    parser.add_argument("--cloud", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        role = exporter_role if args.role == "exporter" else reference_role
        print(json.dumps(role(args.cloud, args.sites, args.seconds)), flush=True)
        return 0
    exporter, reference = measure(args.sites, args.seconds)
    lags = sorted(exporter["lags"])
    print(f"{args.sites} sites streaming at 1 Hz for {args.seconds:g} s, one process each; {machine()}\n")
    rows: list[list[object]] = [
        ["frames received", exporter["frames"], reference["frames"]],
        ["CPU, share of one core", f"{exporter['cpu']:.1%}", f"{reference['cpu']:.1%}"],
        ["RSS MiB", f"{exporter['rss']:.0f}", f"{reference['rss']:.0f}"],
        ["RSS above the reference, MiB", f"{exporter['rss'] - reference['rss']:.0f}", ""],
        ["/metrics size, bytes", exporter["scrape_bytes"], ""],
    ]
    print(markdown(("figure", "exporter", "reference (receive and discard)"), rows))
    if lags:
        print()
        print(
            markdown(
                ("frame to /metrics", "seconds"),
                [
                    ["frames seen", len(lags)],
                    ["median", f"{statistics.median(lags):.3f}"],
                    ["99th percentile", f"{lags[int(0.99 * (len(lags) - 1))]:.3f}"],
                    ["worst", f"{lags[-1]:.3f}"],
                ],
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
