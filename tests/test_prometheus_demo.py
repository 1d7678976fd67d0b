"""A real Prometheus scraping ``serve --demo``: every query of every Prometheus dashboard returns data,
asked the way Grafana asks it, and every alert rule loads and evaluates.

Everything runs on 127.0.0.1 in temporary directories: the demo exporter (with its InfluxDB output on,
writing to a real ``influxd``, so the exporter-health dashboard's InfluxDB row has data too), and Debian's
``prometheus`` scraping it every second with prometheus/alerts.yml loaded.
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
import yaml
from servers import InfluxDB1, seconds
from stack import ALERTS, DemoExporter, Prometheus

from exporter.demo import DEMO_CHARGER_SERIAL, DEMO_SITE_ID

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yml"

# How Grafana turns a panel into a request, for the dashboards' default range (the last 24 hours) in a
# panel 1440 pixels wide: $__interval is the range over the number of points, at least the data source's
# timeInterval (the scrape interval it assumes) or the panel's own minimum interval;
# $__rate_interval = max($__interval + timeInterval, 4 * timeInterval); start and end are rounded down
# to whole steps (in the dashboard's time zone; UTC here).
MAX_DATA_POINTS = 1440
DATA_WAIT_SECONDS = 240


def time_interval() -> float:
    (source,) = [
        s for s in yaml.safe_load(DATASOURCES.read_text())["datasources"] if s["type"] == "prometheus"
    ]
    return seconds(source["jsonData"]["timeInterval"])


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool
    min_interval: float  # the panel's `interval`, 0 when it has none
    range_seconds: float  # the panel's `timeFrom`, else the dashboard's range

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def prometheus_dashboards() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        kinds = {v["query"] for v in board["templating"]["list"] if v["type"] == "datasource"}
        if kinds == {"prometheus"}:
            yield path.name, board


def panel_queries(name: str, board: dict[str, Any]) -> list[PanelQuery]:
    dashboard_range = seconds(board["time"]["from"].removeprefix("now-"))
    found = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            found.append(
                PanelQuery(
                    dashboard=name,
                    panel=panel["title"],
                    ref_id=target["refId"],
                    expr=target["expr"],
                    instant=bool(target.get("instant")) and not target.get("range"),
                    min_interval=seconds(panel["interval"]) if "interval" in panel else 0,
                    range_seconds=seconds(panel["timeFrom"]) if "timeFrom" in panel else dashboard_range,
                )
            )
    return found


def all_queries() -> list[PanelQuery]:
    return [query for name, board in prometheus_dashboards() for query in panel_queries(name, board)]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    base = tmp_path_factory.mktemp("stack")
    influxdb = InfluxDB1(base / "influxdb")
    exporter = DemoExporter(
        base / "exporter",
        *("--influx-url", influxdb.url, "--influx-database", "enphase"),
        *("--influx-queue-dir", str(base / "influx-queue")),
    )
    server = Prometheus(base / "prometheus", exporter.address, interval="1s")
    try:
        influxdb.start()
        influxdb.query("CREATE DATABASE enphase")
        exporter.start()
        server.start()
        yield server
    finally:
        server.stop()
        exporter.stop()
        influxdb.stop()


def align(timestamp: float, step: float) -> float:
    return math.floor(timestamp / step) * step


def substitute(
    expr: str, variables: dict[str, str], interval: float, rate_interval: float, span: float
) -> str:
    replacements = {
        "$__rate_interval": f"{rate_interval:.0f}s",
        "$__interval": f"{interval:.0f}s",
        "$__range": f"{span:.0f}s",
        **{f"${name}": value for name, value in variables.items()},
    }
    for key in sorted(replacements, key=len, reverse=True):
        expr = expr.replace(key, replacements[key])
    assert "$" not in expr, f"a variable was left in {expr!r}"
    return expr


def finite_values(data: dict[str, Any]) -> list[float]:
    """Every finite sample of an instant or range query answer."""
    values = []
    for series in data["result"]:
        samples = series["values"] if "values" in series else [series["value"]]
        values += [float(value) for _, value in samples if math.isfinite(float(value))]
    return values


def run(prometheus: Prometheus, query: PanelQuery, variables: dict[str, str], now: float) -> list[float]:
    scrape = time_interval()
    interval = max(query.min_interval, query.range_seconds / MAX_DATA_POINTS, scrape)
    rate_interval = max(interval + scrape, 4 * scrape)
    expr = substitute(query.expr, variables, interval, rate_interval, query.range_seconds)
    if query.instant:
        return finite_values(prometheus.api("query", query=expr, time=now))
    data = prometheus.api(
        "query_range",
        query=expr,
        start=align(now - query.range_seconds, interval),
        end=align(now, interval),
        step=interval,
    )
    return finite_values(data)


def variable_values(prometheus: Prometheus, board: dict[str, Any]) -> dict[str, str]:
    """Each query variable resolved as Grafana does: label_values(selector, label) through the label API;
    a multi-value variable's "All" becomes an alternation of every value."""
    resolved: dict[str, str] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
        assert match, variable["query"]
        selector = substitute(match[1], resolved, 60, 240, 86400)
        values = prometheus.api(f"label/{match[2]}/values", **{"match[]": selector})
        assert values, f"variable {variable['name']} finds no values for {selector}"
        resolved[variable["name"]] = f"({'|'.join(values)})" if variable.get("includeAll") else values[0]
    return resolved


def test_every_dashboard_query_returns_data(prometheus: Prometheus) -> None:
    queries = all_queries()
    assert len(queries) > 50, "the dashboards were not found"
    boards = dict(prometheus_dashboards())
    deadline = time.monotonic() + DATA_WAIT_SECONDS
    while True:
        # Variables are looked up again each round: the charger's series come with its first poll.
        empty = []
        try:
            variables = {name: variable_values(prometheus, board) for name, board in boards.items()}
        except AssertionError as missing:
            empty = [str(missing)]
        if not empty:
            now = time.time()
            empty = [
                str(query) for query in queries if not run(prometheus, query, variables[query.dashboard], now)
            ]
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert empty == [], f"no data after {DATA_WAIT_SECONDS} s"
    # The check can fail: a metric the exporter does not have, or data before the demo began, is empty.
    for expr, instant in (("enphase_no_such_metric", True), ("enphase_up offset 2d", False)):
        missing = PanelQuery("-", "-", "A", expr, instant, 0, 86400)
        assert run(prometheus, missing, {}, time.time()) == []
    assert variables["ev-charger.json"] == {"site_id": DEMO_SITE_ID, "serial": f"({DEMO_CHARGER_SERIAL})"}


def test_every_alert_rule_loads_and_evaluates(prometheus: Prometheus) -> None:
    expected = {
        rule["alert"]: rule["expr"]
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
    }

    def evaluated() -> list[dict[str, Any]]:
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        return rules if rules and all(rule.get("health") != "unknown" for rule in rules) else []

    deadline = time.monotonic() + 30
    while not (rules := evaluated()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert {rule["name"] for rule in rules if rule["type"] == "alerting"} == set(expected)
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
    with pytest.raises(AssertionError, match="expected type range vector"):
        prometheus.api("query", query="rate(enphase_up)")  # what a broken expression looks like
    for name, expr in expected.items():
        # An expression Prometheus cannot evaluate fails inside api() with Prometheus' error message.
        answer = prometheus.api("query", query=expr)
        assert answer["resultType"] == "vector", name
