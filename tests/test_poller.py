"""One poll end to end through the real client, against a scripted cloud (``responses``)."""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta

import pytest
import responses
from conftest import load_fixture
from prometheus_client import CollectorRegistry

from exporter.auth import PastedHeaders
from exporter.client import CloudClient, RequestMetrics, Transport
from exporter.poller import Poller, Telemetry
from exporter.snapshot import SnapshotStore

BASE = "http://cloud.test"
SITE = "7654321"
TODAY = f"{BASE}/pv/systems/{SITE}/today"
STATUS = f"{BASE}/service/evse_controller/{SITE}/ev_chargers/status"


@pytest.fixture
def setup():
    registry = CollectorRegistry()
    transport = Transport(BASE, RequestMetrics(registry), retries=0)
    store = SnapshotStore()
    client = CloudClient(transport, PastedHeaders("token-1234", "c=cookie-5678", BASE + "/"))
    return Poller(client, store, Telemetry(registry), clock=lambda: 1774700000.0), store, registry


@responses.activate
def test_a_failing_source_keeps_its_last_good_values_and_the_others(setup, caplog):
    poller, store, _ = setup
    responses.add(responses.GET, TODAY, json=load_fixture("today_live.json"))
    responses.add(responses.GET, STATUS, json=load_fixture("ev_status_live_charging.json"))
    assert poller.poll(SITE, "today") and poller.poll(SITE, "ev_status")
    responses.replace(responses.GET, TODAY, status=503)
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        assert not poller.poll(SITE, "today")
    site = store.current.sites[SITE]
    assert site.today.state_of_charge_ratio == pytest.approx(0.62)  # last good value kept
    assert not site.health["today"].up and site.health["today"].last_success_timestamp == 1774700000.0
    assert site.health["ev_status"].up and site.ev_status.any_charging
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one line when it starts failing, not one per poll
    responses.replace(responses.GET, TODAY, json=load_fixture("today_live.json"))
    assert poller.poll(SITE, "today")
    assert "works again" in caplog.records[-1].getMessage()


@responses.activate
def test_schema_drift_is_counted_and_the_rest_still_yields(setup):
    poller, store, registry = setup
    payload = load_fixture("ev_status_live_idle.json")  # 2 unreadable fields
    payload["data"]["chargers"][0]["pluggedIn"] = "sometimes"  # and a third
    responses.add(responses.GET, STATUS, json=payload)
    assert poller.poll(SITE, "ev_status")
    assert registry.get_sample_value("enphase_parse_errors_total", {"source": "ev_status"}) == 3
    charger = store.current.sites[SITE].ev_status.chargers[0]
    assert charger.plugged_in is None and charger.connected is True


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("[" * 100000 + "]" * 100000, "application/json"),  # nesting deeper than any parser's recursion
        ('{"data": {"chargers": [', "application/json"),  # truncated
        ('{"data": {"chargers": [{"sn": "EV1", "connected": 1' + "0" * 400 + "}]}}", "application/json"),
    ],
    ids=["deep", "truncated", "huge-number"],
)
@responses.activate
def test_hostile_payloads_are_parse_errors_not_crashes(setup, body, content_type):
    poller, store, registry = setup
    responses.add(responses.GET, STATUS, body=body, content_type=content_type)
    poller.poll(SITE, "ev_status")
    assert registry.get_sample_value("enphase_parse_errors_total", {"source": "ev_status"}) >= 1
    assert store.current.sites[SITE].health["ev_status"].error != "internal error (see the log)"


@responses.activate
def test_an_impossible_start_date_is_a_problem_not_a_crash(setup):
    poller, store, registry = setup
    payload = load_fixture("today_live.json")
    payload["start_date"] = "2023-13-45"
    responses.add(responses.GET, TODAY, json=payload)
    assert poller.poll(SITE, "today")
    assert store.current.sites[SITE].today.utc_offset_seconds is None
    assert registry.get_sample_value("enphase_parse_errors_total", {"source": "today"}) == 1


