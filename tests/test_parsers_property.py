"""Properties of every payload parser, on arbitrary JSON and on damaged copies of the fixtures.

For any payload: ``parse`` returns or raises ``PayloadError`` (nothing else), and what it returns keeps the
model's promises: every number finite, every timestamp a plausible time, enumerations within their sets,
and a value the payload does not carry is None, never an invented 0. Damaged fixtures (keys dropped, types
swapped, unknown enumeration values, garbage nested in) reach the deep code paths that random JSON misses.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date
from typing import Any

import pytest
from conftest import load_fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter import sites
from exporter.sources import daily_energy, ev_status, ev_summary, lifetime_energy, today
from exporter.sources.energy_day import CHANNELS, EnergyDay
from exporter.sources.energy_day import DEFAULT_MAX_SITE_POWER_WATTS as MAX_POWER
from exporter.values import PayloadError, Reader, parse_iso_timestamp

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = 1774675080.0  # the fixtures' "now": 2026-03-28
EARLIEST, LATEST = 946684800.0, 4102444800.0  # 2000-01-01 and 2100-01-01, the readers' plausible window

# Keys the parsers look for, so that random objects sometimes look like payloads.
KNOWN_KEYS = [
    "data", "chargers", "evChargerData", "meta", "serverTimeStamp", "ts", "tz", "sn", "name", "connected",
    "pluggedIn", "charging", "faulted", "connectors", "connectorId", "connectorStatusType", "session_d",
    "e_c", "strt_chrg", "start_time", "plg_in_at", "session_cost", "cost", "charge_level", "chargingLevel",
    "lst_rpt_at", "serialNumber", "displayName", "modelName", "firmwareVersion", "maxCurrent",
    "chargeLevelDetails", "min", "max", "operatingVoltage", "phaseCount", "phaseMode",
    "lifeTimeConsumption", "lastReportedAt", "networkConfig", "battery_details", "aggregate_soc",
    "batteryConfig", "battery_backup_percentage", "very_low_soc", "charge_from_grid", "usage",
    "last_report_date", "start_date", "stats", "interval_length", "production", "consumption", "import",
    "export", "charge", "discharge", "soc", "solar_home", "grid_home", "evse", "totals", "sites", "id",
]  # fmt: skip
# Values at the edges: huge and tiny numbers, digits that are not ASCII, NaN, the ends of the calendar.
EXTREMES = [
    10**400, -(10**400), 2**63, 1e308, -1e308, 1.7976931348623157e308, 5e-324, 1e300, "1e308", "1e400",
    "-1e400", "٣٤٥", "²", "nan", "NaN", "inf", "-Infinity", math.nan, math.inf, -math.inf,
    "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
]  # fmt: skip
TRICKY = st.sampled_from(
    [
        "", " ", "N/A", "null", "nan", "NaN", "inf", "-Infinity", "1e400", "-1e400", "0x10", "1_000", " 6 ",
        "true", "0", "1", "12.5", "٣", "²", "2026-03-28T04:54:34.360Z[UTC]", "2026-03-28T04:54:34",
        "2023-02-30", "2023-08-10", "[UTC]", "[\"interface_name=eth0,connectionStatus=1\"]", "[[[[",
        "CHARGING", "SELF-CONSUMPTION", 1774675080415, 1774675080, 3600.5, -1, 0, 1, True, False, None,
        [], {}, *EXTREMES,
    ]
)  # fmt: skip
SCALARS = TRICKY | st.one_of(  # half of the leaves from the list above, half anything
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and Infinity too: Python's json module reads them
    st.text(max_size=12),
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=20,
)


# -- damaged fixtures ----------------------------------------------------------------------------------------


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


def _retyped(value: Any) -> Any:
    """The same information in another JSON type, as vendors do: numbers as strings, objects as lists."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return [value]
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return {str(index): item for index, item in enumerate(value)}
    return 0


