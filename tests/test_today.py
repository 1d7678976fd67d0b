import pytest
from conftest import load_fixture

from exporter.sources import today

NOW = 1774700000.0  # well after the fixture's day: every reported interval has settled
WH = 3600.0


def parse(name="today_live.json", now=NOW):
    return today.parse(load_fixture(name), now)


def test_battery_percentages_become_ratios():
    t = parse().value
    assert t.state_of_charge_ratio == pytest.approx(0.62)
    assert t.backup_reserve_ratio == pytest.approx(0.20)
    assert t.very_low_soc_ratio == pytest.approx(0.10)
    assert t.charge_from_grid is False
    assert t.profile == "self_consumption"


def test_last_report_is_epoch_seconds():
    assert parse().value.last_report_timestamp == 1774656000


def test_start_date_is_todays_date_and_gives_the_sites_utc_offset_not_its_first_day():
    # start_time 1774652400 is 2026-03-27 23:00 UTC: midnight of 2026-03-28 in Amsterdam, UTC+1
    assert parse().value.utc_offset_seconds == 3600
    payload = load_fixture("today_live.json")
    payload["start_date"] = "2023-08-10"  # the old reading: a first day cannot be today's midnight
    parsed = today.parse(payload, NOW)
    assert parsed.value.utc_offset_seconds is None and parsed.problems == ()
    payload["start_date"] = "2023-13-45"
    parsed = today.parse(payload, NOW)
    assert parsed.value.utc_offset_seconds is None and len(parsed.problems) == 1


def test_energy_arrays_are_wh_per_interval():
    day = parse().value.day
    assert day.channel_totals["production"] == pytest.approx(152 * WH)
    assert day.channel_totals["consumption"] == pytest.approx(768 * WH)
    assert day.channel_totals["grid_import"] == pytest.approx(616 * WH)
    assert day.channel_totals["grid_export"] == 0.0  # measured and zero: present
    assert day.channels["production"] == pytest.approx((0, 0, 12 * WH, 140 * WH))


def test_empty_arrays_are_not_measured_never_zero():
    day = parse().value.day
    assert ("solar", "battery") not in day.flows
    assert day.flows[("solar", "home")] == pytest.approx((0, 0, 12 * WH, 140 * WH))
    assert "heatpump" not in day.loads


def test_a_load_of_zeros_the_site_never_measured_is_a_placeholder_not_a_0_w_load():
    assert "evse" not in parse().value.day.loads  # [0, 0, 0, 0] on a site whose history has no evse energy
    measured = today.parse(load_fixture("today_live.json"), NOW, measured=frozenset({"evse"})).value.day
    assert measured.loads["evse"] == (0, 0, 0, 0)  # a charger that did not charge today: a real 0
    payload = load_fixture("today_live.json")
    payload["stats"][0]["water_heater"] = [0, 0, 50, 0]
    assert today.parse(payload, NOW).value.day.loads["water_heater"] == pytest.approx((0, 0, 50 * WH, 0))


def test_a_measured_channel_reads_0_before_its_day_starts():
    """At dawn production is [] on a site that produces: 0 J today and 0 W, not a gap."""
    payload = load_fixture("today_live.json")
    payload["stats"][0]["production"] = []
    payload["stats"][0]["totals"].pop("production")
    assert "production" not in today.parse(payload, NOW).value.day.channel_totals  # history unknown: absent
    t = today.parse(payload, NOW, measured=frozenset({"production", "consumption"})).value
    assert t.day.channel_totals["production"] == 0.0
    assert t.power_watts["production"] == 0.0
    assert t.power_watts["consumption"] == pytest.approx(372 * 4)
    assert "battery_charge" in t.day.channel_totals  # measured in the payload itself: unchanged


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("consumption", -93),  # negative energy
        ("production", 1e9),  # 1e9 Wh in 15 minutes: 4 GW
    ],
)
def test_a_broken_bucket_is_counted_and_left_out(key, value):
    payload = load_fixture("today_live.json")
    payload["stats"][0][key][1] = value
    parsed = today.parse(payload, NOW)
    assert len(parsed.problems) == 1 and key in parsed.problems[0]
    assert (
        parsed.value.day.channels[{"consumption": "consumption", "production": "production"}[key]][1] is None
    )