DAILY = f"{BASE}/pv/systems/{SITE}/daily_energy"
LIFETIME = f"{BASE}/pv/systems/{SITE}/lifetime_energy"
FIRST_DAY = date(2023, 8, 10)
TODAY_DATE = date(2026, 3, 28)  # today_live.json's day
PROD = "enphase_site_production_joules_total"


def day_wh(day: date) -> int:
    return day.toordinal() % 7


def lifetime_payload() -> dict:
    """Every day from the site's first through today (today's entry so far), one Wh value per day."""
    days = [FIRST_DAY + timedelta(days=i) for i in range((TODAY_DATE - FIRST_DAY).days + 1)]
    return {
        "system_id": int(SITE),
        "start_date": FIRST_DAY.isoformat(),
        "production": [day_wh(d) for d in days],
    }


def daily_cloud(asked: list[dict[str, str]]):
    """A daily_energy answer for the asked days (the same Wh per day as lifetime_payload) through today,
    whose buckets are today_live.json's (lifetime_energy's entry for today lags behind, as it does live)."""

    def answer(request):
        query = dict(item.split("=") for item in request.url.partition("?")[2].split("&"))
        asked.append(query)
        day = date.fromisoformat(query["start_date"])
        last = min(date.fromisoformat(query.get("end_date", TODAY_DATE.isoformat())), TODAY_DATE)
        stats = []
        while day <= last:
            midnight = (day - date(1970, 1, 1)).days * 86400 - 3600  # local midnight, UTC+1
            production = [0, 0, 12, 140] if day == TODAY_DATE else [day_wh(day)]
            stats.append({"start_time": midnight, "interval_length": 900, "production": production})
            day += timedelta(days=1)
        return 200, {"Content-Type": "application/json"}, json.dumps({"system_id": int(SITE), "stats": stats})

    return answer


def expected_history_wh(through: date = TODAY_DATE - timedelta(days=1)) -> float:
    return float(sum(day_wh(FIRST_DAY + timedelta(days=i)) for i in range((through - FIRST_DAY).days + 1)))


@responses.activate
def test_the_lifetime_counters_start_from_the_sites_first_day_in_one_request(setup):
    """Not from today.start_date, which in the live payload is today's date."""
    poller, store, registry = setup
    responses.add(responses.GET, TODAY, json=load_fixture("today_live.json"))
    responses.add(responses.GET, LIFETIME, json=lifetime_payload())
    asked: list[dict[str, str]] = []
    responses.add_callback(responses.GET, DAILY, callback=daily_cloud(asked))
    assert poller.poll(SITE, "lifetime_energy")
    # not before daily_energy has checked the last few days bucket by bucket: a counter never goes back down
    assert store.current.sites[SITE].lifetime_joules == {}
    assert poller.poll(SITE, "today") and poller.poll(SITE, "daily_energy")
    assert len(responses.calls) == 3  # the whole life in one request, then one for the last few days
    assert asked == [{"start_date": "2026-03-24"}]
    today_wh = 152.0  # today's fixture total: fresher than lifetime_energy's entry for today
    lifetime = store.current.sites[SITE].lifetime_joules["production"]
    assert lifetime == pytest.approx((expected_history_wh() + today_wh) * 3600)
    assert (
        registry.get_sample_value("enphase_counter_regressions_total", {"site_id": SITE, "metric": PROD})
        is None
    )
    assert poller.poll(SITE, "lifetime_energy")  # an hour later: its entry for today still lags
    assert store.current.sites[SITE].lifetime_joules["production"] == pytest.approx(lifetime)
    assert (
        registry.get_sample_value("enphase_counter_regressions_total", {"site_id": SITE, "metric": PROD})
        is None
    )


