"""Lifetime counters and history on the live cloud's shapes (ENLIGHTEN_API.md §5-6), end to end.

A site the exporter has never met, in a scripted cloud written for this test only: it began on 2021-05-03,
``today.start_date`` is today's date (not the first day), it is dawn (``production: []``), yesterday is "not
yet processed" in ``daily_energy``, the heat pump, water heater and EV arrays are zero-filled placeholders,
and its ``lifetime_energy`` has days without data. ``once`` and ``backfill`` run as a user runs them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fixture_cloud import FixtureCloud, pasted_headers
from test_once import promtool_check, run_once

SITE = "7654321"  # the scripted cloud's site; its payloads below are all new
FIRST_DAY = date(2021, 5, 3)
TODAY = date(2026, 6, 21)
ZONE = ZoneInfo("Europe/Berlin")
WH = 3600.0
SOURCES = "lifetime_energy,today,daily_energy"  # a solar and battery site without a charger


def midnight(day: date) -> int:
    return int(datetime.combine(day, time(), ZONE).timestamp())


def production_wh(day: date) -> int | None:
    """Made-up but varied: a few days without data (null), as live payloads have."""
    ordinal = day.toordinal()
    return None if ordinal % 97 == 0 else 8000 + (ordinal * 37) % 9000


def consumption_wh(day: date) -> int:
    return 9000 + (day.toordinal() * 53) % 4000


def past_days() -> list[date]:
    return [FIRST_DAY + timedelta(days=i) for i in range((TODAY - FIRST_DAY).days)]


def lifetime() -> dict:
    days = past_days()
    zeros = [0] * (len(days) + 1)
    return {
        "system_id": int(SITE),
        "start_date": FIRST_DAY.isoformat(),
        "last_report_date": midnight(TODAY) + 5 * 900,
        # today's entry (the last) lags behind today's own payload, as it does live
        "production": [production_wh(day) for day in days] + [0],
        "consumption": [consumption_wh(day) for day in days] + [200],
        "evse": zeros,
        "heatpump": [],
        "water_heater": zeros,
    }


def stats_item(day: date, production: list, consumption: list, totals: dict) -> dict:
    count = len(consumption)
    return {
        "start_time": midnight(day),
        "interval_length": 900,
        "production": production,
        "consumption": consumption,
        "import": consumption if production == [] else [],
        "export": [0] * count if count else [],
        "soc": [],
        "evse": [0] * count,  # placeholders: this site has no charger, heat pump or water heater
        "heatpump": [0] * count,
        "water_heater": [0] * count,
        "totals": totals,
    }


DAWN = [80, 75, 70, 72, 70]  # Wh in each of today's first five intervals, before the panels wake up


def today() -> dict:
    return {
        "system_id": int(SITE),
        "start_date": TODAY.isoformat(),  # today's date, NOT the site's first day
        "end_date": TODAY.isoformat(),
        "last_report_date": midnight(TODAY) + 5 * 900,
        "siteStatus": "normal",
        "stats": [stats_item(TODAY, [], DAWN, {"consumption": sum(DAWN), "import": sum(DAWN)})],
    }


def one_bucket_day(day: date) -> dict:
    produced, consumed = production_wh(day) or 0, consumption_wh(day)
    return stats_item(day, [produced], [consumed], {"production": produced, "consumption": consumed})


def daily_energy() -> dict:
    """The last few days, as the hourly refresh asks for them: yesterday not yet processed."""
    days = [TODAY - timedelta(days=n) for n in range(4, 1, -1)]
    unprocessed = {**stats_item(TODAY - timedelta(days=1), [], [], {}), "import": [], "export": []}
    dawn = stats_item(TODAY, [], DAWN, {})
    return {"system_id": int(SITE), "stats": [*(one_bucket_day(day) for day in days), unprocessed, dawn]}


@pytest.fixture
def live_cloud(tmp_path: Path):
    routes = {}
    for name, body in (("lifetime_energy", lifetime()), ("today", today()), ("daily_energy", daily_energy())):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(body))
        routes[f"/pv/systems/{SITE}/{name}"] = str(path)  # an absolute path: FixtureCloud reads it as is
    with FixtureCloud(routes) as cloud:
        yield cloud


def value(exposition: str, name: str) -> float | None:
    match = re.search(rf'^{name}{{site_id="{SITE}"}} (\S+)$', exposition, re.M)
    return float(match.group(1)) if match else None


def test_once_counts_every_day_since_the_first_in_two_requests(live_cloud: FixtureCloud, tmp_path: Path):
    result = run_once(pasted_headers(live_cloud, ENPHASE_SITE_ID=SITE, ENPHASE_SOURCES=SOURCES), tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    history = [
        path for _, path in live_cloud.requests if "/daily_energy" in path or "/lifetime_energy" in path
    ]
    assert len(history) == 2, history  # the whole life in one request, the last few days in another

    # Every day since 2021-05-03 (yesterday from lifetime_energy: daily_energy calls it unprocessed), plus
    # today so far: 0 Wh produced at dawn, DAWN consumed.
    produced = sum(wh for day in past_days() if (wh := production_wh(day)) is not None)
    consumed = sum(consumption_wh(day) for day in past_days()) + sum(DAWN)
    assert value(out, "enphase_site_production_joules_total") == pytest.approx(produced * WH)
    assert value(out, "enphase_site_consumption_joules_total") == pytest.approx(consumed * WH)
    assert produced * WH > 1e10  # years, not the few days that today.start_date would have given

    # A site that produces reads 0 at dawn, not a gap
    assert value(out, "enphase_site_production_today_joules") == 0.0
    assert value(out, "enphase_site_production_power_watts") == 0.0
    # Placeholder loads never measured: no series at all
    assert "enphase_site_load_today_joules{" not in out
    assert value(out, "enphase_up") == 1.0
    assert "enphase_counter_regressions_total{" not in out
    promtool_check(out)


def test_backfill_writes_every_day_from_since_before_todays_start_date(
    live_cloud: FixtureCloud, tmp_path: Path
):
    """today.start_date is today: backfill must not take it for the first day and skip the days before it."""
    since = TODAY - timedelta(days=4)
    history = tmp_path / "history.om"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    command = ["backfill", "--since", since.isoformat(), "--until", (TODAY - timedelta(days=2)).isoformat()]
    result = subprocess.run(
        [sys.executable, "-m", "exporter", *command, "--format", "openmetrics", "--output", str(history)],
        env={**clean, **pasted_headers(live_cloud, ENPHASE_SITE_ID=SITE)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    sampled = {
        datetime.fromtimestamp(float(line.rsplit(" ", 1)[1]) - 1, ZONE).date()  # a bucket's end, in its day
        for line in history.read_text().splitlines()
        if line.startswith("enphase_site_consumption_today_joules{")
    }
    assert {since, since + timedelta(days=1), since + timedelta(days=2)} <= sampled
    # the counters start from the days before --since, from lifetime_energy
    before = sum(wh for day in past_days() if day < since and (wh := production_wh(day)) is not None)
    first = min(
        float(line.split(" ")[1])
        for line in history.read_text().splitlines()
        if line.startswith("enphase_site_production_joules_total{")
    )
    # ... so the first sample is all the days before --since plus the first bucket of --since
    assert first == pytest.approx((before + (production_wh(since) or 0)) * WH)
