import pytest
from conftest import load_fixture

from exporter.lifetime import CounterGuard, DayLedger
from exporter.sources import daily_energy, today

WH = 3600.0


def test_days_are_sorted_and_unmeasured_days_are_empty():
    parsed = daily_energy.parse(load_fixture("daily_energy_live.json"))
    assert parsed.problems == ()
    days = parsed.value.days
    assert [d.start_timestamp for d in days] == [1774479600, 1774566000, 1774652400]
    assert days[0].channel_totals == {}  # before the site reported: [] everywhere
    assert days[1].channel_totals["production"] == pytest.approx(2000 * WH)
    assert days[1].channel_totals["grid_import"] == pytest.approx(700 * WH)  # not totals.grid_import


def test_lifetime_is_settled_days_plus_today_so_far():
    ledger = DayLedger()
    ledger.record(daily_energy.parse(load_fixture("daily_energy_live.json")).value, 1774690000)
    fresh_today = today.parse(load_fixture("today_live.json"), 1774700000).value.day
    totals = ledger.totals(fresh_today)
    # yesterday from daily_energy + today's fresher 152 Wh (not daily_energy's partial 10 Wh)
    assert totals["production"] == pytest.approx((2000 + 152) * WH)
    assert totals["battery_discharge"] == pytest.approx(100 * WH)


def test_lifetime_without_today_uses_the_partial_day():
    ledger = DayLedger()
    ledger.record(daily_energy.parse(load_fixture("daily_energy_live.json")).value, 1774690000)
    assert ledger.totals(None)["production"] == pytest.approx((2000 + 10) * WH)


def test_a_channel_no_day_measured_is_absent():
    ledger = DayLedger()
    ledger.record(
        daily_energy.parse(
            {"stats": [{"start_time": 1774566000, "interval_length": 900, "production": [5], "charge": []}]}
        ).value,
        observed_at=1,
    )
    assert set(ledger.totals(None)) == {"production"}


def test_counter_guard_holds_and_counts_regressions():
    seen = []
    guard = CounterGuard(lambda site, metric: seen.append((site, metric)))
    assert guard.hold("1", "m", 10.0) == 10.0
    assert guard.hold("1", "m", 9.0) == 10.0
    assert guard.hold("1", "m", 12.0) == 12.0
    assert guard.hold("2", "m", 1.0) == 1.0  # another site is another counter
    assert seen == [("1", "m")]


def test_first_fetch_is_whole_history_then_recent_days():
    from datetime import date

    ledger = DayLedger()
    assert ledger.next_fetch_start(date(2026, 3, 28), date(2023, 8, 10)) == date(2023, 8, 10)
    ledger.record(daily_energy.parse(load_fixture("daily_energy_live.json")).value, 1774690000)
    assert ledger.next_fetch_start(date(2026, 3, 28), date(2023, 8, 10)) == date(2026, 3, 24)


def test_yesterdays_last_today_reading_carries_over_midnight():
    """daily_energy read yesterday at 23:30; today read it again at 23:55. After midnight the counter must
    keep the 23:55 value, or it would drop (and be held, counting a regression) until the next hourly poll."""
    yesterday, midnight = 1774566000, 1774652400
    ledger = DayLedger()
    ledger.record(
        daily_energy.parse(
            {"stats": [{"start_time": yesterday, "interval_length": 900, "production": [10]}]}
        ).value,
        observed_at=midnight - 1800,
    )
    late_reading = today.parse(
        {"stats": [{"start_time": yesterday, "interval_length": 900, "production": [10.5]}]}, midnight - 300
    ).value.day
    ledger.record_day(late_reading, observed_at=midnight - 300)
    after_midnight = today.parse(
        {"stats": [{"start_time": midnight, "interval_length": 900, "production": [0.2]}]}, midnight + 300
    ).value.day
    assert ledger.totals(after_midnight)["production"] == pytest.approx((10.5 + 0.2) * WH)
    # and an older daily_energy answer never overwrites a fresher reading
    ledger.record(
        daily_energy.parse(
            {"stats": [{"start_time": yesterday, "interval_length": 900, "production": [10]}]}
        ).value,
        observed_at=midnight - 3600,
    )
    assert ledger.totals(after_midnight)["production"] == pytest.approx((10.5 + 0.2) * WH)


def test_today_readings_alone_are_not_a_lifetime():
    ledger = DayLedger()
    ledger.record_day(today.parse(load_fixture("today_live.json"), 1774700000).value.day, 1774700000)
    assert not ledger.has_history
    assert ledger.totals(None) == {}