@responses.activate
def test_without_lifetime_energy_the_counters_wait_and_the_source_says_why(setup):
    poller, store, _ = setup
    responses.add(responses.GET, TODAY, json=load_fixture("today_live.json"))
    responses.add(responses.GET, LIFETIME, status=503)
    responses.add_callback(responses.GET, DAILY, callback=daily_cloud([]))
    assert not poller.poll(SITE, "lifetime_energy")
    assert poller.poll(SITE, "today") and poller.poll(SITE, "daily_energy")
    site = store.current.sites[SITE]
    assert site.lifetime_joules == {}  # a few recent days are no lifetime: no counter rather than a low one
    assert "503" in site.health["lifetime_energy"].error and not site.up
    responses.replace(responses.GET, LIFETIME, json=lifetime_payload())
    assert poller.poll(SITE, "lifetime_energy")
    assert store.current.sites[SITE].lifetime_joules["production"] == pytest.approx(
        (expected_history_wh() + 152.0) * 3600
    )


@responses.activate
def test_the_history_start_setting_moves_the_first_day(setup):
    _, store, _ = setup
    transport = Transport(BASE, RequestMetrics(CollectorRegistry()), retries=0)
    client = CloudClient(transport, PastedHeaders("token-1234", "c=cookie-5678", BASE + "/"))
    start = date(2026, 1, 1)
    sources = ("today", "lifetime_energy")  # no daily_energy: the counters need only lifetime_energy
    telemetry = Telemetry(CollectorRegistry())
    poller = Poller(
        client, store, telemetry, history_start=start, sources=sources, clock=lambda: 1774700000.0
    )
    responses.add(responses.GET, LIFETIME, json=lifetime_payload())
    assert poller.poll(SITE, "lifetime_energy")
    expected = expected_history_wh(TODAY_DATE) - expected_history_wh(start - timedelta(days=1))
    assert store.current.sites[SITE].lifetime_joules["production"] == pytest.approx(expected * 3600)


@responses.activate
def test_a_day_of_placeholders_and_broken_values_reaches_no_output(setup):
    """A zero-filled heatpump array on a site that never had one, and a bucket of 4 GW: neither reaches the
    snapshot that both renderers read."""
    poller, store, registry = setup
    payload = load_fixture("today_live.json")
    payload["stats"][0]["heatpump"] = [0, 0, 0, 0]
    payload["stats"][0]["import"][1] = 1e9
    responses.add(responses.GET, TODAY, json=payload)
    responses.add(responses.GET, LIFETIME, json=load_fixture("lifetime_energy_live.json"))
    assert poller.poll(SITE, "lifetime_energy") and poller.poll(SITE, "today")
    day = store.current.sites[SITE].today.day
    assert "heatpump" not in day.loads and "evse" in day.loads  # evse: the site's history has evse energy
    assert day.channel_totals["grid_import"] == pytest.approx((93 + 198 + 232) * 3600)
    assert registry.get_sample_value("enphase_parse_errors_total", {"source": "today"}) == 1


@responses.activate
def test_a_broken_bucket_in_lifetime_energys_total_of_a_recent_day_never_reaches_the_counter():
    """Yesterday holds one 800 kWh bucket on a 10 kW site: daily_energy leaves it out, and lifetime_energy's
    total of the day (within a day's ceiling) must not get into the counter first, where it would stay."""
    store, registry = SnapshotStore(), CollectorRegistry()
    client = CloudClient(
        Transport(BASE, RequestMetrics(registry), retries=0), PastedHeaders("t-1234", "c=c-5678", BASE + "/")
    )
    clock = [1774652400 + 5400.0]  # 2026-03-28 01:30 in UTC+1
    poller = Poller(client, store, Telemetry(registry), max_site_power_watts=10_000, clock=lambda: clock[0])
    yesterday = [100] * 95 + [800_000]
    lifetime = {"start_date": "2026-03-19", "production": [10_000] * 8 + [sum(yesterday), 0]}
    responses.add(responses.GET, LIFETIME, json=lifetime)
    day = {"start_time": 1774566000, "interval_length": 900, "production": yesterday, "totals": {}}
    responses.add(responses.GET, DAILY, json={"stats": [day]})
    assert poller.poll(SITE, "lifetime_energy")
    assert store.current.sites[SITE].lifetime_joules == {}
    clock[0] += 2
    assert poller.poll(SITE, "daily_energy")
    assert store.current.sites[SITE].lifetime_joules["production"] == pytest.approx((80_000 + 9_500) * 3600)
    clock[0] += 3600
    assert poller.poll(SITE, "lifetime_energy")  # an hour later, lifetime_energy again: the day stays checked
    assert store.current.sites[SITE].lifetime_joules["production"] == pytest.approx((80_000 + 9_500) * 3600)
    assert (
        registry.get_sample_value("enphase_counter_regressions_total", {"site_id": SITE, "metric": PROD})
        is None
    )


