"""The disk queue: order, the byte bound (oldest dropped first), and survival across a reopen."""

from __future__ import annotations

from pathlib import Path

from exporter.influx.queue import DiskQueue

MB = 1_000_000


def lines(first: int, count: int, width: int = 10) -> list[str]:
    return [f"m,site_id=1 v={index:0{width}d}" for index in range(first, first + count)]


def test_points_come_out_in_the_order_they_went_in(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path, MB)
    queue.put(lines(0, 3))
    queue.put(lines(3, 2))
    assert [line for _, line in queue.peek(10)] == lines(0, 5)
    assert queue.points == 5


def test_only_what_was_accepted_leaves(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path, MB)
    queue.put(lines(0, 5))
    batch = queue.peek(2)
    queue.remove_through(batch[-1][0])
    assert [line for _, line in queue.peek(10)] == lines(2, 3)
    assert queue.points == 3
    assert queue.bytes == sum(len(line) + 1 for line in lines(2, 3))


def test_points_survive_a_restart(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path, MB)
    queue.put(lines(0, 4))
    queue.remove_through(queue.peek(1)[0][0])
    queue.close()
    again = DiskQueue(tmp_path, MB)
    assert again.points == 3
    assert again.bytes == sum(len(line) + 1 for line in lines(1, 3))
    assert [line for _, line in again.peek(10)] == lines(1, 3)
    again.put(lines(4, 1))
    assert [line for _, line in again.peek(10)][-1] == lines(4, 1)[0]


def test_beyond_the_bound_the_oldest_points_are_dropped_and_counted(tmp_path: Path) -> None:
    one = len(lines(0, 1)[0]) + 1
    queue = DiskQueue(tmp_path, MB)
    queue.max_bytes = 10 * one  # the setting's floor is 1MB; the rule is the same at any size
    assert queue.put(lines(0, 8)) == 0
    assert queue.put(lines(8, 5)) == 3
    assert queue.points == 10
    assert queue.bytes == 10 * one
    assert [line for _, line in queue.peek(20)] == lines(3, 10)


def test_the_queue_file_is_private(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path / "q", MB)
    assert (tmp_path / "q").stat().st_mode & 0o077 == 0
    queue.put(lines(0, 1))
    assert queue.path.exists()
