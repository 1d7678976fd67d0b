"""The InfluxDB renderer: measurements, fields, units and times from hand-written payloads; line protocol."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import load_fixture
from hypothesis import given
from hypothesis import strategies as st
from influxdb_client import Point as ReferencePoint
from influxdb_client import WritePrecision

from exporter.poller import Polled
from exporter.render_influx import Point, field_name, history_points, points
from exporter.snapshot import SiteSnapshot
from exporter.sources import daily_energy, ev_status, ev_summary, today
from exporter.sources.energy_day import EnergyDay

SITE = "7654321"
WH = 3600.0  # joules
TODAY_START = 1774652400  # the fixtures' local midnight
LAST_REPORT = 1774656000  # today_live.json: one hour, four buckets, after midnight


def by_time(found: list[Point], measurement: str) -> dict[int, Point]:
    return {point.time_ns: point for point in found if point.measurement == measurement}


def ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def today_site(now: float = LAST_REPORT + 7200) -> SiteSnapshot:
    # a site whose history shows a charger: its evse zeros today are a real 0, not a placeholder
    parsed = today.parse(load_fixture("today_live.json"), now, measured=frozenset({"evse"})).value
    return SiteSnapshot(SITE, ("today",), today=parsed, lifetime_joules={"production": 9e9})


def test_field_names_are_the_metric_names_without_the_area() -> None:
    assert field_name("enphase_ev_charger_session_energy_joules") == (
        "enphase_ev_charger",
        "session_energy_joules",
    )
    assert field_name("enphase_battery_charge_today_joules") == ("enphase_battery", "charge_today_joules")
    assert field_name("enphase_site_production_joules_total") == ("enphase_site", "production_joules_total")
    with pytest.raises(ValueError):
        field_name("enphase_up")


def test_ev_status_point_at_the_payload_server_time_in_base_units() -> None:
    parsed = ev_status.parse(load_fixture("ev_status_live_charging.json")).value
    site = SiteSnapshot(SITE, ("ev_status",), ev_status=parsed)
    [point] = points(Polled(site, "ev_status", observed_at=1.0))
    assert point.measurement == "enphase_ev_charger"
    assert point.tags == (("serial", "EV1111111111"), ("site_id", SITE))
    assert point.time_ns == 1774675080415 * 1_000_000  # meta.serverTimeStamp, ms
    assert point.fields["charging"] == 1.0
    assert point.fields["faulted"] == 0.0
    assert point.fields["connector_status"] == "charging"
    assert point.fields["session_energy_joules"] == pytest.approx(3542.11 * WH)  # e_c is Wh
    assert point.fields["charging_current_setpoint_amperes"] == 32.0
    assert point.fields["session_start_timestamp_seconds"] == 1774667402.0  # strt_chrg is ms
    assert point.fields["session_cost"] == 0.91


def test_ev_status_without_server_time_uses_the_time_it_was_read() -> None:
    parsed = ev_status.parse(load_fixture("ev_status_live_idle.json")).value
    site = SiteSnapshot(SITE, ("ev_status",), ev_status=replace(parsed, server_timestamp=None))
    assert {point.time_ns for point in points(Polled(site, "ev_status", observed_at=1774000000.5))} == {
        ns(1774000000.5)
    }


def test_absent_values_are_absent_fields_never_zero() -> None:
    parsed = ev_status.parse(load_fixture("ev_status_live_idle.json")).value
    site = SiteSnapshot(SITE, ("ev_status",), ev_status=parsed)
    point = next(p for p in points(Polled(site, "ev_status", observed_at=1.0)) if p.fields["charging"] == 0)
    # Idle in the live shape: charge_level is null, so there is no setpoint at all.
    assert "charging_current_setpoint_amperes" not in point.fields


def test_ev_summary_point_at_the_chargers_own_report_time() -> None:
    parsed = ev_summary.parse(load_fixture("ev_summary_live.json")).value
    site = SiteSnapshot(SITE, ("ev_summary",), ev_summary=parsed)
    found = {p.tags[0][1]: p for p in points(Polled(site, "ev_summary", observed_at=1.0))}
    carport = found["EV1111111111"]
    assert carport.time_ns == 1754906523805264000  # lastReportedAt, to the microsecond
    assert carport.fields["energy_delivered_joules_total"] == pytest.approx(1234567.5 * WH)
    assert carport.fields["operating_voltage_volts"] == 230.0  # a string upstream
    assert carport.fields["charge_level_max_amperes"] == 32.0
    assert carport.fields["model"] == "IQ-EVSE-EU-3032"
    assert carport.fields["name"] == "Carport"


def test_today_latest_readings_at_the_site_last_report() -> None:
    found = points(Polled(today_site(), "today", observed_at=LAST_REPORT + 7200))
    battery = by_time(found, "enphase_battery")[ns(LAST_REPORT)]
    site = by_time(found, "enphase_site")[ns(LAST_REPORT)]
    assert battery.fields["state_of_charge_ratio"] == 0.62  # % → ratio
    assert battery.fields["backup_reserve_ratio"] == 0.20
    assert battery.fields["charge_from_grid_enabled"] == 0.0
    assert battery.fields["profile"] == "self_consumption"
    assert battery.fields["charge_today_joules"] == 0.0
    assert site.fields["production_today_joules"] == 152 * WH
    assert site.fields["consumption_today_joules"] == 768 * WH
    assert site.fields["energy_flow_solar_home_today_joules"] == 152 * WH
    assert site.fields["production_joules_total"] == 9e9
    assert site.fields["last_report_timestamp_seconds"] == LAST_REPORT


def test_today_buckets_at_their_start_and_the_day_at_local_midnight() -> None:
    found = points(Polled(today_site(), "today", observed_at=LAST_REPORT + 7200))
    buckets = by_time(found, "enphase_site_interval")
    assert sorted(buckets) == [ns(TODAY_START + 900 * i) for i in range(4)]
    third = buckets[ns(TODAY_START + 1800)].fields
    assert third["production_joules"] == 12 * WH
    assert third["grid_import_joules"] == 198 * WH
    assert third["state_of_charge_ratio"] == 0.61
    assert third["energy_flow_grid_home_joules"] == 198 * WH
    assert third["load_evse_joules"] == 0.0
    placeholder = today.parse(load_fixture("today_live.json"), LAST_REPORT + 7200).value  # never measured
    unmeasured = points(
        Polled(replace(today_site(), today=placeholder), "today", observed_at=LAST_REPORT + 7200)
    )
    assert all("load_evse_joules" not in point.fields for point in unmeasured)
    assert all("load_evse_today_joules" not in point.fields for point in unmeasured)
    assert "energy_flow_solar_battery_joules" not in third  # [] upstream: not measured
    [day] = by_time(found, "enphase_site_daily").values()
    assert day.time_ns == ns(TODAY_START)
    assert day.fields["production_joules"] == 152 * WH
    assert day.fields["charge_joules"] == 0.0


def test_future_buckets_of_a_partial_day_are_not_written() -> None:
    day = EnergyDay(
        start_timestamp=1000.0,
        interval_seconds=900,
        channels={"production": (WH, 2 * WH, 0.0, 0.0)},  # the last two have not happened yet
        flows={},
        loads={},
        state_of_charge=(),
        channel_totals={"production": 3 * WH},
    )
    found = list(history_points(SITE, [day], cutoff=1000.0 + 1800))
    assert sorted(p.time_ns for p in found if p.measurement == "enphase_site_interval") == [
        ns(1000),
        ns(1900),
    ]


def test_daily_energy_writes_every_bucket_and_day_and_skips_days_before_the_site() -> None:
    history = daily_energy.parse(load_fixture("daily_energy_live.json")).value
    site = SiteSnapshot(SITE, ("daily_energy",))
    found = points(Polled(site, "daily_energy", observed_at=TODAY_START + 86400, history=history))
    days = by_time(found, "enphase_site_daily")
    assert sorted(days) == [ns(1774566000), ns(TODAY_START)]  # 1774479600 had [] arrays
    assert days[ns(1774566000)].fields["grid_export_joules"] == 700 * WH
    assert days[ns(1774566000)].fields["discharge_joules"] == 100 * WH
    buckets = by_time(found, "enphase_site_interval")
    assert len(buckets) == 4 + 3
    assert buckets[ns(1774566000 + 1800)].fields["charge_joules"] == 500 * WH


def test_daily_energy_writes_the_latest_readings_again_with_the_new_lifetime_counters() -> None:
    history = daily_energy.parse(load_fixture("daily_energy_live.json")).value
    site = today_site()
    found = points(Polled(site, "daily_energy", observed_at=LAST_REPORT + 7200, history=history))
    assert by_time(found, "enphase_site")[ns(LAST_REPORT)].fields["production_joules_total"] == 9e9


def test_lifetime_energy_writes_the_latest_readings_again_with_the_new_lifetime_counters() -> None:
    """The counters appear when lifetime_energy answers: InfluxDB gets them then, not 5 min later."""
    found = points(Polled(today_site(), "lifetime_energy", observed_at=LAST_REPORT + 7200))
    assert by_time(found, "enphase_site")[ns(LAST_REPORT)].fields["production_joules_total"] == 9e9
    assert "enphase_site_interval" not in {point.measurement for point in found}  # no buckets in it


def test_infinite_or_nan_values_are_never_written() -> None:
    parsed = ev_status.parse(load_fixture("ev_status_live_charging.json")).value
    charger = replace(parsed.chargers[0], session_cost=float("nan"), session_energy_joules=float("inf"))
    site = SiteSnapshot(SITE, ("ev_status",), ev_status=replace(parsed, chargers=(charger,)))
    [point] = points(Polled(site, "ev_status", observed_at=1.0))
    assert "session_cost" not in point.fields and "session_energy_joules" not in point.fields


def test_line_protocol_escapes_names_tags_and_strings() -> None:
    point = Point(
        "enphase_ev_charger",
        (("serial", "EV 1,=2"), ("site_id", "7")),
        {"name": 'Gar"age\\ 1', "charging": 1.0},
        1_000_000_000,
    )
    assert point.line() == (
        r'enphase_ev_charger,serial=EV\ 1\,\=2,site_id=7 name="Gar\"age\\ 1",charging=1 1000000000'
    )


names = st.text(st.characters(codec="utf-8", exclude_characters="\n\r\\"), min_size=1, max_size=12)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=12),
)


@given(
    measurement=names,
    tags=st.dictionaries(names, names, max_size=3),
    fields=st.dictionaries(names, values, min_size=1, max_size=4),
    time_ns=st.integers(0, 2**62),
)
def test_line_protocol_matches_influxdb_clients_own_encoding(
    measurement: str, tags: dict[str, str], fields: dict[str, float | str], time_ns: int
) -> None:
    """influxdb-client is the reference encoder; ours is a few lines because it runs for every point of a
    multi-year backfill (see benchmarks/)."""
    ours = Point(measurement, tuple(sorted(tags.items())), dict(sorted(fields.items())), time_ns).line()
    reference = ReferencePoint(measurement).time(time_ns, WritePrecision.NS)
    for key, value in sorted(tags.items()):
        reference = reference.tag(key, value)
    for key, value in fields.items():
        reference = reference.field(key, value)
    assert ours == reference.to_line_protocol()