# -- further sources: their model in the snapshot, followers, partial answers, sources that cannot work ------

BATTERY_SETTINGS = f"{BASE}/service/batteryConfig/api/v1/batterySettings/{SITE}"
INVERTERS = f"{BASE}/app-api/{SITE}/inverters.json"
INVERTER_ENERGY = f"{BASE}/systems/{SITE}/inverter_data_x/energy.json"


def further(setup_: tuple, *sources: str) -> Poller:
    store = setup_[1]
    transport = Transport(BASE, RequestMetrics(CollectorRegistry()), retries=0)
    client = CloudClient(transport, PastedHeaders("token-1234", "c=cookie-5678", BASE + "/"))
    return Poller(client, store, Telemetry(CollectorRegistry()), sources=sources, clock=lambda: 1774700000.0)


@responses.activate
def test_site_status_follows_each_successful_today_poll_without_a_request(setup):
    poller = further(setup, "today", "site_status")
    store = setup[1]
    responses.add(responses.GET, TODAY, json={**load_fixture("today_live.json"), "siteStatus": "comm"})
    assert poller.poll(SITE, "today")
    site = store.current.sites[SITE]
    assert site.models["site_status"].status == "comm" and site.health["site_status"].up
    assert len(responses.calls) == 1  # today's request only
    responses.replace(responses.GET, TODAY, status=503)
    assert not poller.poll(SITE, "today")
    assert store.current.sites[SITE].health["site_status"].last_attempt_timestamp == 1774700000.0
    assert len(responses.calls) == 2  # a failed today runs no follower


@responses.activate
def test_a_source_that_cannot_work_for_the_account_is_turned_off_once(setup, caplog):
    poller = further(setup, "today", "battery_settings")  # the pasted token names no user
    store = setup[1]
    responses.add(responses.GET, TODAY, json=load_fixture("today_live.json"))
    caplog.set_level(logging.WARNING)
    assert not poller.poll(SITE, "battery_settings")
    assert not poller.poll(SITE, "battery_settings")
    assert poller.poll(SITE, "today")
    site = store.current.sites[SITE]
    assert site.sources == ("today",) and site.up  # enphase_up no longer waits for it
    assert site.health["battery_settings"].error.startswith(
        "off: battery_settings needs the account's user id"
    )
    assert not any(call.request.url.startswith(BATTERY_SETTINGS) for call in responses.calls)
    lines = [r.getMessage() for r in caplog.records if "turned off" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"Site {SITE}: battery_settings is turned off: ")


@responses.activate
def test_an_incomplete_answer_is_shown_and_the_source_is_down(setup):
    poller = further(setup, "inverters")
    store = setup[1]
    inverter = {"id": 1, "serial_number": "I1", "status": "normal", "last_report": 1774675100}
    responses.add(responses.GET, INVERTERS, json={"total": 1, "inverters": [inverter]})
    responses.add(responses.GET, INVERTER_ENERGY, status=503)
    assert not poller.poll(SITE, "inverters")
    site = store.current.sites[SITE]
    assert [i.serial for i in site.models["inverters"].inverters] == ["I1"]
    health = site.health["inverters"]
    assert (
        not health.up and "inverter_energy" in health.error and "shown without today's energy" in health.error
    )
