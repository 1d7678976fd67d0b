"""Each command of ``benchmarks/`` at a tiny size: it runs, and its table has the rows it promises.

The figures themselves are not checked here (they depend on the machine); the README's Performance section
has them, from full-size runs.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the benchmarks share benchmarks/tables.py
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def table_rows(output: str) -> dict[str, list[str]]:
    """First cell -> the other cells, for every row of the Markdown table(s) printed."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("| ") and not re.fullmatch(r"\|(---\|)+", line):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_scrape_cost(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert load("scrape_cost", monkeypatch).main(["--sites", "1,3", "--repeats", "1"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert set(rows) == {"sites", "1", "3"}
    per_site = int(rows["1"][0]) - 2  # the account's own series: enphase_auth_ok and the session expiry
    assert int(rows["3"][0]) == 2 + 3 * per_site
    assert all(float(cell) > 0 for row in ("1", "3") for cell in rows[row][1:])


def test_history(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert load("history", monkeypatch).main(["--days", "3", "--repeats", "1"]) == 0
    output = capsys.readouterr().out
    rows = table_rows(output)
    assert list(rows) == [
        "stages",
        "json.loads (reference)",
        "+ daily_energy.parse",
        "+ history_points",
        "+ Point.line (line protocol)",
    ]
    assert rows["json.loads (reference)"][1] == "1.0"
    assert "daily_energy for 3 days" in output


def test_upstream_cost(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert load("upstream_cost", monkeypatch).main(["--hours", "0.25"]) == 0
    rows = table_rows(capsys.readouterr().out)
    exporter, plain, _ = rows["requests per hour per site"]
    assert 0 < float(exporter) < float(plain)
    # The plain poller fetches every source every minute: 15 rounds of four, plus one login.
    assert rows["today requests"][1] == "15"
    assert rows["login requests"][:2] == ["1", "1"]
    assert float(rows["worst age, ev_status while idle (s)"][1]) == 60
    # 15 minutes of live stream: credentials at the start, and the renewal 60 s before the 900 s run out.
    assert rows["live_stream requests"][:2] == ["2", "0"]


def test_many_sites(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert load("many_sites", monkeypatch).main(["--sites", "3", "--seconds", "2"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert set(rows) == {"sites", "1", "3", "ratio, per site", "RSS MiB of", "1 site", "3 sites"}
    polls, failed, late, missed = (int(cell) for cell in rows["3"][4:8])
    assert len(rows["3 sites"]) == 10 and all(float(mib) > 10 for mib in rows["3 sites"])
    assert polls >= 3  # the first EV status and today polls of each site come within two seconds
    assert (failed, late, missed) == (0, 0, 0)


def test_live_stream(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert load("live_stream", monkeypatch).main(["--sites", "2", "--seconds", "4"]) == 0
    output = capsys.readouterr().out
    rows = table_rows(output)
    exporter_frames, reference_frames = (int(cell) for cell in rows["frames received"])
    assert exporter_frames >= 2 * 3 and reference_frames >= 2 * 3  # two sites, a frame a second each
    assert rows["CPU, share of one core"][0].endswith("%")
    assert float(rows["RSS MiB"][0]) > 10 and float(rows["RSS MiB"][1]) > 10
    assert int(rows["frames seen"][0]) >= 2 * 5  # the freshness phase: 10 s of two streams
    assert 0 <= float(rows["median"][0]) < 1


def test_concurrent_scrapes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    benchmark = load("concurrent_scrapes", monkeypatch)
    monkeypatch.setattr(
        sys, "argv", ["concurrent_scrapes.py", "--scrapes", "20", "--slow", "5", "--rounds", "1"]
    )
    benchmark.main()  # its exit status is the goal, which is for full-size runs on a quiet machine
    rows = table_rows(capsys.readouterr().out)
    assert rows["exporter"][:2] == ["20", "5"] and rows["exporter"][-1] == "0 of 20"
    assert set(rows) >= {"exporter", "reference"}


def test_queue_growth(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["--warm-up", "0.05", "--days", "0.1", "--live-hours", "0.1"]
    assert load("queue_growth", monkeypatch).main(arguments) == 0
    output = capsys.readouterr().out
    rows = table_rows(output)
    sizes = {name: int(cells[0].replace(",", "")) for name, cells in rows.items() if name.startswith("`")}
    # Polled points and live points both reach the queue, and the total is their sum.
    assert sizes["`enphase_site_live`"] > 0 and sizes["`enphase_site`"] > 0
    assert int(rows["all"][0].replace(",", "")) == sum(sizes.values())
    assert "holds" in output
