"""The InfluxQL dashboards (grafana/dashboards/influxdb/) against a real InfluxDB 1.x filled by
``serve --demo`` with its InfluxDB output on: every query of every panel returns data, asked the way
Grafana's InfluxDB data source asks it, and the template variables find the demo site and charger.

Debian's ``influxd`` and the exporter run on 127.0.0.1 in temporary directories.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from servers import InfluxDB1, seconds
from stack import DemoExporter

from exporter.demo import DEMO_CHARGER_SERIAL, DEMO_SITE_ID

ROOT = Path(__file__).resolve().parents[1]
INFLUX_DASHBOARDS = ROOT / "grafana" / "dashboards" / "influxdb"
MAX_DATA_POINTS = 1440  # as in test_prometheus_demo.py: a panel 1440 pixels wide
DATA_WAIT_SECONDS = 120


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    query: str
    min_interval: float
    range_seconds: float

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def dashboards() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(INFLUX_DASHBOARDS.glob("*.json")):
        yield path.name, json.loads(path.read_text(encoding="utf-8"))


def all_queries() -> list[PanelQuery]:
    found = []
    for name, board in dashboards():
        dashboard_range = seconds(board["time"]["from"].removeprefix("now-"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append(
                    PanelQuery(
                        name,
                        panel["title"],
                        target["refId"],
                        target["query"],
                        seconds(panel["interval"]) if "interval" in panel else 0,
                        seconds(panel["timeFrom"]) if "timeFrom" in panel else dashboard_range,
                    )
                )
    return found


@pytest.fixture(scope="module")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    base = tmp_path_factory.mktemp("influxql")
    server = InfluxDB1(base / "influxdb")
    exporter = DemoExporter(
        base / "exporter",
        *("--influx-url", server.url, "--influx-database", "enphase"),
        *("--influx-queue-dir", str(base / "influx-queue")),
    )
    try:
        server.start()
        server.query("CREATE DATABASE enphase")
        exporter.start()
        yield server
    finally:
        exporter.stop()
        server.stop()


def grafana_duration(value: float) -> str:
    """$__interval as Grafana writes it for InfluxQL: the largest whole unit."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{value // size:.0f}{unit}"
    return f"{value:.0f}s"


def substitute(query: str, variables: dict[str, str], interval: float, span: float, now: float) -> str:
    end_ms = int(now * 1000)
    replacements = {
        "$timeFilter": f"time >= {end_ms - int(span * 1000)}ms and time <= {end_ms}ms",
        "$__interval": grafana_duration(interval),
        **{f"${name}": value for name, value in variables.items()},
    }
    for key in sorted(replacements, key=len, reverse=True):
        query = query.replace(key, replacements[key])
    assert not re.search(r"\$\w", query), f"a variable was left in {query!r}"  # a bare $ ends a regex
    return query


def answer(server: InfluxDB1, query: str) -> list[dict[str, Any]]:
    """The series of one statement; InfluxDB's error message fails the test."""
    response = requests.get(
        f"{server.url}/query", params={"db": "enphase", "q": query, "epoch": "ms"}, timeout=30
    )
    (result,) = response.json()["results"]
    assert "error" not in result, f"{query}: {result['error']}"
    return result.get("series", [])


def has_values(series: list[dict[str, Any]]) -> bool:
    """Some column other than time holds a value: a number that is finite, or a text."""
    for one in series:
        for row in one["values"]:
            for column, value in zip(one["columns"], row, strict=True):
                if column == "time" or value is None:
                    continue
                if isinstance(value, str) or math.isfinite(value):
                    return True
    return False


def variable_values(server: InfluxDB1, board: dict[str, Any]) -> dict[str, str]:
    """Each query variable resolved as Grafana does, "All" as an alternation of every value."""
    resolved: dict[str, str] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = substitute(variable["query"], resolved, 60, 86400, time.time())
        values = [row[1] for series in answer(server, query) for row in series["values"]]
        assert values, f"variable {variable['name']} finds nothing: {query}"
        resolved[variable["name"]] = f"({'|'.join(values)})" if variable.get("includeAll") else values[0]
    return resolved


def run(server: InfluxDB1, query: PanelQuery, variables: dict[str, str], now: float) -> bool:
    interval = max(query.min_interval, query.range_seconds / MAX_DATA_POINTS)
    interval = max(60.0, math.ceil(interval / 60) * 60)  # Grafana rounds to a tidy interval
    return has_values(answer(server, substitute(query.query, variables, interval, query.range_seconds, now)))


def test_every_influxql_query_returns_data(influxdb: InfluxDB1) -> None:
    queries = all_queries()
    assert {query.dashboard for query in queries} == {"site-overview.json", "ev-charger.json"}
    boards = dict(dashboards())
    deadline = time.monotonic() + DATA_WAIT_SECONDS
    while True:
        # The lifetime counters arrive with the lifetime_energy poll, seconds after the start.
        try:
            variables = {name: variable_values(influxdb, board) for name, board in boards.items()}
            empty = [
                str(query)
                for query in queries
                if not run(influxdb, query, variables[query.dashboard], time.time())
            ]
        except AssertionError as missing:
            if "finds nothing" not in str(missing):
                raise
            empty = [str(missing)]
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert empty == [], f"no data after {DATA_WAIT_SECONDS} s"
    assert variables["ev-charger.json"] == {"site_id": DEMO_SITE_ID, "serial": f"({DEMO_CHARGER_SERIAL})"}
    # The check can fail: a field the exporter does not write gives no data.
    missing = PanelQuery(
        "-", "-", "A", 'SELECT last("no_such_field") FROM "enphase_site" WHERE $timeFilter', 0, 86400
    )
    assert not run(influxdb, missing, {}, time.time())
