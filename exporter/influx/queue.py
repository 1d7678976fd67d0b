"""A durable, bounded, first-in-first-out queue of line-protocol points, on disk.

Why SQLite: it gives atomic, crash-safe appends and deletes in one file with the standard library, so a point
either is in the queue or is not, whatever moment the process dies at. One row per point keeps the count
exact and lets the bound drop exactly the oldest points.

A queue that cannot be opened must not stop the exporter (``open_queue``): a file that is not a database is
moved aside and a new one started; a directory that cannot be used at all (a file in its place, a read-only
filesystem) leaves the points in memory, still sent, but not kept across a restart.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from exporter.private import make_private_directory

log = logging.getLogger(__name__)

FILE_NAME = "points.sqlite3"
# Once the queue is empty, a file with more free space than this is compacted: after a long outage it
# would otherwise keep its peak size for good.
COMPACT_ABOVE_BYTES = 1 << 20


class DiskQueue:
    """``directory=None``: the same queue in memory (the fallback of ``open_queue``)."""

    def __init__(self, directory: Path | None, max_bytes: int) -> None:
        self.path = directory / FILE_NAME if directory is not None else None
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        if directory is not None:
            make_private_directory(directory)
        self._db = sqlite3.connect(self.path or ":memory:", check_same_thread=False, isolation_level=None)
        try:
            # WAL with synchronous=FULL: a committed append survives a crash and a power cut.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS points "
                "(id INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL, size INTEGER NOT NULL)"
            )
            count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM points").fetchone()
        except sqlite3.Error:
            self._db.close()
            raise
        self._count, self._bytes = int(count), int(size)

    @property
    def on_disk(self) -> bool:
        return self.path is not None

    @property
    def points(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        return self._bytes

    def put(self, lines: list[str]) -> int:
        """Append points in order; returns how many of the oldest were dropped to stay within the bound."""
        if not lines:
            return 0
        rows = [(line, len(line.encode()) + 1) for line in lines]
        added = sum(size for _, size in rows)
        with self._lock:
            with self._transaction():
                self._db.executemany("INSERT INTO points (line, size) VALUES (?, ?)", rows)
                dropped, freed = self._drop_oldest(self._bytes + added - self.max_bytes)
            self._count += len(rows) - dropped
            self._bytes += added - freed
            return dropped

    def peek(self, limit: int) -> list[tuple[int, str]]:
        """The oldest ``limit`` points as (id, line), left in the queue until ``remove_through``."""
        with self._lock:
            return self._db.execute("SELECT id, line FROM points ORDER BY id LIMIT ?", (limit,)).fetchall()

    def remove_through(self, last_id: int) -> None:
        """Remove every point up to and including ``last_id`` (they were accepted, or given up on)."""
        with self._lock:
            with self._transaction():
                count, size = self._db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM points WHERE id <= ?", (last_id,)
                ).fetchone()
                self._db.execute("DELETE FROM points WHERE id <= ?", (last_id,))
            self._count -= count
            self._bytes -= size
            if self._count == 0:
                self._compact()

    def _compact(self) -> None:
        """Give the space of a drained backlog back to the filesystem (VACUUM, then empty the WAL)."""
        pages, page_size = (
            self._db.execute(f"PRAGMA {name}").fetchone()[0] for name in ("freelist_count", "page_size")
        )
        if pages * page_size < COMPACT_ABOVE_BYTES:
            return
        try:
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:  # a full disk, say: the points are gone already, which is what counts
            log.debug("Could not compact the InfluxDB queue: %s", error)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _drop_oldest(self, excess: int) -> tuple[int, int]:
        """Delete the oldest points until ``excess`` bytes are freed; returns (points, bytes) removed."""
        if excess <= 0:
            return 0, 0
        dropped = freed = last_id = 0
        for row_id, size in self._db.execute("SELECT id, size FROM points ORDER BY id"):
            if freed >= excess:
                break
            dropped, freed, last_id = dropped + 1, freed + size, row_id
        self._db.execute("DELETE FROM points WHERE id <= ?", (last_id,))
        return dropped, freed

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on error, so the in-memory counts never drift from the file."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:  # SQLite rolls back by itself on some errors, such as a full disk
            self._db.execute("ROLLBACK")


def open_queue(directory: Path, max_bytes: int) -> tuple[DiskQueue, str | None]:
    """The queue in ``directory``, or, when it cannot be used, one in memory and the reason, logged once.

    A file that is not a database (or a damaged one) is renamed ``points.sqlite3.corrupt-<time>`` and a new
    queue started beside it; its points may still be read back by hand."""
    path = directory / FILE_NAME
    try:
        return DiskQueue(directory, max_bytes), None
    except sqlite3.OperationalError as error:  # cannot open or write: not the file's content
        reason = str(error)
    except sqlite3.DatabaseError as error:  # "file is not a database", "database disk image is malformed"
        aside = path.with_name(f"{FILE_NAME}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            path.rename(aside)
            for suffix in ("-wal", "-shm"):  # they belong to the damaged file, not to a new one
                path.with_name(FILE_NAME + suffix).unlink(missing_ok=True)
            queue = DiskQueue(directory, max_bytes)
        except (OSError, sqlite3.Error) as again:
            reason = f"{error}; moving it aside failed: {again}"
        else:
            log.error(
                "The InfluxDB queue %s was damaged (%s): moved aside to %s; a new queue starts",
                path,
                error,
                aside,
            )
            return queue, None
    except OSError as error:  # the directory: a file in its place, a read-only filesystem, no permission
        reason = error.strerror or str(error)
    log.error(
        "The InfluxDB queue cannot use %s (%s): points wait in memory instead, and are lost if the exporter "
        "stops before InfluxDB takes them. Fix ENPHASE_INFLUX_QUEUE_DIR and restart",
        directory,
        reason,
    )
    return DiskQueue(None, max_bytes), reason
