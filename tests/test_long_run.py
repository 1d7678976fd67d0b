"""A short version of ``benchmarks/long_run.py``: 36 hours of polling, faults mixed in, time-lapsed.

The first twelve hours warm up (the whole history fetched, caches filled); then a full day runs, so that
both measurements fall at the same time of day. It runs in a process of its own: in the test process, what
earlier tests left running would count too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).parent.parent / "benchmarks" / "long_run.py"
BLOCKS_GROWTH_PER_DAY = 1000  # as in the benchmark: a leak of one object per request would not fit


def test_a_day_of_polling_with_faults_leaks_nothing_and_breaks_no_rule() -> None:
    arguments = ["--days", "1.5", "--warm-up", "0.5", "--seed", "3", "--json"]
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), *arguments], capture_output=True, text=True, timeout=300
    )
    assert result.stdout.strip(), result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["problems"] == [], report["problems"] or result.stderr[-3000:]

    start, end = report["start"], report["end"]
    assert report["violations"] == [] and report["internal_errors"] == 0
    assert end["threads"] <= start["threads"] and end["open_files"] <= start["open_files"]
    assert end["blocks"] - start["blocks"] <= BLOCKS_GROWTH_PER_DAY
    assert end["rss"] - start["rss"] <= 16 * 2**20
    # It really was a long run through faults: every source polled on schedule, most kinds of fault met,
    # sessions ended and renewed, and polls failed and recovered.
    polls, events = report["polls"], report["events"]
    # (The trigger's jitter stretches each interval by up to a tenth, hence a little under 2160, 216 and 36.)
    assert polls["ev_status"] >= 1950 and polls["today"] >= 195 and polls["daily_energy"] >= 33
    assert polls["battery_status"] >= 65 and polls["inverters"] >= 33  # the further sources too
    kinds = {name.removeprefix("fault:") for name in events if name.startswith("fault:")}
    assert len(kinds) >= 7, kinds
    assert events["expiry:fault"] >= 3
    assert events["login:success"] <= 1 + events["expiry:fault"] + events.get("expiry:ttl", 0)
    assert 0 < sum(report["failed"].values()) < sum(polls.values()) / 5
    assert report["slowest_scrape"] < 0.5