@st.composite
def damaged(draw: st.DrawFn, fixture: str) -> Any:
    document = copy.deepcopy(load_fixture(fixture))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(document)))
        operation = draw(
            st.sampled_from(["drop", "replace", "retype", "enum", "garbage", "empty", "extreme"])
        )
        if not path:
            if operation == "replace":
                document = draw(JSON)
            continue
        *parents, last = path
        parent = document
        for step in parents:
            parent = parent[step]
        value = parent[last]
        if operation == "drop":
            del parent[last]
        elif operation == "replace":
            parent[last] = draw(JSON)
        elif operation == "retype":
            parent[last] = _retyped(value)
        elif operation == "enum":
            parent[last] = draw(st.sampled_from(["BRAND_NEW_STATE", "", "charging ", "Self Consumption"]))
        elif operation == "garbage" and isinstance(value, dict):
            value[f"x-{draw(st.text(max_size=4))}"] = draw(JSON)  # never a key a parser reads
        elif operation == "garbage" and isinstance(value, list):
            value.append(draw(JSON))
        elif operation == "extreme":
            parent[last] = draw(st.sampled_from(EXTREMES))
        elif operation == "empty":
            parent[last] = type(value)() if isinstance(value, list | dict | str) else None
    return document


def payloads(*fixtures: str) -> st.SearchStrategy[Any]:
    return JSON | st.one_of(*(damaged(name) for name in fixtures))


def parsed_or_payload_error(parse: Callable[[Any], Any], payload: Any) -> Any:
    """The parse result, or None when the parser refused the payload as a whole (the designed error)."""
    try:
        return parse(payload)
    except PayloadError:
        return None


# -- invariants of every model -------------------------------------------------------------------------------


def check_model(value: Any, where: str = "model") -> None:
    """Every float finite, every ``*timestamp*`` field a plausible time, bools real bools."""
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            here = f"{where}.{field.name}"
            if "timestamp" in field.name and item is not None:
                assert isinstance(item, float | int) and EARLIEST <= item < LATEST, (here, item)
            check_model(item, here)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_model(key, f"{where}[key]")
            check_model(item, f"{where}[{key!r}]")
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            check_model(item, f"{where}[{index}]")
    elif isinstance(value, float):
        assert math.isfinite(value), (where, value)
    elif isinstance(value, frozenset):
        assert all(isinstance(item, str) for item in value), (where, value)
    else:
        assert value is None or isinstance(value, str | int | bool | date), (where, type(value))


def check_problems(problems: Any) -> None:
    assert isinstance(problems, tuple) and all(isinstance(problem, str) for problem in problems)


def check_day(day: EnergyDay) -> None:
    assert isinstance(day.interval_seconds, int) and 0 < day.interval_seconds <= 86400
    for series in (*day.channels.values(), *day.flows.values(), *day.loads.values()):
        assert series, "an empty array means not measured: the channel is absent, not an empty series"
        assert all(value is None or isinstance(value, float) for value in series)
        # Energy is never negative, nor more than the site's most power for a whole interval
        assert all(value is None or 0 <= value <= MAX_POWER * day.interval_seconds for value in series)
    assert all(value is None or 0 <= value <= 1 for value in day.state_of_charge)
    assert set(day.channel_totals) <= set(CHANNELS.values())
    assert all(joules >= 0 for joules in day.channel_totals.values())


# -- the properties ------------------------------------------------------------------------------------------


@FAST
@given(payloads("ev_status_live_charging.json", "ev_status_live_idle.json", "ev_status_legacy.json"))
def test_ev_status(payload):
    parsed = parsed_or_payload_error(ev_status.parse, payload)
    if parsed is None:
        return
    check_problems(parsed.problems)
    check_model(parsed.value)
    for charger in parsed.value.chargers:
        assert isinstance(charger.serial, str) and charger.serial
        for flag in (charger.connected, charger.plugged_in, charger.charging, charger.faulted):
            assert flag is None or isinstance(flag, bool)
        assert all(connector.status in ev_status.CONNECTOR_STATES for connector in charger.connectors)


