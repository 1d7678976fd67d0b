"""What every benchmark prints: the machine it ran on and a Markdown table, ready for the README."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line), "?"
    )
    return f"nproc {os.cpu_count()}, {model}, Python {platform.python_version()}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def median_seconds(*works: Callable[[], object], repeats: int) -> list[float]:
    """The median of ``repeats`` timings of each work. The works take turns, so that a burst of load from
    another process on a shared machine falls on all of them, and the median drops what is left of it."""
    timings: list[list[float]] = [[] for _ in works]
    for _ in range(repeats):
        for work, spent in zip(works, timings, strict=True):
            started = time.perf_counter()
            work()
            spent.append(time.perf_counter() - started)
    return [statistics.median(spent) for spent in timings]
