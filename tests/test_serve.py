"""``enphase-exporter serve --demo`` as a user starts it: a subprocess scraped over HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from support import free_port


@pytest.fixture
def demo_exporter(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "serve", "--demo", "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = time.monotonic()
    yield f"http://127.0.0.1:{port}", process, started
    if process.poll() is None:
        process.kill()
        process.wait(5)


def scrape_until(url: str, needles: tuple[str, ...], deadline: float) -> str:
    text = ""
    while time.monotonic() < deadline:
        try:
            text = requests.get(f"{url}/metrics", timeout=2).text
        except requests.ConnectionError:
            text = ""
        if all(needle in text for needle in needles):
            return text
        time.sleep(0.2)
    return text


def test_serve_demo_answers_with_charger_and_battery_series_within_10_s(demo_exporter):
    url, process, started = demo_exporter
    needles = (
        'enphase_ev_charger_connected{serial="EV0000000001",site_id="1234567"}',
        'enphase_battery_state_of_charge_ratio{site_id="1234567"}',
    )
    text = scrape_until(url, needles, started + 10)
    assert all(needle in text for needle in needles), text[-2000:]
    assert "process_resident_memory_bytes" in text
    # every source up, the lifetime counters included, within 10 s of start as well
    text = scrape_until(
        url, ('enphase_up{site_id="1234567"} 1.0', "enphase_site_production_joules_total{"), started + 10
    )
    assert 'enphase_up{site_id="1234567"} 1.0' in text, text[-2000:]
    assert 'enphase_source_up{site_id="1234567",source="lifetime_energy"} 1.0' in text

    assert requests.get(f"{url}/healthz", timeout=2).text == "ok\n"
    page = requests.get(f"{url}/", timeout=2)
    assert (
        "1234567" in page.text
        and "ev_status" in page.text
        and page.headers["Content-Type"].startswith("text/html")
    )
    assert requests.get(f"{url}/nope", timeout=2).status_code == 404
    openmetrics = requests.get(
        f"{url}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=2
    )
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")

    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    stderr = process.stderr.read()
    assert "demo-password" not in stderr
    assert "Traceback" not in stderr