@FAST
@given(payloads("ev_summary_live.json", "ev_summary_legacy.json"))
def test_ev_summary(payload):
    parsed = parsed_or_payload_error(ev_summary.parse, payload)
    if parsed is None:
        return
    check_problems(parsed.problems)
    check_model(parsed.value)
    for charger in parsed.value.chargers:
        assert isinstance(charger.serial, str) and charger.serial
        for interface in charger.network_interfaces:
            assert interface.name and interface.connected in (True, False, None)


@FAST
@given(payloads("today_live.json", "today_seed_battery.json"), st.floats(0, 5e9) | st.just(NOW))
def test_today(payload, now):
    parsed = parsed_or_payload_error(lambda body: today.parse(body, now), payload)
    if parsed is None:
        return
    check_problems(parsed.problems)
    check_model(parsed.value)
    value = parsed.value
    assert value.profile is None or value.profile in today.PROFILES
    if value.utc_offset_seconds is not None:
        assert -12 * 3600 <= value.utc_offset_seconds <= 14 * 3600
    for ratio in (value.state_of_charge_ratio, value.backup_reserve_ratio, value.very_low_soc_ratio):
        assert ratio is None or 0 <= ratio <= 1  # out of range: counted and left out
    if value.day is not None:
        check_day(value.day)
        assert set(value.power_watts) <= set(value.day.channels)  # power only where there is data
    else:
        assert value.power_watts == {} and value.power_interval_end_timestamp is None


@FAST
@given(payloads("daily_energy_live.json"))
def test_daily_energy(payload):
    parsed = parsed_or_payload_error(daily_energy.parse, payload)
    if parsed is None:
        return
    check_problems(parsed.problems)
    check_model(parsed.value)
    starts = [day.start_timestamp for day in parsed.value.days]
    assert starts == sorted(set(starts))  # one per day, in order
    for day in parsed.value.days:
        check_day(day)


@FAST
@given(payloads("lifetime_energy_live.json"))
def test_lifetime_energy(payload):
    parsed = parsed_or_payload_error(lifetime_energy.parse, payload)
    if parsed is None:
        return
    check_problems(parsed.problems)
    check_model(parsed.value)
    value = parsed.value
    assert set(value.channels) <= set(CHANNELS.values())
    for series in value.channels.values():
        assert all(joules is None or 0 <= joules <= MAX_POWER * 86400 for joules in series)
    # measured: a channel with a value on some day, or a load with energy on some day, nothing else
    assert all(
        any(j is not None for j in value.channels[name]) for name in value.measured & set(value.channels)
    )


SITE_IDS = (
    st.integers()
    | st.text(max_size=8)
    | st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=8)  # digits beyond ASCII
    | TRICKY
)


@FAST
@given(
    payloads("search_sites_live.json")
    | st.fixed_dictionaries({"sites": st.lists(st.fixed_dictionaries({"id": SITE_IDS}))})
)
def test_site_discovery(payload):
    parsed = parsed_or_payload_error(sites.parse, payload)
    if parsed is None:
        return
    check_problems(parsed.problems)
    assert len(set(parsed.value)) == len(parsed.value)
    # Site ids go into URL paths: plain ASCII digits only (str.isdigit also accepts '²' and '٣').
    assert all(re.fullmatch(r"[0-9]+", site_id) for site_id in parsed.value), parsed.value


# -- a value the payload does not carry is None, never 0 -----------------------------------------------------

EV_STATUS_FIELDS = {  # model field -> every key it may be read from (on the charger, or in session_d)
    "connected": ("connected",),
    "plugged_in": ("pluggedIn",),
    "charging": ("charging",),
    "faulted": ("faulted",),
    "name": ("name",),
    "last_report_timestamp": ("lst_rpt_at",),
    "session_energy_joules": ("e_c",),
    "session_plugged_in_timestamp": ("plg_in_at",),
    "session_start_timestamp": ("strt_chrg", "start_time"),
    "session_cost": ("session_cost", "cost"),
    "charging_current_setpoint_amperes": ("charge_level", "chargingLevel"),
}


