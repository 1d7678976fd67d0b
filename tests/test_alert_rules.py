"""Checks of the monitoring assets: alert rules and their unit tests, the example configurations, and the
Grafana dashboards.

The promtool checks need the `promtool` binary (Debian package `prometheus`). Without it they are skipped
locally and fail when the CI environment variable is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# PyYAML is installed with `responses`, one of the test dependencies.
import yaml
from catalog import ADDITIONS, CATALOG, LIVE

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "prometheus" / "alerts_test.yml"
PROMETHEUS_EXAMPLE = ROOT / "prometheus.yml.example"
ALERTMANAGER_EXAMPLE = ROOT / "prometheus" / "alertmanager.yml.example"
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
GENERATOR = ROOT / "grafana" / "build_dashboards.py"
GRAFANA_PROVISIONING = ROOT / "grafana" / "provisioning"

# Every metric a dashboard or rule may use: the catalogue in METRICS.md plus the documented additions.
# A query naming anything else is a typo or a metric the exporter does not have.
KNOWN_METRICS = frozenset(
    {
        *CATALOG,
        *ADDITIONS,
        *LIVE,
        "enphase_api_request_duration_seconds_bucket",
        "enphase_api_request_duration_seconds_sum",
        "enphase_api_request_duration_seconds_count",
        # InfluxDB output
        "enphase_influxdb_points_written_total",
        "enphase_influxdb_write_failures_total",
        "enphase_influxdb_queue_points",
        "enphase_influxdb_points_dropped_total",
        # prometheus_client's process collector, and Prometheus' own scrape metric
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_start_time_seconds",
        "up",
    }
)

REQUIRED_ALERTS = {
    "EnphaseChargerFaulted",
    "EnphaseChargerOffline",
    "EnphaseBatteryLow",
    "EnphaseBatteryAtReserve",
    "EnphaseSiteNotReporting",
    "EnphaseSourceFailing",
    "EnphaseDataStale",
    "EnphaseAuthFailing",
    "EnphaseRateLimited",
    "EnphaseExporterDown",
    "EnphaseGridOutage",
    "EnphaseLiveStreamDown",
    "EnphaseSiteStatusNotNormal",
    "EnphaseDeviceNotNormal",
    "EnphaseBatteryNotNormal",
    "EnphaseDeviceNotReporting",
    "EnphaseBatterySettingsPending",
}
SEVERITIES = {"critical", "warning", "info"}
# Alerts whose expression already spans a window, so they need no `for:`.
WINDOWED_ALERTS = {"EnphaseRateLimited"}

DASHBOARDS = {
    # file name: (uid, template variables)
    "site-overview.json": ("enphase-site-overview", {"datasource", "site_id"}),
    "ev-charger.json": ("enphase-ev-charger", {"datasource", "site_id", "serial"}),
    "exporter-health.json": ("enphase-exporter-health", {"datasource", "site_id"}),
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


# ---------------------------------------------------------------------------------------------------
# Helpers


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package `prometheus`)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


PROMQL_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                   "offset", "bool", "inf", "nan"}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (good enough for the queries in this project)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    expr = re.sub(r"#[^\n]*", "", expr)  # comments
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", expr):
        word, is_call = match.groups()
        if not is_call and word not in PROMQL_KEYWORDS:
            names.add(word)
    return names


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict]:
    groups = load_yaml(ALERTS)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard(name: str) -> dict:
    return json.loads((DASHBOARD_DIR / name).read_text(encoding="utf-8"))


def panels(board: dict) -> list[dict]:
    result = []
    for item in board["panels"]:
        result.append(item)
        result.extend(item.get("panels", []))  # panels inside collapsed rows
    return result


def walk(node, key_path=()):
    """Yield (key path, dict) for every dict in a JSON document."""
    if isinstance(node, dict):
        yield key_path, node
        for key, value in node.items():
            yield from walk(value, (*key_path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*key_path, index))


def test_metric_name_extraction():
    expr = (
        'sum by (endpoint, le) (rate(foo_bucket{code="429", x=~"$site_id"}[$__rate_interval])) / 3600000\n'
        "  # a comment naming not_a_metric\n"
        "  and on (job) bar_info unless baz offset 15m > 3 * 60 or time() - qux_seconds * 1000"
    )
    assert metric_names(expr) == {"foo_bucket", "bar_info", "baz", "qux_seconds"}


# ---------------------------------------------------------------------------------------------------
# Prometheus rules and configuration


def test_promtool_check_rules():
    result = run(require_tool("promtool"), "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests():
    result = run(require_tool("promtool"), "test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_prometheus_example():
    result = run(require_tool("promtool"), "check", "config", str(PROMETHEUS_EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_example_scrapes_the_exporter_and_loads_the_rules():
    config = load_yaml(PROMETHEUS_EXAMPLE)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [target for group in jobs["enphase"]["static_configs"] for target in group["targets"]]
    assert targets == ["localhost:8466"]
    assert config["rule_files"] == ["prometheus/alerts.yml"]
    assert config["alerting"]["alertmanagers"]


def test_alertmanager_example():
    config = load_yaml(ALERTMANAGER_EXAMPLE)
    receivers = {receiver["name"] for receiver in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert {route["receiver"] for route in routes} <= receivers
    amtool = shutil.which("amtool")
    if amtool is None:
        if os.environ.get("CI"):
            pytest.fail("amtool is missing: the test command installs the package prometheus-alertmanager")
        pytest.skip("amtool is not installed (package prometheus-alertmanager); checked the structure only")
    result = run(amtool, "check-config", str(ALERTMANAGER_EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_required_alerts_exist():
    assert {rule["alert"] for rule in alert_rules()} >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_is_explained(rule):
    assert rule.get("labels", {}).get("severity") in SEVERITIES
    annotations = rule.get("annotations", {})
    assert annotations.get("summary", "").strip(), "summary annotation missing"
    assert len(annotations.get("description", "").strip()) > 80, "description should say what to check"
    if rule["alert"] not in WINDOWED_ALERTS:
        assert rule.get("for"), "without `for:` a single bad poll can fire the alert"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_uses_known_metrics(rule):
    names = metric_names(rule["expr"])
    assert names, f"no metric found in {rule['expr']!r}"
    assert names <= KNOWN_METRICS, f"unknown metrics: {sorted(names - KNOWN_METRICS)}"


def alert_test_cases() -> list[dict]:
    return [case for test in load_yaml(ALERT_TESTS)["tests"] for case in test.get("alert_rule_test", [])]


@pytest.mark.parametrize("alertname", sorted({rule["alert"] for rule in alert_rules()}))
def test_alert_has_firing_and_quiet_unit_tests(alertname):
    cases = [case for case in alert_test_cases() if case["alertname"] == alertname]
    firing = [case for case in cases if case.get("exp_alerts")]
    assert firing, f"no test case where {alertname} fires"
    assert any(not case.get("exp_alerts") for case in cases), f"no test case where {alertname} stays quiet"
    for case in firing:
        for alert in case["exp_alerts"]:
            assert alert.get("exp_labels", {}).get("severity"), "firing case without exp_labels"
            assert {"summary", "description"} <= set(alert.get("exp_annotations", {})), (
                "firing case without exp_annotations"
            )


# ---------------------------------------------------------------------------------------------------
# Grafana


def test_generator_reproduces_the_dashboards():
    if not GENERATOR.exists():
        pytest.skip("no dashboard generator")
    result = run(sys.executable, str(GENERATOR), "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_files_are_the_expected_ones():
    assert {path.name for path in DASHBOARD_DIR.glob("*.json")} == set(DASHBOARDS)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_frame(name):
    board = dashboard(name)
    uid, variables = DASHBOARDS[name]
    assert board["uid"] == uid
    assert board["title"]
    assert board["tags"] == ["enphase"]
    assert board["schemaVersion"] >= 39
    assert board["refresh"] == "1m"
    assert board["time"] == {"from": "now-24h", "to": "now"}
    template = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert set(template) == variables
    assert template["datasource"]["type"] == "datasource"
    assert template["datasource"]["query"] == "prometheus"
    assert template["site_id"]["query"]["query"] == "label_values(enphase_up, site_id)"
    if "serial" in template:
        assert template["serial"]["query"]["query"] == (
            'label_values(enphase_ev_charger_info{site_id=~"$site_id"}, serial)'
        )
    for variable in template.values():
        query = variable["query"]["query"] if variable["type"] == "query" else ""
        for metric in re.findall(r"label_values\(\s*([A-Za-z_:][\w:]*)", query):
            assert metric in KNOWN_METRICS, f"variable {variable['name']}: unknown metric {metric}"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_has_no_fixed_data_source(name):
    board = dashboard(name)
    for key_path, node in walk(board):
        if "datasource" in node:
            where = "/".join(map(str, key_path))
            assert node["datasource"] == DATASOURCE, f"{name} {where}: {node['datasource']!r}"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_panels(name):
    board = dashboard(name)
    ids = [item["id"] for item in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for item in panels(board):
        if item["type"] == "row":
            continue
        title = item["title"]
        assert item["datasource"] == DATASOURCE, title
        unit = item["fieldConfig"]["defaults"].get("unit")
        assert unit, f"{title}: no unit"
        grid = item["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, f"{title}: outside the grid"
        assert item["targets"], f"{title}: no query"
        ref_ids = [target["refId"] for target in item["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"{title}: duplicate refId"
        for target in item["targets"]:
            assert target["datasource"] == DATASOURCE, title
            names = metric_names(target["expr"])
            assert names, f"{title}: no metric in {target['expr']!r}"
            assert names <= KNOWN_METRICS, f"{title}: unknown metrics {sorted(names - KNOWN_METRICS)}"
            assert unit in expected_units(target["expr"]), f"{title}: unit {unit!r} for {target['expr']!r}"


# Values for Grafana's variables, to run dashboard queries through promtool.
GRAFANA_VARIABLES = {
    "$__rate_interval": "4m",
    "$__interval": "1m",
    "$__range": "1d",
    "$site_id": ".*",
    "$serial": ".*",
}


def as_promql(expr: str) -> str:
    for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
    return expr


def test_dashboard_queries_are_valid_promql(tmp_path):
    promtool = require_tool("promtool")
    exprs = [
        target["expr"]
        for name in sorted(DASHBOARDS)
        for item in panels(dashboard(name))
        for target in item.get("targets", [])
    ]
    rules = [{"record": f"dashboard:query_{i}", "expr": as_promql(expr)} for i, expr in enumerate(exprs)]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8")
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_connector_status_timeline_shows_the_current_status(tmp_path):
    """The state timeline turns the connector state set into one series per connector whose value
    is mapped back to the status name."""
    promtool = require_tool("promtool")
    (timeline,) = [
        item
        for item in panels(dashboard("ev-charger.json"))
        if item["type"] == "state-timeline" and item["title"] == "Connector status"
    ]
    codes = {
        entry["text"]: int(value)
        for value, entry in timeline["fieldConfig"]["defaults"]["mappings"][0]["options"].items()
    }
    current = {"1": "charging", "2": "faulted"}  # connector: status
    labels = 'site_id="1", serial="EV1"'
    metric = "enphase_ev_charger_connector_status"
    series = [
        {
            "series": f'{metric}{{{labels}, connector="{connector}", status="{status}"}}',
            "values": "1x5" if current[connector] == status else "0x5",
        }
        for connector in current
        for status in codes
        if status != "no status"
    ]
    expected = [
        {"labels": f'ev:connector_status_code{{{labels}, connector="{connector}"}}', "value": codes[status]}
        for connector, status in current.items()
    ]
    rule = {"record": "ev:connector_status_code", "expr": as_promql(timeline["targets"][0]["expr"])}
    rules = {"groups": [{"name": "ev", "rules": [rule]}]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    unit_test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": "ev:connector_status_code", "eval_time": "2m", "exp_samples": expected}
                ],
            }
        ],
    }
    (tmp_path / "rules_test.yml").write_text(yaml.safe_dump(unit_test), encoding="utf-8")
    result = run(promtool, "test", "rules", str(tmp_path / "rules_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def panel_expr(board: str, title: str, ref_id: str = "A") -> str:
    (item,) = [item for item in panels(dashboard(board)) if item["title"] == title]
    (target,) = [target for target in item["targets"] if target["refId"] == ref_id]
    return as_promql(target["expr"])


def promql_unit_test(tmp_path: Path, input_series: list[dict], exprs: dict[str, str], expected: dict) -> None:
    """Each expression of `exprs` (record name: PromQL) evaluated by promtool over `input_series` (one
    sample a minute for 10 minutes) must give `expected[record name]` (labels: value) at 10m."""
    rules = [{"record": name, "expr": expr} for name, expr in exprs.items()]
    (tmp_path / "rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}), encoding="utf-8"
    )
    unit_test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series,
                "promql_expr_test": [
                    {
                        "expr": name,
                        "eval_time": "10m",
                        "exp_samples": [
                            {"labels": f"{name}{{{labels}}}", "value": value}
                            for labels, value in expected[name].items()
                        ],
                    }
                    for name in exprs
                ],
            }
        ],
    }
    (tmp_path / "rules_test.yml").write_text(yaml.safe_dump(unit_test), encoding="utf-8")
    result = run(require_tool("promtool"), "test", "rules", str(tmp_path / "rules_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_live_power_falls_back_to_the_bucket_power(tmp_path):
    """Site 1 streams: its live power shows. Site 2's stream stopped and its live series kept their last
    values; site 3 has no stream: both show the 15-minute bucket power, signed as the live power."""
    series = {
        'enphase_live_stream_up{site_id="1"}': 1,
        'enphase_live_stream_up{site_id="2"}': 0,
        **{
            f'enphase_site_live_power_watts{{site_id="{site}", meter="{meter}"}}': value
            for site in ("1", "2")
            for meter, value in (("pv", 3000), ("load", 1000), ("grid", -1500), ("storage", -500))
        },
        **{
            f'enphase_{stem}_power_watts{{site_id="{site}"}}': value
            for site in ("1", "2", "3")
            for stem, value in (
                ("site_production", 200),
                ("site_consumption", 900),
                ("site_grid_import", 400),
                ("site_grid_export", 0),
                ("battery_discharge", 300),
                ("battery_charge", 0),
            )
        },
    }
    input_series = [{"series": name, "values": f"{value}x10"} for name, value in series.items()]
    titles = {
        "solar": "Solar now",
        "home": "Home now",
        "grid": "Grid now",
        "battery": "Battery now",
        "solar_to_home": "Solar → home",
        "grid_import": "Grid import",
        "grid_export": "Grid export",
        "battery_discharge": "Battery discharge",
        "battery_charge": "Battery charge",
    }
    live = {"solar": 3000, "home": 1000, "grid": -1500, "battery": -500, "solar_to_home": 1000}
    live |= {"grid_import": 0, "grid_export": 1500, "battery_discharge": 0, "battery_charge": 500}
    bucket = {"solar": 200, "home": 900, "grid": 400, "battery": 300, "solar_to_home": 200}
    bucket |= {"grid_import": 400, "grid_export": 0, "battery_discharge": 300, "battery_charge": 0}
    exprs = {f"panel:{key}": panel_expr("site-overview.json", title) for key, title in titles.items()}
    expected = {
        f"panel:{key}": {'site_id="1"': live[key], 'site_id="2"': bucket[key], 'site_id="3"': bucket[key]}
        for key in titles
    }
    promql_unit_test(tmp_path, input_series, exprs, expected)


def test_self_sufficiency_from_the_energy_counters(tmp_path):
    """Site 1 streams: 1 - 100 J imported / 1000 J consumed. Site 2 has only the cloud's counters. Site 3
    charged its battery from the grid, importing more than the home used: 0, not below."""
    counters = {
        'enphase_site_live_energy_joules_total{site_id="1", flow="grid_import"}': 10,
        'enphase_site_live_energy_joules_total{site_id="1", flow="load_consumption"}': 100,
        'enphase_site_grid_import_joules_total{site_id="1"}': 50,
        'enphase_site_consumption_joules_total{site_id="1"}': 100,
        'enphase_site_grid_import_joules_total{site_id="2"}': 50,
        'enphase_site_consumption_joules_total{site_id="2"}': 100,
        'enphase_site_live_energy_joules_total{site_id="3", flow="grid_import"}': 200,
        'enphase_site_live_energy_joules_total{site_id="3", flow="load_consumption"}': 100,
        # Site 4's live counters stand still (0 / 0): the cloud's counters give the share.
        'enphase_site_live_energy_joules_total{site_id="4", flow="grid_import"}': 0,
        'enphase_site_live_energy_joules_total{site_id="4", flow="load_consumption"}': 0,
        'enphase_site_grid_import_joules_total{site_id="4"}': 20,
        'enphase_site_consumption_joules_total{site_id="4"}': 100,
        # Site 5 used nothing: no share at all.
        'enphase_site_grid_import_joules_total{site_id="5"}': 0,
        'enphase_site_consumption_joules_total{site_id="5"}': 0,
    }
    input_series = [{"series": name, "values": f"0+{step}x10"} for name, step in counters.items()]
    exprs = {"panel:self_sufficiency": panel_expr("site-overview.json", "Self-sufficiency")}
    expected = {
        "panel:self_sufficiency": {
            'site_id="1"': 0.9,
            'site_id="2"': 0.5,
            'site_id="3"': 0,
            'site_id="4"': 0.8,
        }
    }
    promql_unit_test(tmp_path, input_series, exprs, expected)


def test_relay_timeline_shows_the_current_state(tmp_path):
    (timeline,) = [item for item in panels(dashboard("site-overview.json")) if item["title"] == "Grid relay"]
    codes = {
        entry["text"]: int(value)
        for value, entry in timeline["fieldConfig"]["defaults"]["mappings"][0]["options"].items()
    }
    current = {"grid": "offgrid_ready_for_resync", "generator": "generator_sync_ready"}
    input_series = [
        {
            "series": f'enphase_site_relay_state{{site_id="1", relay="{relay}", state="{state}"}}',
            "values": "1x10" if current[relay] == state else "0x10",
        }
        for relay in current
        for state in codes
        if state != "no state"
    ]
    exprs = {"panel:relay_state": panel_expr("site-overview.json", "Grid relay")}
    expected = {
        "panel:relay_state": {
            f'site_id="1", relay="{relay}"': codes[state] for relay, state in current.items()
        }
    }
    promql_unit_test(tmp_path, input_series, exprs, expected)


@pytest.mark.parametrize(
    ("board", "title", "metric", "label", "labels", "current"),
    [
        ("site-overview.json", "Site status", "enphase_site_status", "status", 'site_id="1"', "comm"),
        (
            "ev-charger.json",
            "Charge mode",
            "enphase_ev_charger_charge_mode",
            "mode",
            'site_id="1", serial="EV1"',
            "green",
        ),
    ],
)
def test_state_set_panels_show_the_current_state(tmp_path, board, title, metric, label, labels, current):
    """The stat and the state timeline of a state set turn it into the number of its current state,
    which the value mappings turn back into its name."""
    found = [item for item in panels(dashboard(board)) if item["title"] == title]
    assert found
    for item in found:
        codes = {
            entry["text"]: int(value)
            for value, entry in item["fieldConfig"]["defaults"]["mappings"][0]["options"].items()
        }
        input_series = [
            {
                "series": f'{metric}{{{labels}, {label}="{state}"}}',
                "values": "1x10" if state == current else "0x10",
            }
            for state in codes
            if not state.startswith("no ")
        ]
        exprs = {"panel:state": as_promql(item["targets"][0]["expr"])}
        promql_unit_test(tmp_path, input_series, exprs, {"panel:state": {labels: codes[current]}})


def test_battery_status_timeline_tells_sleeping_from_not_normal(tmp_path):
    (item,) = [item for item in panels(dashboard("site-overview.json")) if item["title"] == "Battery status"]
    codes = {
        entry["text"]: int(value)
        for value, entry in item["fieldConfig"]["defaults"]["mappings"][0]["options"].items()
    }
    states = {"B1": (1, 0), "B2": (0, 1), "B3": (0, 0)}  # serial: (normal, sleeping)
    input_series = [
        {"series": f'enphase_battery_unit_{name}{{site_id="1", serial="{serial}"}}', "values": f"{value}x10"}
        for serial, values in states.items()
        for name, value in zip(("normal", "sleeping"), values, strict=True)
    ]
    expected = {
        'site_id="1", serial="B1"': codes["normal"],
        'site_id="1", serial="B2"': codes["sleeping"],
        'site_id="1", serial="B3"': codes["not normal"],
    }
    exprs = {"panel:battery_status": as_promql(item["targets"][0]["expr"])}
    promql_unit_test(tmp_path, input_series, exprs, {"panel:battery_status": expected})


# An energy divided by an energy, e.g. `/ sum by (site_id) (increase(x_joules_total[1d]))`: a share.
ENERGY_RATIO = re.compile(r"/\s*(?:\w*(?:\s+by\s*\([^)]*\))?\s*\(\s*)*\w*_joules")
# The rate of an energy counter: joules per second are watts.
ENERGY_RATE = re.compile(r"\b(?:rate|irate|deriv)\(\s*\w*_joules")


def expected_units(expr: str) -> set[str]:
    """Grafana units that fit what a query returns, judged by the unit suffix of its metric names."""
    if "_timestamp_seconds" in expr or "process_start_time_seconds" in expr:
        if "time() -" in expr or "- time()" in expr:  # an age, or the time left
            return {"s"}
        # Grafana's time units take milliseconds.
        return {"dateTimeFromNow", "dateTimeAsIso"} if "* 1000" in expr else set()
    if ENERGY_RATIO.search(expr):
        return {"percentunit"}
    if ENERGY_RATE.search(expr):
        return {"watt"}
    if "_joules" in expr:
        return {"kwatth"} if "/ 3600000" in expr else {"joule"}
    if "_watts" in expr:
        return {"watt"}
    if "_ratio" in expr:
        return {"percentunit"}
    if "_amperes" in expr:
        return {"amp"}
    if "_volts" in expr:
        return {"volt"}
    if "_duration_seconds" in expr or "process_cpu_seconds" in expr:
        return {"s", "percentunit"}
    # Counts, states and other dimensionless values.
    return {"none", "short", "reqps", "cps", "bytes"}


def test_expected_units():
    assert expected_units(
        'enphase_a_joules_total{x="1"} / 3600000\n  or enphase_b_joules_total / 3600000'
    ) == {"kwatth"}
    assert expected_units("increase(enphase_a_joules_total[1d] offset -1d) / 3600000") == {"kwatth"}
    assert expected_units("enphase_a_joules_total") == {"joule"}
    share = (
        "clamp(1 - sum by (site_id) (increase(enphase_a_joules_total[1d]))\n"
        "  / sum by (site_id) (increase(enphase_b_joules_total[1d])), 0, 1)"
    )
    assert expected_units(share) == {"percentunit"}
    assert expected_units(
        "increase(enphase_a_joules_total[1d]) / (increase(enphase_b_joules_total[1d]) > 0)"
    ) == {"percentunit"}
    assert expected_units("sum(rate(enphase_a_joules_total[4m])) or sum(enphase_b_power_watts)") == {"watt"}
    assert expected_units("time() - enphase_a_timestamp_seconds") == {"s"}


def test_grafana_provisioning():
    datasources = load_yaml(GRAFANA_PROVISIONING / "datasources" / "datasources.yml")["datasources"]
    by_uid = {source["uid"]: source for source in datasources}
    assert by_uid["prometheus"]["type"] == "prometheus"
    assert by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["influxdb"]["type"] == "influxdb"
    assert by_uid["influxdb"]["url"] == "http://influxdb:8086"
    assert by_uid["influxdb"]["jsonData"]["dbName"] == "enphase"
    providers = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "dashboards.yml")["providers"]
    assert [provider["options"]["path"] for provider in providers] == ["/var/lib/grafana/dashboards"]
    assert providers[0]["type"] == "file"
