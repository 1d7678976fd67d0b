"""``--shard K/N``: N exporters split one account's sites, each site polled by exactly one of them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from exporter.demo import DEMO_SITE_ID
from exporter.shard import select, shard_of

SITE_IDS = tuple(str(1_000_000 + 7919 * n) for n in range(5000))


def test_a_site_goes_to_the_same_shard_in_every_process():
    # Python's hash() of a str is salted per process; two exporters using it would disagree.
    code = "from exporter.shard import shard_of; print([shard_of(str(n), 7) for n in range(50)])"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1
    assert runs.pop().strip() == str([shard_of(str(n), 7) for n in range(50)])


def test_every_site_is_in_exactly_one_shard():
    for count in (1, 2, 3, 10):
        shares = [select(SITE_IDS, (index, count)) for index in range(1, count + 1)]
        seen = Counter(site for share in shares for site in share)
        assert set(seen) == set(SITE_IDS)
        assert set(seen.values()) == {1}


def test_the_shares_are_roughly_even():
    count = 4
    sizes = [len(select(SITE_IDS, (index, count))) for index in range(1, count + 1)]
    expected = len(SITE_IDS) / count
    # A fair hash spreads 5000 ids within a few standard deviations (about 31 here) of 1250 each.
    assert all(abs(size - expected) < 0.08 * expected for size in sizes), sizes


def test_no_shard_keeps_every_site_in_order():
    assert select(("3", "1", "2"), None) == ("3", "1", "2")
    assert select(("3", "1", "2"), (1, 1)) == ("3", "1", "2")


def test_adding_a_site_moves_no_other_site():
    before = {site: shard_of(site, 5) for site in SITE_IDS[:100]}
    after = {site: shard_of(site, 5) for site in (*SITE_IDS[:100], "42")}
    assert all(after[site] == shard for site, shard in before.items())


def _once(tmp_path: Path, shard: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    return subprocess.run(
        [sys.executable, "-m", "exporter", "once", "--demo", "--shard", shard],
        env={**clean, "ENPHASE_SESSION_FILE": str(tmp_path / "session.json")},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_once_on_the_demo_polls_its_one_site_in_exactly_one_of_two_shards(tmp_path):
    owner = shard_of(DEMO_SITE_ID, 2)
    runs = {index: _once(tmp_path, f"{index}/2") for index in (1, 2)}
    site_line = f'enphase_up{{site_id="{DEMO_SITE_ID}"}}'
    for index, run in runs.items():
        assert run.returncode == 0, run.stderr
        polled = 1 if index == owner else 0
        assert f"shard {index}/2: polling {polled} of 1 sites" in run.stderr
        assert (site_line in run.stdout) == (index == owner)
