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


def test_last_report_is_epoch_seconds_and_start_date_kept():
    t = parse().value
    assert t.last_report_timestamp == 1774656000
    assert t.site_start_date == "2023-08-10"


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
    assert "heatpump" not in day.loads and "evse" in day.loads


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
