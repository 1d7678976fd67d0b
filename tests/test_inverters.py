"""inverters.json (paged) and inverter_data_x/energy.json: the two parsers, joining them, the site's local
date, the pages fetch asks for, partial failure, and the readings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from conftest import load_fixture

from exporter.client import SessionExpired, UpstreamUnavailable
from exporter.readings import Gauge, Info
from exporter.snapshot import SiteSnapshot
from exporter.sources import inverters
from exporter.sources.energy_day import EnergyDay
from exporter.sources.inverters import Inverter, InverterPage, Inverters
from exporter.sources.source import Fetch, Incomplete
from exporter.sources.today import Today
from exporter.values import REPLACEMENT, PayloadError

WH = 3600.0
SITE_ID = "1234567"
LIST_PATH = "/app-api/1234567/inverters.json"
ENERGY_PATH = "/systems/1234567/inverter_data_x/energy.json"
NOW = datetime(2026, 3, 28, 12, 0, tzinfo=UTC).timestamp()
PAGES = {0: "inverters_live_page1.json", 2: "inverters_live_page2.json", 4: "inverters_live_page3.json"}


def page(name: str) -> Any:
    return inverters.parse_page(load_fixture(name))


def inverter(serial: str, id: str | None = None, **fields: Any) -> Inverter:
    values: dict[str, Any] = {"model": None, "array": None, "normal": None, "last_report_timestamp": None}
    return Inverter(serial=serial, id=id, **{**values, **fields})


def today(offset: float | None = None, midnight: float | None = None) -> Today:
    day = None if midnight is None else EnergyDay(midnight, 900, {}, {}, {}, (), {})
    return Today(
        utc_offset_seconds=offset,
        last_report_timestamp=None,
        state_of_charge_ratio=None,
        backup_reserve_ratio=None,
        very_low_soc_ratio=None,
        charge_from_grid=None,
        profile=None,
        day=day,
        power_watts={},
        power_interval_end_timestamp=None,
    )


def site(today_: Today | None = None) -> SiteSnapshot:
    return SiteSnapshot(site_id=SITE_ID, sources=("inverters",), today=today_)


# --- inverters.json, one page


def test_a_page_in_full():
    parsed = page("inverters_live_page1.json")
    assert parsed.problems == ()
    assert parsed.value == InverterPage(
        total=6,
        items=2,
        inverters=(
            Inverter("482012340001", "70001", "IQ8PLUS-72-2-US", "South roof", True, 1774674600.0),
            Inverter("482012340002", "70002", "IQ8PLUS-72-2-US", "South roof", False, 1774600000.0),
        ),
    )


def test_na_status_and_report_are_absent_unsafe_text_made_safe_non_objects_counted():
    parsed = page("inverters_live_page2.json")
    assert parsed.value.items == 2  # the string counts for the next offset, though it is no inverter
    (third,) = parsed.value.inverters
    assert (third.normal, third.last_report_timestamp) == (None, None)
    assert third.array == "East" + REPLACEMENT + "roof"
    assert len(parsed.problems) == 2, parsed.problems


def test_an_inverter_without_id_is_kept_one_without_serial_is_left_out():
    parsed = page("inverters_live_page3.json")
    assert [(i.serial, i.id, i.normal) for i in parsed.value.inverters] == [("482012340004", None, True)]
    assert len(parsed.problems) == 1


@pytest.mark.parametrize(
    ("total", "expected", "problems"),
    [(None, None, 0), (3, 3, 0), ("3", 3, 0), (-1, None, 1), (2.5, None, 1), ("many", None, 1)],
)
def test_total(total: Any, expected: int | None, problems: int):
    body: dict[str, Any] = {"inverters": []}
    if total is not None:
        body["total"] = total
    parsed = inverters.parse_page(body)
    assert parsed.value.total == expected
    assert len(parsed.problems) == problems + (1 if total is None else 0)  # a missing total is drift too


@pytest.mark.parametrize("payload", [[], "x", {"total": 3}, {"inverters": {"a": 1}}])
def test_a_page_without_a_list_of_inverters_is_not_understood(payload: Any):
    with pytest.raises(PayloadError):
        inverters.parse_page(payload)


# --- inverter_data_x/energy.json


def test_energy_is_wh_for_the_day_made_joules_broken_values_counted_and_absent():
    parsed = inverters.parse_energy(load_fixture("inverter_energy_live.json"))
    assert parsed.value == {"70001": 1520 * WH, "482012340004": 980.5 * WH, "99999": 100 * WH}
    # -5 Wh and 12 kWh (more than a microinverter makes in a day); "N/A" is no problem
    assert len(parsed.problems) == 2, parsed.problems


def test_energy_bounds_are_inclusive_and_null_is_absent():
    parsed = inverters.parse_energy(
        {"production": {"a": 0, "b": 10_000, "c": None, "d": 10_000.5, "e": True}}
    )
    assert parsed.value == {"a": 0.0, "b": 10_000 * WH}
    assert len(parsed.problems) == 2


def test_an_empty_production_list_means_nothing_yet():
    assert inverters.parse_energy({"production": []}) == inverters.parse_energy({"production": {}})
    assert inverters.parse_energy({"production": []}).value == {}


@pytest.mark.parametrize("payload", [[], "x", {}, {"production": None}, {"production": [1, 2]}])
def test_an_energy_payload_without_production_is_not_understood(payload: Any):
    with pytest.raises(PayloadError):
        inverters.parse_energy(payload)


# --- joining


def test_energy_joins_by_id_else_by_serial_unknown_keys_counted():
    pages = [page(name).value for name in PAGES.values()]
    energy = inverters.parse_energy(load_fixture("inverter_energy_live.json")).value
    parsed = inverters.assemble(pages, energy)
    joules = {i.serial: i.production_today_joules for i in parsed.value.inverters}
    assert joules == {
        "482012340001": 1520 * WH,  # by id 70001
        "482012340002": None,  # "N/A"
        "482012340003": None,  # -5 Wh
        "482012340004": 980.5 * WH,  # no id in the list: the key is its serial
    }
    assert len(parsed.problems) == 1 and "99999" in parsed.problems[0]


def test_a_serial_listed_twice_is_kept_once_and_two_values_for_one_inverter_are_counted():
    first = InverterPage(2, 2, (inverter("A", "1", model="first"), inverter("B", "2")))
    again = InverterPage(2, 1, (inverter("A", "1", model="second"),))
    parsed = inverters.assemble([first, again], {"1": 5.0, "A": 7.0, "2": 9.0})
    assert [(i.serial, i.model, i.production_today_joules) for i in parsed.value.inverters] == [
        ("A", "first", 5.0),
        ("B", None, 9.0),
    ]
    assert len(parsed.problems) == 2, parsed.problems


# --- the site's local date


def test_the_local_date_from_todays_utc_offset():
    evening_in_denver = datetime(2026, 3, 29, 3, 0, tzinfo=UTC).timestamp()  # 21:00 on the 28th, UTC-6
    assert inverters.site_local_date(site(today(-6 * 3600)), evening_in_denver) == date(2026, 3, 28)
    morning_in_sydney = datetime(2026, 3, 27, 20, 0, tzinfo=UTC).timestamp()  # 07:00 on the 28th, UTC+11
    assert inverters.site_local_date(site(today(11 * 3600)), morning_in_sydney) == date(2026, 3, 28)


def test_the_local_date_from_todays_midnight_while_now_is_within_that_day():
    midnight = datetime(2026, 3, 28, 6, 0, tzinfo=UTC).timestamp()  # midnight of the 28th at UTC-6
    within = midnight + 23 * 3600  # 05:00 UTC on the 29th
    assert inverters.site_local_date(site(today(None, midnight)), within) == date(2026, 3, 28)
    stale = midnight + 25 * 3600  # today has not been polled since the site's midnight: UTC's date
    assert inverters.site_local_date(site(today(None, midnight)), stale) == date(2026, 3, 29)


def test_the_local_date_is_utcs_without_today():
    assert inverters.site_local_date(site(), NOW) == date(2026, 3, 28)
    assert inverters.site_local_date(site(today()), NOW - 12.5 * 3600) == date(2026, 3, 27)


# --- fetch


class FakeClient:
    """Answers get_json by endpoint; the list endpoint by offset. An answer may be an exception to raise."""

    def __init__(self, pages: Callable[[int], Any], energy: Any = None) -> None:
        self.pages = pages
        self.energy = energy
        self.calls: list[tuple[str, str, dict[str, str] | None]] = []

    def get_json(self, endpoint: str, path: str, params: dict[str, str] | None = None) -> Any:
        self.calls.append((endpoint, path, params))
        assert params is not None
        answer = self.pages(int(params["offset"])) if endpoint == "inverters" else self.energy
        if isinstance(answer, Exception):
            raise answer
        return answer


def poll(client: FakeClient, today_: Today | None = None) -> Fetch:
    return Fetch(client=client, site=site(today_), now=NOW)  # type: ignore[arg-type]


def listed(client: FakeClient) -> list[dict[str, str] | None]:
    return [params for endpoint, _, params in client.calls if endpoint == "inverters"]


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inverters, "LIMIT", 2)


def fixture_pages(offset: int) -> Any:
    return load_fixture(PAGES[offset])


def made_up(total: int, count: Callable[[int], int]) -> Callable[[int], Any]:
    """Pages of ``count(offset)`` distinct inverters, each claiming ``total``."""

    def answer(offset: int) -> Any:
        items = [{"serial_number": f"S{offset + n}", "status": "normal"} for n in range(count(offset))]
        return {"total": total, "inverters": items}

    return answer


def test_fetch_reads_every_page_then_todays_energy(small_pages: None):
    client = FakeClient(fixture_pages, load_fixture("inverter_energy_live.json"))
    parsed = inverters.fetch(poll(client, today(-6 * 3600)))
    assert client.calls == [
        ("inverters", LIST_PATH, {"limit": "2", "offset": "0"}),
        ("inverters", LIST_PATH, {"limit": "2", "offset": "2"}),
        ("inverters", LIST_PATH, {"limit": "2", "offset": "4"}),  # full, but total 6 is reached: no 4th
        ("inverter_energy", ENERGY_PATH, {"start_date": "2026-03-28", "end_date": "2026-03-28"}),
    ]
    assert [i.serial for i in parsed.value.inverters] == [f"48201234000{n}" for n in (1, 2, 3, 4)]
    assert parsed.value.inverters[0].production_today_joules == 1520 * WH
    # pages: unsafe array name, a string item, an empty serial; energy: -5, 12 kWh, unknown key 99999
    assert len(parsed.problems) == 6, parsed.problems


def test_fetch_asks_for_pages_of_a_hundred():
    client = FakeClient(made_up(150, lambda offset: min(100, 150 - offset)), {"production": {}})
    parsed = inverters.fetch(poll(client))
    assert listed(client) == [{"limit": "100", "offset": "0"}, {"limit": "100", "offset": "100"}]
    assert len(parsed.value.inverters) == 150 and parsed.problems == ()


def test_a_full_page_without_total_asks_for_the_next(small_pages: None):
    def pages(offset: int) -> Any:
        body = made_up(0, lambda offset: 2 if offset < 4 else 0)(offset)
        del body["total"]
        return body

    parsed = inverters.fetch(poll(FakeClient(pages, {"production": {}})))
    assert len(parsed.value.inverters) == 4
    assert len(parsed.problems) == 3  # "total" missing from each of the three pages


def test_a_total_that_claims_too_many_stops_at_the_page_cap(
    small_pages: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(inverters, "MAX_PAGES", 3)
    client = FakeClient(made_up(1_000_000, lambda offset: 2), {"production": {}})
    parsed = inverters.fetch(poll(client))
    assert [params and params["offset"] for params in listed(client)] == ["0", "2", "4"]
    assert len(parsed.value.inverters) == 6
    assert len(parsed.problems) == 1 and "not reached" in parsed.problems[0]


def test_short_pages_before_total_go_on_and_an_empty_one_ends_the_list_with_a_problem(small_pages: None):
    # A server may cap its pages below the limit asked: the total says whether more is to come.
    short = FakeClient(made_up(5, lambda offset: 2 if offset == 0 else 1), {"production": {}})
    parsed = inverters.fetch(poll(short))
    assert [query["offset"] for query in listed(short)] == ["0", "2", "3", "4"]
    assert len(parsed.value.inverters) == 5 and parsed.problems == ()
    empty = FakeClient(made_up(4, lambda offset: 2 if offset == 0 else 0), {"production": {}})
    parsed = inverters.fetch(poll(empty))
    assert len(listed(empty)) == 2 and len(parsed.value.inverters) == 2
    assert parsed.problems == ("inverters: total says 4, 2 listed",)


def test_a_total_that_claims_too_few_is_counted_and_what_came_is_kept():
    client = FakeClient(made_up(1, lambda offset: 3), {"production": {}})
    parsed = inverters.fetch(poll(client))
    assert len(listed(client)) == 1 and len(parsed.value.inverters) == 3
    assert parsed.problems == ("inverters: total says 1, 3 listed",)


def test_an_answer_that_ignores_the_offset_is_read_once(small_pages: None):
    first_page = made_up(10, lambda offset: 2)(0)
    client = FakeClient(lambda offset: first_page, {"production": {}})
    parsed = inverters.fetch(poll(client))
    assert len(listed(client)) == 2 and [i.serial for i in parsed.value.inverters] == ["S0", "S1"]
    assert len(parsed.problems) == 1 and "repeats" in parsed.problems[0]


def test_no_inverters_no_energy_request():
    client = FakeClient(lambda offset: {"total": 0, "not_reporting": 0, "inverters": []})
    parsed = inverters.fetch(poll(client))
    assert [endpoint for endpoint, _, _ in client.calls] == ["inverters"]
    assert parsed.value == Inverters(()) and parsed.problems == ()


def test_the_list_is_shown_and_the_source_down_when_the_energy_request_fails(small_pages: None):
    client = FakeClient(fixture_pages, UpstreamUnavailable("inverter_energy: HTTP 503"))
    with pytest.raises(Incomplete, match="inverter_energy: HTTP 503; the inverters are shown") as failed:
        inverters.fetch(poll(client))
    parsed = failed.value.parsed
    assert len(parsed.value.inverters) == 4
    assert all(i.production_today_joules is None for i in parsed.value.inverters)
    assert len(parsed.problems) == 3  # the three of the pages: a failed request is no parse error


@pytest.mark.parametrize("failure", [{"production": "later"}, "<html>"])
def test_the_list_is_published_when_the_energy_is_unreadable(small_pages: None, failure: Any):
    parsed = inverters.fetch(poll(FakeClient(fixture_pages, failure)))
    assert len(parsed.value.inverters) == 4
    assert all(i.production_today_joules is None for i in parsed.value.inverters)
    energy_problems = [problem for problem in parsed.problems if problem.startswith("inverter_energy")]
    assert len(energy_problems) == 1 and "left out" in energy_problems[0]
    assert len(parsed.problems) == 4  # the three of the pages, and the energy's


def test_a_lost_session_takes_the_source_down():
    client = FakeClient(made_up(1, lambda offset: 1), SessionExpired("inverter_energy: rejected"))
    with pytest.raises(SessionExpired):
        inverters.fetch(poll(client))


def test_a_failed_list_takes_the_source_down_without_asking_for_energy():
    client = FakeClient(lambda offset: UpstreamUnavailable("inverters: HTTP 503"), {"production": {}})
    with pytest.raises(UpstreamUnavailable):
        inverters.fetch(poll(client))
    assert [endpoint for endpoint, _, _ in client.calls] == ["inverters"]


# --- readings


def test_readings_one_series_per_inverter_and_metric_absent_stays_absent():
    model = Inverters(
        (
            Inverter("4820", "1", "IQ8PLUS-72-2-US", "South roof", True, 1774674600.0, 1520 * WH),
            inverter("4821", normal=False),
        )
    )
    out = list(inverters.readings(site(), model))
    first = {"site_id": SITE_ID, "serial": "4820"}
    second = {"site_id": SITE_ID, "serial": "4821"}
    info = [(r.metric, dict(r.labels), dict(r.details)) for r in out if isinstance(r, Info)]
    assert info == [
        ("enphase_inverter_info", first, {"model": "IQ8PLUS-72-2-US", "array": "South roof"}),
        ("enphase_inverter_info", second, {"model": None, "array": None}),
    ]
    gauges = [(r.metric, dict(r.labels), r.value) for r in out if isinstance(r, Gauge)]
    assert gauges == [
        ("enphase_inverter_normal", first, True),
        ("enphase_inverter_normal", second, False),
        ("enphase_inverter_last_report_timestamp_seconds", first, 1774674600.0),
        ("enphase_inverter_last_report_timestamp_seconds", second, None),
        ("enphase_inverter_production_today_joules", first, 5_472_000.0),
        ("enphase_inverter_production_today_joules", second, None),
    ]
    assert len(out) == 8


def test_the_source_description():
    source = inverters.SOURCE
    assert (source.name, source.default_interval, source.minimum_interval, source.first_run) == (
        "inverters",
        3600,
        900,
        5.0,
    )
    assert source.requests_per_poll == 2.0
    assert source.fetch is inverters.fetch and source.readings is inverters.readings
