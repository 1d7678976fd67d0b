from datetime import date, timedelta

import pytest
from conftest import load_fixture

from exporter.lifetime import DAILY, CounterGuard, DayLedger
from exporter.sources import daily_energy, lifetime_energy, today

WH = 3600.0


def test_days_are_sorted_and_unmeasured_days_are_empty():
    parsed = daily_energy.parse(load_fixture("daily_energy_live.json"))
    assert parsed.problems == ()
    days = parsed.value.days
    assert [d.start_timestamp for d in days] == [1774479600, 1774566000, 1774652400]
    assert days[0].channel_totals == {}  # before the site reported: [] everywhere
    assert days[1].channel_totals["production"] == pytest.approx(2000 * WH)
    assert days[1].channel_totals["grid_import"] == pytest.approx(700 * WH)  # not totals.grid_import


def record(ledger, daily, observed_at):
    for day in daily.days:
        ledger.record_day(day, observed_at, DAILY)


def lifetime(payload=None):
    return lifetime_energy.parse(payload or load_fixture("lifetime_energy_live.json")).value


def test_lifetime_is_every_day_then_fresher_recent_days_then_today_so_far():
    ledger = DayLedger()
    ledger.record_lifetime(lifetime(), observed_at=1774690000)
    # 2026-03-20 to 2026-03-28, the unknown 03-26 left out
    assert ledger.totals()["production"] == pytest.approx(40440 * WH)
    record(ledger, daily_energy.parse(load_fixture("daily_energy_live.json")).value, 1774695000)
    fresh_today = today.parse(load_fixture("today_live.json"), 1774700000).value.day
    ledger.record_day(fresh_today, 1774700000)
    # daily_energy's 03-27 (2000 Wh) replaces lifetime's 1900; today's 152 Wh replaces both readings of 03-28
    assert ledger.totals()["production"] == pytest.approx((38400 + 2000 + 152) * WH)
    assert ledger.totals()["battery_discharge"] == pytest.approx((10900 + 100 + 0) * WH)


def test_lifetime_without_today_uses_the_partial_day():
    ledger = DayLedger()
    ledger.record_lifetime(lifetime(), observed_at=1774690000)
    record(ledger, daily_energy.parse(load_fixture("daily_energy_live.json")).value, 1774695000)
    assert ledger.totals()["production"] == pytest.approx((38400 + 2000 + 10) * WH)


def test_a_channel_no_day_measured_is_absent():
    ledger = DayLedger()
    ledger.record_lifetime(
        lifetime({"start_date": "2026-03-27", "production": [5], "charge": []}), 1774700000
    )
    assert set(ledger.totals()) == {"production"}


def test_counter_guard_holds_and_counts_regressions():
    seen = []
    guard = CounterGuard(lambda site, metric: seen.append((site, metric)))
    assert guard.hold("1", "m", 10.0) == 10.0
    assert guard.hold("1", "m", 9.0) == 10.0
    assert guard.hold("1", "m", 12.0) == 12.0
    assert guard.hold("2", "m", 1.0) == 1.0  # another site is another counter
    assert seen == [("1", "m")]


def test_daily_energy_asks_for_the_last_few_days_never_before_the_first_day():
    ledger = DayLedger()
    assert ledger.refresh_span(date(2026, 3, 28)) == date(2026, 3, 24)
    ledger.record_lifetime(lifetime(), observed_at=1774690000)
    assert ledger.refresh_span(date(2026, 3, 28)) == date(2026, 3, 24)
    assert ledger.refresh_span(date(2026, 3, 22)) == date(2026, 3, 20)  # the site's first day
    assert ledger.first_day == date(2026, 3, 20)
    assert DayLedger(history_start=date(2026, 3, 25)).first_day == date(2026, 3, 25)