def _without(document: Any, keys: tuple[str, ...]) -> Any:
    """The document with these keys removed at every depth."""
    if isinstance(document, dict):
        return {key: _without(value, keys) for key, value in document.items() if key not in keys}
    if isinstance(document, list):
        return [_without(value, keys) for value in document]
    return document


@FAST
@given(
    st.sampled_from(sorted(EV_STATUS_FIELDS)),
    st.one_of(*(damaged(name) for name in ("ev_status_live_charging.json", "ev_status_legacy.json"))),
)
def test_ev_status_missing_field_is_none(field, payload):
    parsed = parsed_or_payload_error(ev_status.parse, _without(payload, EV_STATUS_FIELDS[field]))
    for charger in parsed.value.chargers if parsed else ():
        assert getattr(charger, field) is None


EV_SUMMARY_FIELDS = {
    "name": ("displayName",),
    "model": ("modelName",),
    "firmware_version": ("firmwareVersion",),
    "max_current_amperes": ("maxCurrent",),
    "charge_level_min_amperes": ("min",),
    "charge_level_max_amperes": ("max",),
    "operating_voltage_volts": ("operatingVoltage",),
    "phases": ("phaseCount", "phaseMode"),
    "energy_delivered_joules": ("lifeTimeConsumption",),
    "last_report_timestamp": ("lastReportedAt",),
}


@FAST
@given(st.sampled_from(sorted(EV_SUMMARY_FIELDS)), damaged("ev_summary_live.json"))
def test_ev_summary_missing_field_is_none(field, payload):
    parsed = parsed_or_payload_error(ev_summary.parse, _without(payload, EV_SUMMARY_FIELDS[field]))
    for charger in parsed.value.chargers if parsed else ():
        assert getattr(charger, field) is None


TODAY_FIELDS = {
    "state_of_charge_ratio": ("aggregate_soc",),
    "backup_reserve_ratio": ("battery_backup_percentage",),
    "very_low_soc_ratio": ("very_low_soc",),
    "charge_from_grid": ("charge_from_grid",),
    "profile": ("usage",),
    "last_report_timestamp": ("last_report_date",),
    "utc_offset_seconds": ("start_date",),
    "day": ("stats",),
}


@FAST
@given(st.sampled_from(sorted(TODAY_FIELDS)), damaged("today_live.json"))
def test_today_missing_field_is_none(field, payload):
    parsed = parsed_or_payload_error(
        lambda body: today.parse(body, NOW), _without(payload, TODAY_FIELDS[field])
    )
    if parsed is not None:
        assert getattr(parsed.value, field) is None


@FAST
@given(
    st.sampled_from(["production", "consumption", "import", "export", "charge", "discharge"]),
    st.sampled_from(["missing", "empty"]),
    damaged("today_live.json"),
)
def test_an_unmeasured_channel_is_absent_not_zero(key, how, payload):
    channel = {"import": "grid_import", "export": "grid_export", "charge": "battery_charge"}.get(key, key)
    channel = "battery_discharge" if key == "discharge" else channel
    stats = payload.get("stats") if isinstance(payload, dict) else None
    for item in stats if isinstance(stats, list) else ():
        if isinstance(item, dict):
            item.pop(key, None) if how == "missing" else item.__setitem__(key, [])
            if isinstance(item.get("totals"), dict):
                item["totals"].pop(key, None)
    parsed = parsed_or_payload_error(lambda body: today.parse(body, NOW), payload)
    if parsed is not None and parsed.value.day is not None:
        assert channel not in parsed.value.day.channels
        assert channel not in parsed.value.day.channel_totals
        assert channel not in parsed.value.power_watts


# -- the value reader ----------------------------------------------------------------------------------------


