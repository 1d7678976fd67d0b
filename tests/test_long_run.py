"""A short version of ``benchmarks/long_run.py``: 36 hours of polling, faults mixed in, time-lapsed.

The first twelve hours warm up (the whole history fetched, caches filled); then a full day runs, so that
both measurements fall at the same time of day.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK = Path(__file__).parent.parent / "benchmarks" / "long_run.py"


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("long_run", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["long_run"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_a_day_of_polling_with_faults_leaks_nothing_and_breaks_no_rule(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    long_run = load_benchmark()
    caplog.set_level(logging.ERROR, logger="exporter")  # pytest keeps every captured record in memory
    report = long_run.long_run(days=1.5, warm_up_days=0.5, seed=3, rate=0.05, state_dir=tmp_path)

    assert report.problems() == [], long_run.table(report)
    assert report.violations == [] and report.internal_errors == 0
    assert report.end.threads <= report.start.threads
    assert report.end.open_files <= report.start.open_files
    assert report.end.blocks - report.start.blocks <= long_run.BLOCKS_GROWTH_PER_DAY
    assert report.end.rss - report.start.rss <= long_run.RSS_GROWTH
    # The day really was a long run through faults: every source polled on schedule, most kinds of fault
    # met, sessions ended and renewed, and polls failed and recovered.
    assert (
        report.polls["ev_status"] >= 1400
        and report.polls["today"] >= 280
        and report.polls["daily_energy"] >= 24
    )
    kinds = {name.removeprefix("fault:") for name in report.events if name.startswith("fault:")}
    assert len(kinds) >= 7, kinds
    assert report.events["expiry:fault"] >= 3
    assert report.events["login:success"] <= 1 + report.events["expiry:fault"] + report.events["expiry:ttl"]
    assert 0 < sum(report.failed.values()) < sum(report.polls.values()) / 5
    assert report.slowest_scrape < 0.5
