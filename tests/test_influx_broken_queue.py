"""A queue that cannot be opened or written: the exporter starts and polls regardless, says so once in the
log and in a metric, and recovers where it can. Also the rest of the queue's hygiene: a private directory
whoever makes it, one log line per episode of refused points, and a file that shrinks once drained."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter import exposition
from exporter.app import build
from exporter.cli import main
from exporter.config import load
from exporter.influx.output import InfluxOutput
from exporter.influx.queue import DiskQueue
from exporter.influx.writers import WriteFailed
from exporter.render_influx import Point

MB = 1_000_000


def settings_with_queue(tmp_path: Path, queue_dir: Path):
    return load(
        {},
        {
            "ENPHASE_E_AUTH_TOKEN": "pasted-token",
            "ENPHASE_COOKIE": "pasted-cookie",
            "ENPHASE_BASE_URL": "http://127.0.0.1:9",
            "ENPHASE_SITE_ID": "1234567",
            "ENPHASE_SESSION_FILE": str(tmp_path / "session.json"),
            "ENPHASE_INFLUX_URL": "http://127.0.0.1:9",
            "ENPHASE_INFLUX_DATABASE": "enphase",
            "ENPHASE_INFLUX_QUEUE_DIR": str(queue_dir),
        },
    )


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


def test_a_queue_directory_that_is_a_file_does_not_stop_metrics(tmp_path, caplog):
    in_the_way = tmp_path / "queue"
    in_the_way.write_text("not a directory")
    exporter = build(settings_with_queue(tmp_path, in_the_way))
    body, _ = exposition.render(exporter.registry)
    assert b"enphase_influxdb_queue_on_disk 0.0" in body
    assert len(errors(caplog)) == 1 and str(in_the_way) in errors(caplog)[0]
    exporter.influx.put([Point("enphase_site", (("site_id", "1"),), {"v": 1.0}, 1)])
    assert exporter.influx.queue.points == 1  # still sent, from memory


def test_a_read_only_filesystem_does_not_stop_metrics(tmp_path, caplog, monkeypatch):
    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    exporter = build(settings_with_queue(tmp_path, tmp_path / "missing" / "queue"))
    monkeypatch.undo()
    assert exporter.registry.get_sample_value("enphase_influxdb_queue_on_disk") == 0
    assert len(errors(caplog)) == 1 and "Read-only file system" in errors(caplog)[0]


@pytest.mark.parametrize(
    "content",
    [b"GIF89a not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 8000],
    ids=["not-sqlite", "damaged-sqlite"],
)
def test_a_damaged_queue_file_is_moved_aside_and_a_new_queue_starts(tmp_path, caplog, content):
    queue_dir = tmp_path / "queue"
    queue_dir.mkdir()
    (queue_dir / "points.sqlite3").write_bytes(content)
    exporter = build(settings_with_queue(tmp_path, queue_dir))
    aside = list(queue_dir.glob("points.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == content
    assert len(errors(caplog)) == 1 and str(aside[0]) in errors(caplog)[0]
    assert exporter.registry.get_sample_value("enphase_influxdb_queue_on_disk") == 1
    exporter.influx.put([Point("enphase_site", (("site_id", "1"),), {"v": 1.0}, 1)])
    assert DiskQueue(queue_dir, MB).points == 1  # on disk, in the new file


def test_once_refuses_an_unusable_queue_directory_in_one_line(tmp_path, capsys, monkeypatch):
    in_the_way = tmp_path / "queue"
    in_the_way.write_text("not a directory")
    for name, value in {
        "ENPHASE_E_AUTH_TOKEN": "pasted-token",
        "ENPHASE_COOKIE": "pasted-cookie",
        "ENPHASE_BASE_URL": "http://127.0.0.1:9",
        "ENPHASE_SITE_ID": "1234567",
        "ENPHASE_SESSION_FILE": str(tmp_path / "session.json"),
        "ENPHASE_INFLUX_URL": "http://127.0.0.1:9",
        "ENPHASE_INFLUX_DATABASE": "enphase",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["once", "--influx-queue-dir", str(in_the_way)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"enphase-exporter: error: --influx-queue-dir (ENPHASE_INFLUX_QUEUE_DIR): cannot use {in_the_way}: "
        "Not a directory"
    ]


class Refusing:
    target = "http://127.0.0.1:1 database test"

    def __init__(self) -> None:
        self.refuse = True
        self.accepted: list[str] = []

    def write(self, body: str) -> None:
        if self.refuse:
            raise WriteFailed("rejected", "HTTP 400: field type conflict")
        self.accepted.extend(body.split("\n"))

    def close(self) -> None:
        pass


def point(value: int) -> Point:
    return Point("enphase_site", (("site_id", "1"),), {"production_power_watts": float(value)}, value)


def test_a_full_disk_drops_points_counted_with_a_reason_and_logged_once(tmp_path, caplog):
    registry = CollectorRegistry()
    queue = DiskQueue(tmp_path, MB)
    output = InfluxOutput(Refusing(), queue, registry)
    output.put([point(0)])
    pages = queue._db.execute("PRAGMA page_count").fetchone()[0]
    queue._db.execute(f"PRAGMA max_page_count={pages}")  # SQLite's own "database or disk is full"
    for poll in range(3):
        output.put([point(1000 + poll * 100 + index) for index in range(200)])
    dropped = registry.get_sample_value("enphase_influxdb_points_dropped_total", {"reason": "queue_error"})
    assert dropped == 600
    assert len(errors(caplog)) == 1 and "full" in errors(caplog)[0]
    queue._db.execute("PRAGMA max_page_count=1000000")
    output.put([point(1)])
    assert queue.points == 2
    assert any("600 were dropped meanwhile" in record.getMessage() for record in caplog.records)


def test_refused_points_log_one_line_per_episode_with_a_count(tmp_path, caplog):
    registry = CollectorRegistry()
    writer = Refusing()
    output = InfluxOutput(writer, DiskQueue(tmp_path, MB), registry, batch_size=4)
    output.put([point(value) for value in range(12)])
    for _ in range(100):
        if not output.queue.points:
            break
        output.send_once()
    writer.refuse = False
    output.put([point(99)])
    output.send_once()
    assert registry.get_sample_value("enphase_influxdb_points_dropped_total", {"reason": "rejected"}) == 12
    lines = errors(caplog)
    assert len(lines) == 2, lines  # it starts, and it ended: 12 in all
    assert "refused 12 points in all" in lines[1]


def test_the_session_directory_is_private_when_the_queue_makes_it(tmp_path):
    state = tmp_path / "state"
    DiskQueue(state / "enphase-exporter" / "influx-queue", MB).close()
    for directory in (state, state / "enphase-exporter", state / "enphase-exporter" / "influx-queue"):
        assert directory.stat().st_mode & 0o777 == 0o700, directory


def test_the_queue_file_shrinks_once_a_long_backlog_is_drained(tmp_path):
    queue = DiskQueue(tmp_path, 100 * MB)
    for first in range(0, 40_000, 5000):
        queue.put([f'm,site_id=1 v={index},pad="{"x" * 100}"' for index in range(first, first + 5000)])

    def size() -> int:
        return sum(path.stat().st_size for path in tmp_path.glob("points.sqlite3*"))

    peak = size()
    assert peak > 4 * MB
    while queue.points:
        queue.remove_through(queue.peek(5000)[-1][0])
    assert size() < MB, (peak, size())
    queue.put(["m,site_id=1 v=1"])
    assert [line for _, line in queue.peek(5)] == ["m,site_id=1 v=1"]