@FAST
@given(JSON | st.sampled_from(EXTREMES), st.sampled_from([1.0, 3600.0, 0.01]))
def test_reader_number_is_finite_or_absent_and_counted(raw, scale):
    reader = Reader()
    value = reader.number({"k": raw}, "k", "here", scale=scale)
    assert value is None or (isinstance(value, float) and math.isfinite(value))
    if value is None and raw is not None:
        assert len(reader.problems) == 1  # a value that could not be read is visible, not silently gone


@FAST
@given(JSON, st.sampled_from(["s", "ms"]))
def test_reader_timestamp_is_plausible_or_absent_and_counted(raw, unit):
    reader = Reader()
    value = reader.timestamp({"k": raw}, "k", "here", epoch_unit=unit)
    assert value is None or EARLIEST <= value < LATEST
    if value is None and raw is not None:
        assert len(reader.problems) == 1


@FAST
@given(JSON)
def test_reader_flag_text_mapping_objects(raw):
    reader = Reader()
    flag = reader.flag({"k": raw}, "k", "here")
    assert flag is None or isinstance(flag, bool)
    text = reader.text({"k": raw}, "k", "here")
    assert text is None or isinstance(text, str)
    assert isinstance(reader.mapping({"k": raw}, "k", "here"), Mapping)
    objects = reader.objects({"k": raw}, "k", "here")
    assert all(isinstance(item, Mapping) for item in objects)
    if isinstance(raw, list):
        assert len(objects) + sum("here.k[" in problem for problem in reader.problems) == len(raw)


@FAST
@given(st.text(max_size=40) | TRICKY.filter(lambda value: isinstance(value, str)))
def test_iso_timestamps_never_raise(text):
    seconds = parse_iso_timestamp(text)
    assert seconds is None or math.isfinite(seconds)


@FAST
@given(
    st.datetimes(timezones=st.timezones() | st.none()),
    st.sampled_from(["", "Z", "Z[UTC]"]),
)
def test_iso_timestamps_of_real_moments_read_back(moment, suffix):
    text = moment.isoformat() + (suffix if moment.tzinfo is None else "")
    expected = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()  # no offset: UTC
    assert parse_iso_timestamp(text) == pytest.approx(expected)


# -- regressions: the examples the properties above found ---------------------------------------------------


def test_a_number_that_overflows_in_its_unit_is_absent_and_counted():
    reader = Reader()
    assert reader.number({"e_c": 1e308}, "e_c", "session_d", scale=3600.0) is None  # Wh -> J: inf
    assert reader.problems == ["session_d.e_c: number too large: 1e+308"]


def test_an_interval_longer_than_a_day_is_refused_not_a_crash():
    payload = load_fixture("today_live.json")
    payload["stats"][0]["interval_length"] = 1e308  # raised OverflowError in the settled-power search
    parsed = today.parse(payload, NOW)
    assert parsed.value.day is None and parsed.value.power_watts == {}
    assert any("interval_length" in problem for problem in parsed.problems)
    assert parsed.value.state_of_charge_ratio == pytest.approx(0.62)  # the rest of the payload still reads


def test_a_day_total_beyond_the_largest_float_is_absent_and_counted():
    payload = load_fixture("daily_energy_live.json")
    payload["stats"][1]["production"] = [4e304, 4e304]  # each finite in joules, their sum is not
    parsed = daily_energy.parse(payload)  # far beyond any site's power: each one out of range
    assert parsed.problems == tuple(
        f"daily_energy.stats[1].production[{i}]: out of range: 4e+304" for i in (0, 1)
    )
    parsed = daily_energy.parse(payload, max_power_watts=math.inf)  # a site with no ceiling
    day = parsed.value.days[1]
    assert "production" not in day.channel_totals and "consumption" in day.channel_totals
    assert any("production" in problem and "total" in problem for problem in parsed.problems)


def test_site_ids_are_ascii_digits():
    parsed = sites.parse({"sites": [{"id": "٣"}, {"id": "²"}, {"id": 7654321}]})
    assert parsed.value == ("7654321",)
    assert len(parsed.problems) == 2
