"""scripts/demo_chart.py: the README's picture is drawn from what a real Prometheus answers.

The script is run for the first hours of a demo day (the whole day takes longer and adds nothing); it
needs Debian's ``prometheus`` and ``promtool``.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest

from exporter.demo import simulation as sim

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "demo_chart.py"
PICTURE = ROOT / "docs" / "demo-day.svg"
SVG = "{http://www.w3.org/2000/svg}"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_chart", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def polylines(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Series key (the polyline's class) -> every point drawn for it, in order."""
    found: dict[str, list[tuple[float, float]]] = {}
    for line in ET.parse(path).getroot().iter(f"{SVG}polyline"):
        points = [
            (float(x), float(y)) for x, y in (pair.split(",") for pair in line.get("points", "").split())
        ]
        found.setdefault(line.get("class", ""), []).extend(points)
    return found


def test_the_chart_is_drawn_from_prometheus_answers(tmp_path: Path) -> None:
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run the README's test command (scripts/test.sh)")
    chart = load_script()
    out = tmp_path / "chart.svg"
    data = chart.chart(date(2024, 6, 23), out, hours=3)

    # What Prometheus returned is the demo's: the reserve is the simulated one, the state of charge a
    # percentage, and the night has no sun.
    assert {value for _, value in data["reserve"]} == {float(sim.BACKUP_RESERVE_PERCENT)}
    assert all(0 <= value <= 100 for _, value in data["soc"])
    assert all(value == 0 for _, value in data["solar"])
    assert all(value > 0 for _, value in data["home"])
    # One point a minute, less what the exporter had not settled yet just after midnight.
    assert 120 <= len(data["soc"]) <= 3 * 60 + 1

    # Every series is drawn, point for point, left to right in time, and a higher value higher up.
    drawn = polylines(out)
    for series in [*chart.POWER, *chart.CHARGE]:
        points, answered = drawn[series.key], data[series.key]
        assert len(points) == len(answered), series.key
        for (x1, y1), (x2, y2), (t1, v1), (t2, v2) in zip(
            points, points[1:], answered, answered[1:], strict=False
        ):
            assert x1 < x2 and t1 < t2
            assert (y1 > y2) == (v1 < v2) or v1 == v2, series.key


def test_the_readme_shows_the_committed_picture() -> None:
    root = ET.parse(PICTURE).getroot()
    assert root.tag == f"{SVG}svg"
    title = next(root.iter(f"{SVG}text")).text or ""
    assert title.endswith(f"{load_script().DEFAULT_DAY:%B %Y}")
    assert "docs/demo-day.svg" in (ROOT / "README.md").read_text(encoding="utf-8")
