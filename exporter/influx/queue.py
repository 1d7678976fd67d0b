"""A durable, bounded, first-in-first-out queue of line-protocol points, on disk.

Why SQLite: it gives atomic, crash-safe appends and deletes in one file with the standard library, so a point
either is in the queue or is not, whatever moment the process dies at. One row per point keeps the count
exact and lets the bound drop exactly the oldest points.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

FILE_NAME = "points.sqlite3"


class DiskQueue:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / FILE_NAME
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # WAL with synchronous=FULL: a committed append survives a crash and a power cut.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS points (id INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL, "
            "size INTEGER NOT NULL)"
        )
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM points").fetchone()
        self._count, self._bytes = int(count), int(size)

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
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