def test_the_power_ceiling_is_a_setting():
    payload = load_fixture("today_live.json")
    # 140 Wh in 15 minutes is 560 W: within the default, beyond a 500 W site
    assert today.parse(payload, NOW).problems == ()
    parsed = today.parse(payload, NOW, max_power_watts=500)
    assert "today.stats.production[3]: out of range: 140" in parsed.problems
    assert parsed.value.day.channels["production"] == pytest.approx((0, 0, 12 * WH, None))
    assert parsed.value.day.channel_totals["production"] == pytest.approx(12 * WH)


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ("battery_details", "aggregate_soc", 140),
        ("battery_details", "aggregate_soc", -5),
        ("batteryConfig", "battery_backup_percentage", 101),
        ("batteryConfig", "very_low_soc", -1),
    ],
)
def test_a_ratio_outside_0_to_1_is_counted_and_left_out(where, key, value):
    payload = load_fixture("today_live.json")
    payload[where][key] = value
    parsed = today.parse(payload, NOW)
    assert len(parsed.problems) == 1
    names = {"aggregate_soc": "state_of_charge_ratio", "battery_backup_percentage": "backup_reserve_ratio"}
    assert getattr(parsed.value, names.get(key, "very_low_soc_ratio")) is None


def test_a_state_of_charge_bucket_above_100_percent_is_left_out():
    payload = load_fixture("today_live.json")
    payload["stats"][0]["soc"] = [62, 161, 61, 60]
    parsed = today.parse(payload, NOW)
    assert len(parsed.problems) == 1
    assert parsed.value.day.state_of_charge == pytest.approx((0.62, None, 0.61, 0.60))


def test_nonsense_totals_are_ignored():
    # totals.grid_import (123456) and totals.soc are never read; import comes from the array.
    assert parse().value.day.channel_totals["grid_import"] == pytest.approx(616 * WH)


def test_soc_series_is_a_ratio():
    assert parse().value.day.state_of_charge == pytest.approx((0.62, 0.61, 0.61, 0.60))


def test_power_is_mean_watts_of_latest_settled_interval():
    t = parse().value
    assert t.power_watts["production"] == pytest.approx(140 * 3600 / 900)  # 560 W
    assert t.power_watts["consumption"] == pytest.approx(372 * 4)
    assert t.power_interval_end_timestamp == 1774652400 + 4 * 900


def test_newest_closed_bucket_is_provisional():
    # 10 minutes after the 4th interval closed, it still grows: the 3rd interval is the latest settled.
    t = parse(now=1774652400 + 4 * 900 + 600).value
    assert t.power_watts["production"] == pytest.approx(12 * 4)
    assert t.power_interval_end_timestamp == 1774652400 + 3 * 900


def test_no_power_past_the_sites_last_report():
    payload = load_fixture("today_live.json")
    payload["last_report_date"] = 1774652400 + 900  # reported only the first interval
    t = today.parse(payload, NOW).value
    assert t.power_interval_end_timestamp == 1774652400 + 900
    assert t.power_watts["consumption"] == pytest.approx(93 * 4)


@pytest.mark.parametrize("count", [92, 96, 100])
def test_any_number_of_intervals(count):
    payload = load_fixture("today_live.json")
    stats = payload["stats"][0]
    for key in ("production", "consumption", "import", "export", "charge", "discharge"):
        stats[key] = [1] * count
    payload["last_report_date"] = stats["start_time"] + count * 900
    t = today.parse(payload, NOW + 10 * 86400).value
    assert t.day.channel_totals["production"] == pytest.approx(count * WH)
    assert t.power_interval_end_timestamp == stats["start_time"] + count * 900


def test_future_nulls_are_skipped():
    payload = load_fixture("today_live.json")
    payload["stats"][0]["production"] = [0, 0, 12, 140, None, None]
    t = today.parse(payload, NOW).value
    assert t.day.channel_totals["production"] == pytest.approx(152 * WH)


def test_seed_payload_without_stats():
    parsed = parse("today_seed_battery.json")
    t = parsed.value
    assert parsed.problems == ()
    assert t.state_of_charge_ratio == pytest.approx(0.05)
    assert t.backup_reserve_ratio == 0.0
    assert t.charge_from_grid is True
    assert t.day is None and t.power_watts == {}


@pytest.mark.parametrize(
    ("usage", "profile"),
    [
        ("self-consumption", "self_consumption"),
        ("cost_savings", "cost_savings"),
        ("backup_only", "backup_only"),
        ("ai_optimisation", "ai_optimisation"),
        ("expert", "expert"),
        ("savings-mode", "cost_savings"),
        ("moon-mode", "unknown"),
    ],
)
def test_profiles(usage, profile):
    payload = load_fixture("today_seed_battery.json")
    payload["batteryConfig"]["usage"] = usage
    assert today.parse(payload, NOW).value.profile == profile


def test_bad_interval_length_drops_the_day_but_keeps_the_battery():
    payload = load_fixture("today_live.json")
    payload["stats"][0]["interval_length"] = 0
    parsed = today.parse(payload, NOW)
    assert parsed.value.day is None
    assert parsed.value.state_of_charge_ratio == pytest.approx(0.62)
    assert parsed.problems
