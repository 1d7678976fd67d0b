"""A 20-second version of ``benchmarks/hostile_run.py``: ``serve --demo`` whose every source payload carries
hostile strings (lone surrogates, control characters, quotes, newlines, 20,000 characters), scraped twice a
second. Every scrape must be a 200 that decodes as UTF-8 and parses; the exporter logs no traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).parent.parent / "benchmarks" / "hostile_run.py"


def test_metrics_answers_every_scrape_while_every_cloud_string_is_hostile() -> None:
    arguments = ["--seconds", "20", "--faults", "hostile_strings", "--rate", "1", "--every", "0.5"]
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), *arguments], capture_output=True, text=True, timeout=180
    )
    row = next(line for line in result.stdout.splitlines() if line.startswith("| 20 |"))
    _, _, scrapes, failed, hostile, _, status, tracebacks = (
        cell.strip() for cell in row.strip("|").split("|")
    )
    assert int(scrapes) >= 20 and int(failed) == 0, result.stdout
    assert int(hostile) >= 10, result.stdout  # the hostile names did reach /metrics (made safe)
    assert (status, tracebacks) == ("0", "0"), result.stdout
    assert result.returncode == 0
