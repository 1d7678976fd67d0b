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
    assert ledger.next_span(date(2026, 3, 28), date(2023, 8, 10)) == (date(2023, 8, 10), date(2023, 11, 9))
    ledger.record(daily_energy.parse(load_fixture("daily_energy_live.json")).value, 1774690000)
    assert ledger.next_span(date(2026, 3, 28), date(2023, 8, 10)) == (date(2026, 3, 24), None)


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


def days_payload(starts, wh):
    return daily_energy.parse(
        {"stats": [{"start_time": s, "interval_length": 900, "production": [wh(s)]} for s in starts]}
    ).value


def test_settled_days_fold_into_one_sum_and_the_total_stays_exact():
    """Years of days must not stay in memory per site (1,000 sites made it most of the RSS)."""
    from exporter.lifetime import REFRESH_DAYS

    now = 1774700000.0
    starts = [now - 86400 * n - 3600 for n in range(1000, 0, -1)]
    ledger = DayLedger()
    ledger.record(days_payload(starts, lambda s: s % 97), observed_at=now)
    assert len(ledger._recent) <= REFRESH_DAYS + 4  # a week: the days a refresh can still revise, and margin
    assert ledger.totals(None)["production"] == pytest.approx(sum(s % 97 for s in starts) * WH)
    # A folded day seen again (never re-fetched in practice) is not counted twice, nor revised.
    ledger.record(days_payload(starts[:10], lambda s: 1000.0), observed_at=now + 60)
    assert ledger.totals(None)["production"] == pytest.approx(sum(s % 97 for s in starts) * WH)
    # The days a refresh covers can still be revised, upward or downward.
    ledger.record(days_payload(starts[-REFRESH_DAYS:], lambda s: 0.0), observed_at=now + 120)
    expected = sum(s % 97 for s in starts[:-REFRESH_DAYS])
    assert ledger.totals(None)["production"] == pytest.approx(expected * WH)


def test_a_day_stamped_in_the_future_does_not_settle_the_recent_days():
    now = 1774700000.0
    ledger = DayLedger()
    ledger.record(days_payload([now - 86400, now + 86400 * 30], lambda s: 1.0), observed_at=now)
    ledger.record(days_payload([now - 86400], lambda s: 5.0), observed_at=now + 60)  # yesterday revised
    assert ledger.totals(None)["production"] == pytest.approx((5.0 + 1.0) * WH)


def test_the_first_history_is_asked_for_in_parts_that_resume_and_end_open():
    from datetime import date, timedelta

    ledger = DayLedger()
    today_utc, site_start = date(2026, 3, 28), date(2025, 10, 1)
    spans = []
    while not ledger.has_history:
        start, end = ledger.next_span(today_utc, site_start)
        spans.append((start, end))
        ledger.record(days_payload([], lambda s: 0.0), observed_at=1774700000.0, through=end)
    assert spans == [
        (date(2025, 10, 1), date(2025, 12, 31)),
        (date(2026, 1, 1), None),  # 2026-04-01 would pass today: the last part runs through today
    ]
    assert all(end is None or (end - start) == timedelta(days=91) for start, end in spans)


def test_days_today_recorded_during_a_long_unfinished_history_do_not_hide_its_later_parts():
    """daily_energy fails for over a week after its first part while today keeps recording new days:
    when the history resumes, its older days must still count."""
    from datetime import date

    midnight = 1774656000.0  # 2026-03-28 00:00 UTC
    ledger = DayLedger()
    first = [midnight - 86400 * n for n in range(60, 30, -1)]
    ledger.record(days_payload(first, lambda s: 1.0), observed_at=midnight, through=date(2026, 2, 26))
    later_days = [midnight + 86400 * n for n in range(10)]  # today's readings, day after day
    for start in later_days:
        ledger.record_day(days_payload([start], lambda s: 2.0).days[0], observed_at=start + 80000)
    rest = [midnight - 86400 * n for n in range(30, 0, -1)]
    ledger.record(days_payload(rest + later_days, lambda s: 1.0), observed_at=later_days[-1] + 80000)
    # 60 days of history at 1 Wh; the ten days since, whose readings at 80,000 s into the day the
    # history answer (read later still) replaces where it is fresher.
    assert ledger.totals(None)["production"] == pytest.approx((60 + 10) * WH)
