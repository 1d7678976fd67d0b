"""``backfill``: chunks, waiting out limits, the OpenMetrics history, and whole runs against real servers."""

from __future__ import annotations

import io
import itertools
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from servers import InfluxDB1, VictoriaMetrics, wait_until
from stack import Prometheus

from exporter.backfill import History, Span, _lifetime_before, to_openmetrics
from exporter.client import BudgetExhausted, RateLimited
from exporter.demo import DEMO_SITE_ID
from exporter.render_openmetrics import SiteHistory, write
from exporter.sources import lifetime_energy
from exporter.sources.energy_day import EnergyDay

WH = 3600.0
YEAR_AGO = (date.today() - timedelta(days=365)).isoformat()


# -- the parts ---------------------------------------------------------------------------------------------


def test_a_span_is_cut_into_month_chunks_that_cover_it_once() -> None:
    span = Span(date(2025, 1, 1), date(2025, 12, 31))
    chunks = list(span.chunks())
    assert chunks[0] == Span(date(2025, 1, 1), date(2025, 1, 31))
    assert sum(chunk.days for chunk in chunks) == 365
    assert all(b.since == a.until + timedelta(days=1) for a, b in itertools.pairwise(chunks))
    assert chunks[-1].until == date(2025, 12, 31)
    assert list(Span(date(2025, 1, 1), date(2025, 1, 1)).chunks()) == [
        Span(date(2025, 1, 1), date(2025, 1, 1))
    ]


class ScriptedClient:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, str] | None]] = []

    def get_json(self, endpoint: str, path: str, params: dict[str, str] | None = None) -> Any:
        self.calls.append((endpoint, params))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_rate_limits_and_a_spent_budget_are_waited_out_not_fatal() -> None:
    day = {"start_time": 1774652400, "interval_length": 900, "production": [1, 2]}
    client = ScriptedClient(
        [
            {"start_date": "2026-01-01", "production": [1000]},  # lifetime_energy: what the site measures
            RateLimited("daily_energy", retry_in=42.0, resume_at=1e9),
            BudgetExhausted("spent"),
            {"stats": [day]},
        ]
    )
    waits: list[float] = []
    reasons: list[str] = []
    history = History(client, on_wait=reasons.append, sleep=waits.append)  # type: ignore[arg-type]
    [fetched] = history.days("1", Span(date(2026, 3, 28), date(2026, 3, 28)))
    assert fetched.channels["production"] == (WH, 2 * WH)
    assert waits == [42.0, 60.0]
    assert "rate limited" in reasons[0] and "ENPHASE_REQUEST_BUDGET" in reasons[1]
    assert client.calls[-1] == ("daily_energy", {"start_date": "2026-03-28", "end_date": "2026-03-28"})
    assert client.calls[0] == ("lifetime_energy", None)  # asked once per site, whatever the chunks
    client.answers.append({"stats": []})
    history.days("1", Span(date(2026, 3, 27), date(2026, 3, 27)))
    assert [endpoint for endpoint, _ in client.calls].count("lifetime_energy") == 1


def test_the_counters_of_a_backfill_start_from_the_days_before_it_in_lifetime_energy() -> None:
    """No daily_energy request for the days before --since: lifetime_energy has their totals."""
    lifetime = lifetime_energy.parse(
        {"start_date": "2026-03-20", "production": [10, None, 30, 40], "consumption": [1, 1, 1, 1]}
    ).value
    before = _lifetime_before(lifetime, None, date(2026, 3, 23))
    assert before == {"production": pytest.approx(40 * WH), "consumption": pytest.approx(3 * WH)}
    assert _lifetime_before(lifetime, date(2026, 3, 22), date(2026, 3, 23)) == {
        "production": pytest.approx(30 * WH),
        "consumption": pytest.approx(WH),
    }
    assert _lifetime_before(lifetime, None, date(2026, 3, 20)) == {}  # --since is the first day


def energy_day(start: float, production: tuple[float | None, ...], soc: tuple[float, ...] = ()) -> EnergyDay:
    return EnergyDay(
        start_timestamp=start,
        interval_seconds=900,
        channels={"production": tuple(p * WH if p is not None else None for p in production)},
        flows={("solar", "home"): tuple(p * WH if p is not None else None for p in production)},
        loads={},
        state_of_charge=soc,
        channel_totals={"production": sum(p for p in production if p is not None) * WH},
    )


