"""The InfluxDB output against a scripted writer: counting, order, back-off, and what each failure does."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter.influx.output import InfluxOutput
from exporter.influx.queue import DiskQueue
from exporter.influx.writers import WriteFailed
from exporter.poller import Polled
from exporter.render_influx import Point
from exporter.snapshot import SiteSnapshot
from exporter.sources.daily_energy import DailyEnergy
from exporter.sources.energy_day import EnergyDay


class ScriptedWriter:
    """Accepts or fails each request as the test says; keeps what it accepted, in order."""

    target = "http://127.0.0.1:1 database test"

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.requests = 0
        self.fail_with: Callable[[str], WriteFailed | None] = lambda body: None

    def write(self, body: str) -> None:
        self.requests += 1
        failure = self.fail_with(body)
        if failure is not None:
            raise failure
        self.accepted.extend(body.split("\n"))

    def close(self) -> None:
        pass


def point(value: int) -> Point:
    return Point("enphase_site", (("site_id", "1"),), {"production_power_watts": float(value)}, value)


def line(value: int) -> str:
    return point(value).line()


@pytest.fixture
def writer() -> ScriptedWriter:
    return ScriptedWriter()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def output(tmp_path: Path, writer: ScriptedWriter, registry: CollectorRegistry) -> InfluxOutput:
    return InfluxOutput(
        writer, DiskQueue(tmp_path, 1_000_000), registry, batch_size=4, jitter=lambda low, high: high
    )


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_a_point_counts_as_written_only_once_the_server_accepted_it(
    output: InfluxOutput, writer: ScriptedWriter, registry: CollectorRegistry
) -> None:
    writer.fail_with = lambda body: WriteFailed("unreachable", "connection refused")
    output.put([point(1), point(2)])
    assert output.send_once() > 0
    assert metric(registry, "enphase_influxdb_points_written_total") == 0
    assert metric(registry, "enphase_influxdb_queue_points") == 2
    assert metric(registry, "enphase_influxdb_write_failures_total", reason="unreachable") == 1
    assert metric(registry, "enphase_influxdb_last_success_timestamp_seconds") is None
    writer.fail_with = lambda body: None
    assert output.send_once() == 0
    assert metric(registry, "enphase_influxdb_points_written_total") == 2
    assert metric(registry, "enphase_influxdb_queue_points") == 0
    assert metric(registry, "enphase_influxdb_last_success_timestamp_seconds") is not None


def test_batches_go_in_order_and_a_failed_batch_is_sent_again_first(
    output: InfluxOutput, writer: ScriptedWriter
) -> None:
    output.put([point(value) for value in range(10)])
    failures = iter([WriteFailed("server_error", "HTTP 500: engine busy"), None, None, None])
    writer.fail_with = lambda body: next(failures)
    while output.queue.points:
        output.send_once()
    assert writer.accepted == [line(value) for value in range(10)]
    assert writer.requests == 4  # 4 + 4 + 2, and the failed first batch once more


def test_back_off_grows_to_its_ceiling_and_honours_retry_after(
    tmp_path: Path, writer: ScriptedWriter
) -> None:
    output = InfluxOutput(
        writer, DiskQueue(tmp_path, 1_000_000), CollectorRegistry(), max_backoff=8, jitter=lambda lo, hi: hi
    )
    output.put([point(1)])
    writer.fail_with = lambda body: WriteFailed("unreachable", "connection refused")
    assert [output.send_once() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    writer.fail_with = lambda body: WriteFailed("rate_limited", "HTTP 429", retry_after=42.0)
    assert output.send_once() == 42.0


def test_wrong_credentials_keep_the_points_and_say_what_to_fix_once(
    output: InfluxOutput,
    writer: ScriptedWriter,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer.fail_with = lambda body: WriteFailed("unauthorized", "HTTP 401: authorization failed")
    output.put([point(1)])
    with caplog.at_level(logging.DEBUG, logger="exporter.influx.output"):
        delays = [output.send_once() for _ in range(3)]
    assert delays == [300.0] * 3  # a person must act: no fast, endless retrying
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "ENPHASE_INFLUX_TOKEN" in errors[0].getMessage()
    assert "authorization failed" in errors[0].getMessage()
    assert metric(registry, "enphase_influxdb_write_failures_total", reason="unauthorized") == 3
    assert output.queue.points == 1  # kept for when the token is fixed


def test_a_missing_database_is_a_config_error(output: InfluxOutput, writer: ScriptedWriter) -> None:
    writer.fail_with = lambda body: WriteFailed("not_found", 'HTTP 404: database not found: "enphase"')
    output.put([point(1)])
    assert output.send_once() == 300.0
    assert output.queue.points == 1


def test_a_refused_point_is_isolated_and_dropped_while_the_others_are_written(
    output: InfluxOutput, writer: ScriptedWriter, registry: CollectorRegistry
) -> None:
    bad = line(5)
    writer.fail_with = lambda body: (
        WriteFailed("rejected", "HTTP 400: field type conflict") if bad in body else None
    )
    output.put([point(value) for value in range(8)])
    for _ in range(20):
        if not output.queue.points:
            break
        output.send_once()
    assert writer.accepted == [line(value) for value in range(8) if value != 5]
    assert metric(registry, "enphase_influxdb_points_dropped_total", reason="rejected") == 1
    assert metric(registry, "enphase_influxdb_points_written_total") == 7


def test_a_full_queue_drops_the_oldest_and_counts_them(tmp_path: Path, writer: ScriptedWriter) -> None:
    registry = CollectorRegistry()
    queue = DiskQueue(tmp_path, 1_000_000)
    queue.max_bytes = 3 * (len(line(1)) + 1)
    output = InfluxOutput(writer, queue, registry)
    output.put([point(1), point(2), point(3), point(4), point(5)])
    assert metric(registry, "enphase_influxdb_points_dropped_total", reason="queue_full") == 2
    output.send_once()
    assert writer.accepted == [line(3), line(4), line(5)]


def test_the_sender_thread_drains_the_queue_and_close_keeps_the_rest(
    tmp_path: Path, writer: ScriptedWriter
) -> None:
    output = InfluxOutput(writer, DiskQueue(tmp_path, 1_000_000), CollectorRegistry())
    output.start()
    output.put([point(1), point(2)])
    assert output.flush(10)
    assert writer.accepted == [line(1), line(2)]
    writer.fail_with = lambda body: WriteFailed("unreachable", "connection refused")
    output.put([point(3)])
    assert not output.flush(0.5)
    output.close()
    assert DiskQueue(tmp_path, 1_000_000).peek(5)[0][1] == line(3)  # waits for the next start


def energy_day(start: float, production: tuple[float | None, ...]) -> EnergyDay:
    return EnergyDay(start, 900, {"production": production}, {}, {}, (), {"production": sum(production)})


def daily_energy_poll(days: tuple[EnergyDay, ...], observed_at: float) -> Polled:
    site = SiteSnapshot("1234567", ("daily_energy",))
    return Polled(site, "daily_energy", observed_at, DailyEnergy(days))


def test_a_day_daily_energy_answers_as_before_is_not_queued_again_until_points_are_lost(
    tmp_path: Path, writer: ScriptedWriter
) -> None:
    queue = DiskQueue(tmp_path, 1_000_000)
    output = InfluxOutput(writer, queue, CollectorRegistry())
    monday, tuesday = 1774652400.0, 1774652400.0 + 86400
    day_one, day_two = energy_day(monday, (1.0, 2.0)), energy_day(tuesday, (3.0, 4.0))
    output(daily_energy_poll((day_one, day_two), tuesday + 7200))
    assert queue.points == 6  # two buckets and a daily total per day
    output(daily_energy_poll((day_one, day_two), tuesday + 10800))  # the same answer an hour later
    assert queue.points == 6
    revised = energy_day(tuesday, (3.0, 5.0))  # the cloud revised Tuesday's last bucket
    output(daily_energy_poll((day_one, revised), tuesday + 14400))
    assert queue.points == 9
    assert sum("production_joules=5" in text for _, text in queue.peek(100)) == 1
    queue.max_bytes = 1  # points are lost (a full queue): every day goes again at the next poll
    output(daily_energy_poll((day_one, revised), tuesday + 18000))
    queue.max_bytes = 1_000_000
    output(daily_energy_poll((day_one, revised), tuesday + 21600))
    times = {int(text.rsplit(" ", 1)[1]) // 10**9 for _, text in queue.peek(100)}
    assert times == {monday, monday + 900, tuesday, tuesday + 900}  # both days whole, again
