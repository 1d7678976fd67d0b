"""Shared fixtures, and the tiers of the suite.

Fixture files are payloads written by hand from the documented shapes (never captured data). Every test
module belongs to one tier, a pytest marker, so that each tier can be run on its own:

- ``unit``: pure code on hand-written payloads, scripted HTTP (``responses``) and fake clocks; seconds.
- ``component``: the exporter as a user runs it (subprocesses, the demo cloud, scripted clouds on 127.0.0.1).
- ``servers``: real third-party servers and tools the test command installs (Prometheus and promtool,
  InfluxDB, VictoriaMetrics, Mosquitto, amtool, Grafana's schema from npm, systemd-analyze).
- ``container``: the image and the compose stack on a Docker engine of the test's own.

``pytest -m unit`` is the quick loop; ``pytest -m "not container"`` skips the slowest part.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
# The demo's test harness (time-lapse, referee) lives with the benchmarks, which share it: ``harness``.
BENCHMARKS = str(Path(__file__).parent.parent / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.append(BENCHMARKS)

UNIT = {
    "test_battery_settings", "test_battery_status", "test_charge_mode", "test_client", "test_collector",
    "test_config", "test_daily_energy", "test_devices", "test_ev_status", "test_ev_summary",
    "test_further_sources_edges", "test_influx_queue", "test_inverters", "test_latest_power",
    "test_live_frame", "test_live_session", "test_live_stream", "test_poller", "test_render_influx",
    "test_scheduler", "test_site_status", "test_today", "test_values",
}  # fmt: skip
SERVERS = {
    "test_alert_rules", "test_backfill", "test_demo_chart", "test_docker", "test_grafana_schema",
    "test_influx_outage", "test_influx_servers", "test_influxql_dashboards", "test_live_mqtt",
    "test_live_shapes", "test_once", "test_prometheus_demo", "test_systemd_unit",
}  # fmt: skip
CONTAINER = {"test_docker_smoke"}
TIERS = (("container", CONTAINER), ("servers", SERVERS), ("unit", UNIT))  # any other module: component

# The test command runs the suite on four workers (pytest-xdist, ``-n 4`` in scripts/test.sh; pyproject's
# addopts: ``--dist loadfile --no-loadscope-reorder``): each module runs whole on one worker, its
# module-scoped servers started once, and modules are handed out in the order below. The longest go first,
# so that none of them is left running alone at the end: the modules measured slowest (seconds with -n 3
# on 2 cores), then the rest by tier: container, servers, component, unit. A new module needs no entry here.
SLOWEST = (
    "test_docker_smoke",  # 175 s: builds the image, brings the stack up on a dockerd of its own
    "test_backfill",  # 115 s
    "test_influx_outage",  # 105 s
    "test_secrets",  # 95 s
    "test_prometheus_demo",  # 90 s
    "test_faults",  # 70 s
    "test_live_mqtt",  # 60 s
    "test_influx_servers",  # 55 s
    "test_benchmarks",  # 50 s
    "test_once",  # 45 s
    "test_live_demo",  # 45 s
    "test_long_run",  # 40 s
    "test_parsers_property",  # 35 s
    "test_strange_cloud",  # 30 s
)
RUN_ORDER = ("container", "servers", "component", "unit")


def tier_of(module: str) -> str:
    return next((name for name, modules in TIERS if module in modules), "component")


def run_order(item: pytest.Item) -> tuple[int, int]:
    module = item.module.__name__ if item.module else ""
    if module in SLOWEST:
        return 0, SLOWEST.index(module)
    return 1, RUN_ORDER.index(tier_of(module))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(getattr(pytest.mark, tier_of(item.module.__name__ if item.module else "")))
    items.sort(key=run_order)  # stable: each module's tests keep their order


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Tests that run ``exporter.cli.main`` in-process point the root logger at that test's captured
    stderr; later tests would log into a closed stream."""
    root, scheduler = logging.getLogger(), logging.getLogger("apscheduler")  # logs.configure sets both
    handlers, level, scheduler_level = root.handlers[:], root.level, scheduler.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    scheduler.setLevel(scheduler_level)