def test_yesterdays_last_today_reading_carries_over_midnight():
    """daily_energy read yesterday at 23:30; today read it again at 23:55. After midnight the counter must
    keep the 23:55 value, or it would drop (and be held, counting a regression) until the next hourly poll."""
    yesterday, midnight = 1774566000, 1774652400
    ledger = DayLedger()
    ledger.record_lifetime(lifetime({"start_date": "2026-03-27", "production": [None]}), midnight - 7200)
    record(
        ledger,
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
    ledger.record_day(after_midnight, observed_at=midnight + 300)
    assert ledger.totals()["production"] == pytest.approx((10.5 + 0.2) * WH)
    # and an older daily_energy answer never overwrites a fresher reading
    record(
        ledger,
        daily_energy.parse(
            {"stats": [{"start_time": yesterday, "interval_length": 900, "production": [10]}]}
        ).value,
        observed_at=midnight - 3600,
    )
    assert ledger.totals()["production"] == pytest.approx((10.5 + 0.2) * WH)


def test_an_unprocessed_day_never_replaces_a_known_one():
    """After midnight the cloud answers yesterday with [] arrays and totals {} for a while (lifetime_energy
    with null): that says nothing of the day, so the 23:55 reading of it stays."""
    yesterday, midnight = 1774566000, 1774652400
    ledger = DayLedger()
    ledger.learn_offset(3600)  # today told it: the site is in UTC+1
    ledger.record_lifetime(lifetime({"start_date": "2026-03-26", "production": [100]}), midnight - 7200)
    ledger.record_day(
        today.parse(
            {"stats": [{"start_time": yesterday, "interval_length": 900, "production": [10.5]}]},
            midnight - 300,
        ).value.day,
        observed_at=midnight - 300,
    )
    unprocessed = {"start_time": yesterday, "interval_length": 900, "production": [], "totals": {}}
    record(ledger, daily_energy.parse({"stats": [unprocessed]}).value, observed_at=midnight + 600)
    ledger.record_lifetime(
        lifetime({"start_date": "2026-03-26", "production": [100, None, 0]}), observed_at=midnight + 900
    )
    assert ledger.totals()["production"] == pytest.approx((100 + 10.5) * WH)
    # Once processed, the whole day replaces the 23:55 reading, which missed the last minutes.
    processed = {**unprocessed, "production": [11], "totals": {"production": 11}}
    record(ledger, daily_energy.parse({"stats": [processed]}).value, observed_at=midnight + 7200)
    assert ledger.totals()["production"] == pytest.approx((100 + 11) * WH)


def test_a_lagging_entry_for_today_never_hides_todays_own_reading_west_of_utc_plus_1():
    """Los Angeles, 18:00 on 2026-03-27 (01:00 UTC the next day), before today has told the site's offset:
    lifetime_energy's entry for the site's today (15 kWh, lagging) must not count as a whole day."""
    la_midnight = 1774594800  # 2026-03-27 00:00 in Los Angeles (UTC-7)
    now = la_midnight + 18 * 3600
    ledger = DayLedger()
    ledger.record_lifetime(lifetime({"start_date": "2026-03-26", "production": [10000, 15000]}), now)
    day = {"start_time": la_midnight, "interval_length": 900, "production": [21000]}
    ledger.record_day(today.parse({"stats": [day]}, now).value.day, now + 1)
    assert ledger.totals()["production"] == pytest.approx((10000 + 21000) * WH)


def test_a_whole_day_from_daily_energy_beats_lifetime_energys_total_of_it():
    """lifetime_energy's day total is checked per day only; daily_energy's buckets one by one: a broken
    bucket that daily_energy left out must not come back through lifetime_energy's total."""
    yesterday, midnight = 1774566000, 1774652400
    ledger = DayLedger()
    ledger.learn_offset(3600)
    broken = {"start_time": yesterday, "interval_length": 900, "production": [100, 800_000]}
    record(ledger, daily_energy.parse({"stats": [broken]}, max_power_watts=10_000).value, midnight + 7200)
    ledger.record_lifetime(lifetime({"start_date": "2026-03-27", "production": [800_100]}), midnight + 7300)
    assert ledger.totals()["production"] == pytest.approx(100 * WH)


def test_a_today_reading_never_counts_as_a_whole_day():
    """today still serving yesterday after midnight (a 25-hour day, a slow cloud) is a reading taken while
    the day lasted: daily_energy's correction of the day replaces it."""
    yesterday, midnight = 1774566000, 1774652400
    ledger = DayLedger()
    ledger.learn_offset(3600)
    ledger.record_lifetime(lifetime({"start_date": "2026-03-27", "production": [None]}), midnight - 7200)
    stale = {"start_time": yesterday, "interval_length": 900, "production": [9000]}
    ledger.record_day(today.parse({"stats": [stale]}, midnight + 7200).value.day, midnight + 7200)
    corrected = {"start_time": yesterday, "interval_length": 900, "production": [9400]}
    record(ledger, daily_energy.parse({"stats": [corrected]}).value, midnight + 7300)
    assert ledger.totals()["production"] == pytest.approx(9400 * WH)


def test_an_offset_that_jumps_by_more_than_an_hour_is_not_learned():
    ledger = DayLedger()
    ledger.learn_offset(-36000)  # Honolulu
    ledger.learn_offset(50400)  # a today whose date and midnight are a day apart
    assert ledger._offset == -36000
    ledger.learn_offset(-32400)  # an hour's change (daylight saving): learned
    assert ledger._offset == -32400


def test_lifetime_entries_beyond_the_sites_tomorrow_are_not_days_yet():
    now = 1774700000.0  # 2026-03-28 in UTC+1
    ledger = DayLedger()
    ledger.record_lifetime(lifetime({"start_date": "2026-03-27", "production": [1, 2, 4, 8]}), now)
    assert ledger.totals()["production"] == pytest.approx((1 + 2 + 4) * WH)  # 03-30 is not a day yet


def test_today_readings_alone_are_not_a_lifetime():
    ledger = DayLedger()
    ledger.record_day(today.parse(load_fixture("today_live.json"), 1774700000).value.day, 1774700000)
    assert not ledger.has_history
    assert ledger.totals() == {}


def test_days_before_the_history_start_setting_are_not_counted():
    ledger = DayLedger(history_start=date(2026, 3, 27))
    ledger.record_lifetime(lifetime(), observed_at=1774690000)
    assert ledger.totals()["production"] == pytest.approx((1900 + 140) * WH)


def test_what_the_site_measures_comes_from_its_history():
    ledger = DayLedger()
    ledger.record_lifetime(lifetime(), observed_at=1774690000)
    # evse had energy on a day; water_heater is zeros (a placeholder), heatpump [] (not measured)
    assert {"production", "grid_import", "evse"} <= ledger.measured
    assert not {"heatpump", "water_heater"} & ledger.measured


def test_settled_days_fold_into_one_sum_and_the_total_stays_exact():
    """Years of days must not stay in memory per site (1,000 sites made it most of the RSS)."""
    from exporter.lifetime import SETTLED_AFTER_DAYS

    now = 1774700000.0  # 2026-03-28
    days = [(n * 37) % 97 for n in range(1000)]  # 1000 days through 2026-03-28
    first = date(2026, 3, 28) - timedelta(days=999)
    ledger = DayLedger()
    ledger.record_lifetime(lifetime({"start_date": first.isoformat(), "production": days}), observed_at=now)
    assert len(ledger._recent) <= SETTLED_AFTER_DAYS + 1  # a week: the days a refresh can still revise
    assert ledger.totals()["production"] == pytest.approx(sum(days) * WH)
    # A folded day seen again is not counted twice, nor revised.
    ledger.record_lifetime(
        lifetime({"start_date": first.isoformat(), "production": [1000.0] * 10}), observed_at=now + 60
    )
    assert ledger.totals()["production"] == pytest.approx(sum(days) * WH)
    # The recent days can still be revised, upward or downward.
    revised = [*days[:-3], 0, 0, 0]
    ledger.record_lifetime(lifetime({"start_date": first.isoformat(), "production": revised}), now + 120)
    assert ledger.totals()["production"] == pytest.approx(sum(revised) * WH)


def test_a_day_stamped_in_the_future_does_not_settle_the_recent_days():
    now = 1774700000.0
    ledger = DayLedger()
    ledger.record_lifetime(lifetime({"start_date": "2026-03-27", "production": [1]}), observed_at=now)
    record(ledger, days_payload([now + 86400 * 30], lambda s: 1.0), observed_at=now)
    ledger.record_lifetime(lifetime({"start_date": "2026-03-27", "production": [5]}), observed_at=now + 60)
    assert ledger.totals()["production"] == pytest.approx((5.0 + 1.0) * WH)


def days_payload(starts, wh):
    return daily_energy.parse(
        {"stats": [{"start_time": s, "interval_length": 900, "production": [wh(s)]} for s in starts]}
    ).value


def test_a_channel_measured_only_long_ago_is_not_measured_now():
    """A battery removed years ago: its charge must not read 0 J every day from now on."""
    charge = [500] * 100 + [None] * 40
    parsed = lifetime(
        {"start_date": "2026-01-01", "charge": charge, "production": [1] * 140, "evse": [0] * 139 + [5]}
    )
    assert "battery_charge" not in parsed.measured
    assert {"production", "evse"} <= parsed.measured
