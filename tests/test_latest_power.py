from typing import Any

import pytest

from exporter.readings import Gauge
from exporter.snapshot import SiteSnapshot
from exporter.sources import latest_power
from exporter.sources.latest_power import LatestPower
from exporter.sources.source import Fetch

LIVE = {"latest_power": {"value": 752, "units": "W", "precision": 0, "time": 1773207600}}


def parse(value: Any = 752, units: Any = "W", time: Any = 1773207600) -> tuple[LatestPower, tuple[str, ...]]:
    parsed = latest_power.parse({"latest_power": {"value": value, "units": units, "time": time}})
    return parsed.value, parsed.problems


def test_the_live_shape():
    parsed = latest_power.parse(LIVE)
    assert parsed.value == LatestPower(752.0, 1773207600.0) and parsed.problems == ()


@pytest.mark.parametrize(
    ("value", "units", "watts"), [(0.752, "kW", 752.0), ("752", "w", 752.0), (-3, "W", -3.0)]
)
def test_units_are_read_per_answer(value: Any, units: str, watts: float):
    assert parse(value, units) == (LatestPower(watts, 1773207600.0), ())


@pytest.mark.parametrize("missing", ["N/A", "n/a", None])
def test_not_available_is_absent_without_a_problem(missing: Any):
    assert parse(value=missing, time=missing) == (LatestPower(None, None), ())


@pytest.mark.parametrize(
    ("value", "units", "problem"),
    [
        (5_000_000, "W", "latest_power.value: out of range: 5000000"),
        (-5000, "W", "latest_power.value: out of range: -5000"),
        (752, "hp", "latest_power.units: unknown unit 'hp'"),
        ("lots", "W", "latest_power.value: expected a number, got 'lots'"),
    ],
)
def test_broken_values_are_absent_and_counted(value: Any, units: str, problem: str):
    model, problems = parse(value, units)
    assert model.production_watts is None and problems == (problem,)


class Client:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def get_json(self, endpoint: str, path: str, params: Any = None, **options: Any) -> Any:
        self.calls.append((endpoint, path))
        return LIVE


def test_no_request_while_the_live_stream_delivers():
    client, site = Client(), SiteSnapshot("1234567", ("latest_power",))
    quiet = latest_power.fetch(Fetch(client, site, 0.0, live_delivering=True))  # type: ignore[arg-type]
    assert quiet.value is None and client.calls == []
    polled = latest_power.fetch(Fetch(client, site, 0.0, live_delivering=False))  # type: ignore[arg-type]
    assert polled.value == LatestPower(752.0, 1773207600.0)
    assert client.calls == [("latest_power", "/app-api/1234567/get_latest_power")]


def test_readings():
    site = SiteSnapshot("1234567", ("latest_power",))
    readings = list(latest_power.readings(site, LatestPower(752.0, None)))
    assert [(r.metric, r.labels, r.value) for r in readings if isinstance(r, Gauge)] == [
        ("enphase_site_latest_production_power_watts", {"site_id": "1234567"}, 752.0),
        ("enphase_site_latest_production_timestamp_seconds", {"site_id": "1234567"}, None),
    ]