def test_openmetrics_history_samples_each_bucket_end_like_the_live_series() -> None:
    days = [energy_day(0.0, (1, None, 3), soc=(0.5, 0.6, 0.7)), energy_day(2700.0, (4, 5))]
    out = io.StringIO()
    samples = write(out, [SiteHistory("7", days, base_joules={"production": 100.0})], cutoff=4500.0)
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[-1] == "# EOF"
    assert samples == len([line for line in lines if not line.startswith("#")])
    produced = [line for line in lines if line.startswith("enphase_site_production_today_joules{")]
    # Running within each day; the None bucket has no sample; the second day starts again from 0.
    assert produced == [
        'enphase_site_production_today_joules{site_id="7"} 3600.0 900',
        'enphase_site_production_today_joules{site_id="7"} 14400.0 2700',
        'enphase_site_production_today_joules{site_id="7"} 14400.0 3600',
        'enphase_site_production_today_joules{site_id="7"} 32400.0 4500',
    ]
    lifetime = [line for line in lines if line.startswith("enphase_site_production_joules_total{")]
    assert lifetime[-1] == 'enphase_site_production_joules_total{site_id="7"} 46900.0 4500'  # base + 13 Wh
    assert "# TYPE enphase_site_production_joules counter" in lines
    power = [line for line in lines if line.startswith("enphase_site_production_power_watts{")]
    assert power[0] == 'enphase_site_production_power_watts{site_id="7"} 4.0 900'  # 1 Wh in 900 s
    assert 'enphase_battery_state_of_charge_ratio{site_id="7"} 0.7 2700' in lines
    assert 'enphase_site_energy_flow_today_joules{site_id="7",source="solar",sink="home"} 3600.0 900' in lines
    # Each family once, as one block.
    types = [line for line in lines if line.startswith("# TYPE")]
    assert len(types) == len(set(types))


# -- whole runs, as a user runs them -----------------------------------------------------------------------


