"""The metric catalog is a contract: every listed metric is documented, and all that is exported too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from catalog import ADDITIONS, CATALOG
from fixture_cloud import FixtureCloud, pasted_headers
from test_once import run_once

README = (Path(__file__).parent.parent / "README.md").read_text()


def documented() -> set[str]:
    return set(re.findall(r"^\| `(enphase_[a-z_]+)` \|", README, re.M))


@pytest.mark.parametrize("name", CATALOG)
def test_every_catalog_metric_is_documented_in_the_readme(name):
    assert name in documented()


@pytest.mark.parametrize("name", ADDITIONS)
def test_every_added_metric_is_documented_and_in_the_changelog(name):
    assert name in documented()
    assert f"`{name}`" in README.split("## Changelog", 1)[1]


@pytest.fixture(scope="module")
def exposition(tmp_path_factory) -> str:
    """``once`` against live-shaped fixtures: what a user's first run prints."""
    with FixtureCloud() as cloud:
        env = pasted_headers(cloud)
        result = run_once(env, tmp_path_factory.mktemp("once"))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_everything_once_prints_is_documented(exposition):
    families = set(re.findall(r"^# TYPE (\S+) ", exposition, re.M))
    assert families
    undocumented = {
        name for name in families if name not in documented() and f"{name}_total" not in documented()
    }
    assert not undocumented


def test_catalog_metrics_are_all_produced_from_live_shaped_payloads(exposition):
    samples = {
        line.split("{")[0].split(" ")[0] for line in exposition.splitlines() if not line.startswith("#")
    }
    produced = samples | {
        name.rsplit("_", 1)[0] for name in samples if name.endswith(("_bucket", "_count", "_sum"))
    }
    # Only shown when something happens: a downward revision. (The pasted token is a JWT with its expiry.)
    event_only = {"enphase_counter_regressions_total"}
    assert set(CATALOG) - produced == event_only
