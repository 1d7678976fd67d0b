"""``once --demo`` writing to real servers on 127.0.0.1, read back and compared with what /metrics says.

InfluxDB 1.x (Debian ``influxd``) takes the 1.x ``/write`` path; VictoriaMetrics (Debian ``victoria-metrics``)
takes the 2.x write API that influxdb-client speaks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import InfluxDB1, VictoriaMetrics, wait_until

from exporter.demo import DEMO_CHARGER_SERIAL, DEMO_SITE_ID
from exporter.lifetime import REFRESH_DAYS

# daily_energy asks for the UTC date REFRESH_DAYS + 1 days back through today: one point per day, and a day
# more where the site's local date (Amsterdam) is already tomorrow's.
RECENT_DAYS = (REFRESH_DAYS + 2, REFRESH_DAYS + 3)


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "once",
            "--demo",
            "--influx-queue-dir",
            str(tmp_path / "queue"),
            *args,
        ],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def metric(exposition: str, name: str, **labels: str) -> float:
    return samples(exposition)[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def influxdb(tmp_path: Path) -> Iterator[InfluxDB1]:
    server = InfluxDB1(tmp_path / "influxdb")
    server.start()
    server.query("CREATE DATABASE enphase")
    yield server
    server.stop()


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    server = VictoriaMetrics(tmp_path / "vm")
    server.start()
    yield server
    server.stop()


def test_v1_write_lands_in_influxdb_with_the_values_metrics_shows(
    tmp_path: Path, influxdb: InfluxDB1
) -> None:
    result = run(tmp_path, "--influx-url", influxdb.url, "--influx-database", "enphase")
    assert result.returncode == 0, result.stderr[-3000:]
    exposition = result.stdout
    written = metric(exposition, "enphase_influxdb_points_written_total")
    assert metric(exposition, "enphase_influxdb_queue_points") == 0

    # Two points: the status at the payload's server time, the summary at the charger's last report (and
    # the charge mode's, at the time of its poll: a string field of its own).
    rows = influxdb.rows(
        f"SELECT * FROM enphase_ev_charger WHERE serial = '{DEMO_CHARGER_SERIAL}' ORDER BY time"
    )
    status, summary = [row for row in rows if row["charge_mode"] is None]
    [mode] = [row["charge_mode"] for row in rows if row["charge_mode"] is not None]
    labels = {"site_id": DEMO_SITE_ID, "serial": DEMO_CHARGER_SERIAL}
    assert metric(exposition, "enphase_ev_charger_charge_mode", **labels, mode=mode) == 1
    charger = {
        **{k: v for k, v in summary.items() if v is not None},
        **{k: v for k, v in status.items() if v is not None},
    }
    for field in ("charging", "plugged_in", "session_energy_joules", "energy_delivered_joules_total"):
        assert charger[field] == pytest.approx(metric(exposition, f"enphase_ev_charger_{field}", **labels))

    # The battery's readings from today (the further sources' battery points come at their poll's time)
    [battery] = influxdb.rows("SELECT * FROM enphase_battery WHERE state_of_charge_ratio >= 0")
    assert battery["state_of_charge_ratio"] == pytest.approx(
        metric(exposition, "enphase_battery_state_of_charge_ratio", site_id=DEMO_SITE_ID)
    )
    last_report = metric(exposition, "enphase_site_last_report_timestamp_seconds", site_id=DEMO_SITE_ID)
    assert battery["time"] == int(last_report) * 10**9  # the upstream's time, not the time of the write

    # The day so far, summed from InfluxDB's buckets, is what the today gauge says.
    [today] = influxdb.rows(
        f"SELECT sum(production_joules) FROM enphase_site_interval WHERE time >= {_local_midnight(influxdb)}"
    )
    assert today["sum"] == pytest.approx(
        metric(exposition, "enphase_site_production_today_joules", site_id=DEMO_SITE_ID)
    )
    # Every point the exporter counted as written is in the database, once.
    stored = sum(_count(influxdb, measurement) for measurement in _measurements(influxdb))
    assert stored <= written  # today's buckets and the latest readings are written twice, and replaced
    # The last few days' buckets (older ones are backfill's): one daily point each, their buckets too
    assert _count(influxdb, "enphase_site_daily") in RECENT_DAYS
    assert _count(influxdb, "enphase_site_interval") > 96 * (REFRESH_DAYS + 1)
    # and the lifetime counters, from lifetime_energy, with the latest site readings
    [site] = influxdb.rows("SELECT last(production_joules_total) FROM enphase_site")
    assert site["last"] == pytest.approx(
        metric(exposition, "enphase_site_production_joules_total", site_id=DEMO_SITE_ID)
    )
    # The further sources' readings, in measurements of their own: the same values as /metrics.
    inverters = influxdb.rows("SELECT production_today_joules, serial FROM enphase_inverter")
    assert len(inverters) == 12 and all(
        row["production_today_joules"]
        == pytest.approx(
            metric(
                exposition,
                "enphase_inverter_production_today_joules",
                site_id=DEMO_SITE_ID,
                serial=row["serial"],
            )
        )
        for row in inverters
    )
    units = influxdb.rows("SELECT health_ratio, serial FROM enphase_battery_unit")
    assert {row["serial"]: row["health_ratio"] for row in units} == {
        row["serial"]: metric(
            exposition, "enphase_battery_unit_health_ratio", site_id=DEMO_SITE_ID, serial=row["serial"]
        )
        for row in units
    }


def test_running_twice_changes_nothing(tmp_path: Path, influxdb: InfluxDB1) -> None:
    first = run(tmp_path, "--influx-url", influxdb.url, "--influx-database", "enphase")
    assert first.returncode == 0, first.stderr[-3000:]
    before = _count(influxdb, "enphase_site_daily"), _count(influxdb, "enphase_site_interval")
    second = run(tmp_path, "--influx-url", influxdb.url, "--influx-database", "enphase")
    assert second.returncode == 0, second.stderr[-3000:]
    assert (_count(influxdb, "enphase_site_daily"), _count(influxdb, "enphase_site_interval")) == before


def test_a_missing_database_is_one_clear_error_and_a_metric(tmp_path: Path, influxdb: InfluxDB1) -> None:
    result = run(tmp_path, "--influx-url", influxdb.url, "--influx-database", "nosuchdb")
    assert result.returncode == 1
    assert 'database not found: "nosuchdb"' in result.stderr
    assert "ENPHASE_INFLUX_DATABASE" in result.stderr
    assert metric(result.stdout, "enphase_influxdb_write_failures_total", reason="not_found") >= 1
    assert metric(result.stdout, "enphase_influxdb_points_written_total") == 0
    assert metric(result.stdout, "enphase_influxdb_queue_points") > 0  # kept for when it exists


def test_v1_authentication(tmp_path: Path) -> None:
    server = InfluxDB1(tmp_path / "secured", auth=True)
    server.start()
    try:
        server.query("CREATE USER admin WITH PASSWORD 'right-password' WITH ALL PRIVILEGES", "")
        server.query("CREATE DATABASE enphase", "", auth=("admin", "right-password"))
        common = ("--influx-url", server.url, "--influx-database", "enphase", "--influx-username", "admin")
        wrong = run(tmp_path, *common, env={"ENPHASE_INFLUX_PASSWORD": "wrong-password"})
        assert wrong.returncode == 1
        assert "authorization failed" in wrong.stderr and "ENPHASE_INFLUX_USERNAME" in wrong.stderr
        assert "wrong-password" not in wrong.stderr + wrong.stdout
        assert metric(wrong.stdout, "enphase_influxdb_write_failures_total", reason="unauthorized") >= 1
        right = run(tmp_path, *common, env={"ENPHASE_INFLUX_PASSWORD": "right-password"})
        assert right.returncode == 0, right.stderr[-3000:]
        counted = server.query(
            "SELECT count(production_joules) FROM enphase_site_daily", auth=("admin", "right-password")
        )
        assert counted["results"][0]["series"][0]["values"][0][1] in RECENT_DAYS
    finally:
        server.stop()


def test_v2_write_lands_in_victoriametrics_with_the_values_metrics_shows(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    result = run(
        tmp_path,
        "--influx-url",
        victoria.url,
        "--influx-org",
        "home",
        "--influx-bucket",
        "energy",
        env={"ENPHASE_INFLUX_TOKEN": "any-token"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    wanted = ("enphase_ev_charger_session_energy_joules", DEMO_CHARGER_SERIAL)

    def exported() -> dict[tuple[str, str], dict[str, Any]]:
        found = {(i["metric"]["__name__"], i["metric"].get("serial", "")): i for i in victoria.export()}
        return found if wanted in found else {}

    series = wait_until(exported, 15, "the newest points to be searchable")  # VictoriaMetrics indexes lazily
    soc = series[("enphase_battery_state_of_charge_ratio", "")]
    assert soc["values"][-1] == pytest.approx(
        metric(result.stdout, "enphase_battery_state_of_charge_ratio", site_id=DEMO_SITE_ID)
    )
    energy = series[wanted]
    assert energy["values"][-1] == pytest.approx(
        metric(
            result.stdout,
            "enphase_ev_charger_session_energy_joules",
            site_id=DEMO_SITE_ID,
            serial=DEMO_CHARGER_SERIAL,
        )
    )
    daily = series[("enphase_site_daily_production_joules", "")]
    assert len(daily["timestamps"]) == len(set(daily["timestamps"])) in RECENT_DAYS  # one sample per day


def _measurements(server: InfluxDB1) -> list[str]:
    return [row["name"] for row in server.rows("SHOW MEASUREMENTS")]


def _count(server: InfluxDB1, measurement: str) -> int:
    """Points in a measurement: the count of its most frequent field (one field is in every point)."""
    [row] = server.rows(f'SELECT count(*) FROM "{measurement}"')
    return max(value for column, value in row.items() if column.startswith("count_"))


def _local_midnight(server: InfluxDB1) -> int:
    """Today's local midnight in ns: the time of the last daily point."""
    [day] = server.rows("SELECT last(production_joules) FROM enphase_site_daily")
    return int(day["time"])