def backfill(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    return subprocess.run(
        [sys.executable, "-m", "exporter", "backfill", "--demo", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )


@pytest.fixture(scope="module")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    server = InfluxDB1(tmp_path_factory.mktemp("influxdb"))
    server.start()
    server.query("CREATE DATABASE enphase")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    server = VictoriaMetrics(tmp_path_factory.mktemp("victoria"))
    server.start()
    yield server
    server.stop()


def influx_history(influxdb: InfluxDB1) -> tuple[list[Any], list[Any]]:
    days = influxdb.rows("SELECT production_joules, charge_joules FROM enphase_site_daily")
    buckets = influxdb.rows("SELECT production_joules, state_of_charge_ratio FROM enphase_site_interval")
    return days, buckets


def test_a_year_lands_in_influxdb_and_running_it_again_changes_nothing(
    tmp_path: Path, influxdb: InfluxDB1
) -> None:
    args = ("--since", YEAR_AGO, "--influx-url", influxdb.url, "--influx-database", "enphase")
    first = backfill(tmp_path, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    # One request for the site's start date, then one per 31 days: well within the hourly budget.
    assert f"in {1 + math.ceil(366 / 31)} requests" in first.stderr
    days, buckets = influx_history(influxdb)
    assert len(days) == 366  # a year ago up to and including today
    assert len(buckets) >= 365 * 92  # 92 to 100 buckets a day, and today so far
    assert all(day["production_joules"] is not None for day in days)
    second = backfill(tmp_path, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    again_days, again_buckets = influx_history(influxdb)
    assert again_days == days  # the same points, same times, same values: nothing duplicated
    assert len(again_buckets) == len(buckets)


def test_a_year_lands_in_victoriametrics_and_running_it_again_changes_nothing(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    args = ("--since", YEAR_AGO, "--influx-url", victoria.url, "--influx-org", "o", "--influx-bucket", "b")
    first = backfill(tmp_path, *args, env={"ENPHASE_INFLUX_TOKEN": "t"})
    assert first.returncode == 0, first.stderr[-3000:]
    name = '{__name__="enphase_site_daily_production_joules"}'
    days = wait_until(
        lambda: [s for s in victoria.export(name) if len(s["timestamps"]) == 366], 20, "366 days"
    )
    second = backfill(tmp_path, *args, env={"ENPHASE_INFLUX_TOKEN": "t"})
    assert second.returncode == 0, second.stderr[-3000:]
    again = victoria.export(name)
    assert again[0]["timestamps"] == days[0]["timestamps"]
    assert again[0]["values"] == days[0]["values"]


class HistoryPrometheus(Prometheus):
    """A Prometheus that keeps old blocks: the default retention (15 days) would delete the history."""

    def command(self) -> list[str]:
        return [*super().command(), "--storage.tsdb.retention.time=100y"]


def test_openmetrics_history_loads_into_prometheus_with_the_same_numbers_as_influxdb(
    tmp_path: Path, influxdb: InfluxDB1
) -> None:
    """promtool writes a 2-hour block per 2 hours of history, so a week here keeps the test quick; the README
    gives the figures of a whole year."""
    since = (date.today() - timedelta(days=8)).isoformat()
    until = (date.today() - timedelta(days=1)).isoformat()
    result = backfill(
        tmp_path, "--since", since, "--until", until, "--format", "openmetrics", "--output", "h.om"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "promtool tsdb create-blocks-from openmetrics" in result.stderr
    data = tmp_path / "prometheus" / "data"
    loaded = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", str(tmp_path / "h.om"), str(data)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    influx = backfill(
        tmp_path,
        "--since",
        since,
        "--until",
        until,
        "--influx-url",
        influxdb.url,
        "--influx-database",
        "enphase",
    )
    assert influx.returncode == 0, influx.stderr[-3000:]

    prometheus = HistoryPrometheus(tmp_path / "prometheus", target="127.0.0.1:9")
    prometheus.start()
    try:
        # The day's production at the end of each day: the gauge's last sample before the next midnight.
        for day in influxdb.rows(
            f"SELECT production_joules FROM enphase_site_daily WHERE time >= '{since}T00:00:00Z' - 1d"
            f" AND time < '{until}T00:00:00Z'"
        ):
            midnight = day["time"] / 1e9
            next_midnight = midnight + 86400  # DST days end an hour earlier or later; both carry the total
            at = _last_sample_time(
                prometheus, "enphase_site_production_today_joules", midnight, next_midnight
            )
            [value] = prometheus.api("query", query="enphase_site_production_today_joules", time=at)["result"]
            assert float(value["value"][1]) == pytest.approx(day["production_joules"]), _utc(midnight)
            assert value["metric"]["site_id"] == DEMO_SITE_ID
        counters = prometheus.api(
            "query", query="enphase_battery_charge_joules_total", time=_yesterday_noon()
        )
        assert float(counters["result"][0]["value"][1]) > 0
    finally:
        prometheus.stop()


def _last_sample_time(prometheus: Prometheus, metric: str, after: float, before: float) -> float:
    found = prometheus.api("query_range", query=metric, start=after + 1, end=before, step=900)["result"]
    assert found, f"no {metric} between {_utc(after)} and {_utc(before)}"
    return float(found[0]["values"][-1][0])


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _yesterday_noon() -> float:
    return datetime.combine(date.today() - timedelta(days=1), datetime.min.time(), UTC).timestamp() + 43200


def test_bad_arguments_are_one_line_and_status_2(tmp_path: Path) -> None:
    for args, message in (
        (("--since", "2026-13-01", "--format", "openmetrics", "--output", "x"), "--since: expected a date"),
        (
            ("--since", YEAR_AGO, "--until", "2030-01-01", "--format", "openmetrics", "--output", "x"),
            "future",
        ),
        (("--since", YEAR_AGO, "--format", "openmetrics"), "needs --output FILE"),
        (("--since", YEAR_AGO), "ENPHASE_INFLUX_URL: backfill writes to InfluxDB"),
    ):
        result = backfill(tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_an_openmetrics_history_starts_at_the_history_start_setting(tmp_path: Path) -> None:
    """Days before ENPHASE_HISTORY_START would put the backfilled counters above the live ones where they
    meet, which Prometheus reads as a reset."""
    lifetime = {"start_date": "2026-03-20", "production": [10, 20, 30, 40, 50, 60, 70, 80]}
    day = {"start_time": 1774566000, "interval_length": 900, "production": [5]}  # 2026-03-27 in UTC+1
    client = ScriptedClient([lifetime, {"stats": [day]}])
    history = History(client)  # type: ignore[arg-type]
    path = tmp_path / "h.om"
    to_openmetrics(history, path, ("1",), Span(date(2026, 3, 21), date(2026, 3, 27)), date(2026, 3, 27), 1e10)
    assert [params for _, params in client.calls] == [
        None,
        {"start_date": "2026-03-27", "end_date": "2026-03-27"},
    ]
    counters = [
        line for line in path.read_text().splitlines() if line.startswith("enphase_site_production_joules")
    ]
    assert [float(line.split()[1]) for line in counters] == [5 * WH]  # from 03-27 on, as the live counter
