"""One poll end to end through the real client, against a scripted cloud (``responses``)."""

from __future__ import annotations

import json
import logging

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
    assert store.current.sites[SITE].today.site_start_date is None
    assert registry.get_sample_value("enphase_parse_errors_total", {"source": "today"}) == 1


DAILY = f"{BASE}/pv/systems/{SITE}/daily_energy"


def history_cloud(asked: list[dict[str, str]], failing: set[int] = frozenset()):
    """A daily_energy answer for exactly the asked days (one Wh value per day, different per day), through
    2026-03-27; the n-th request (1-based) in ``failing`` answers 503 instead."""
    from datetime import date, timedelta

    def answer(request):
        query = dict(item.split("=") for item in request.url.partition("?")[2].split("&"))
        asked.append(query)
        if len(asked) in failing:
            return 503, {}, "busy"
        day = date.fromisoformat(query["start_date"])
        last = min(date.fromisoformat(query.get("end_date", "2026-03-27")), date(2026, 3, 27))
        stats = []
        while day <= last:
            midnight = (day - date(1970, 1, 1)).days * 86400
            wh = day.toordinal() % 7
            stats.append({"start_time": midnight, "interval_length": 900, "production": [wh]})
            day += timedelta(days=1)
        return 200, {"Content-Type": "application/json"}, json.dumps({"system_id": int(SITE), "stats": stats})

    return answer


def expected_history_wh() -> float:
    from datetime import date

    first, last = date(2023, 8, 10).toordinal(), date(2026, 3, 27).toordinal()
    return float(sum(ordinal % 7 for ordinal in range(first, last + 1)))


@responses.activate
def test_the_first_history_comes_a_quarter_at_a_time_and_each_part_reaches_the_outputs():
    registry = CollectorRegistry()
    transport = Transport(BASE, RequestMetrics(registry), retries=0)
    store, heard = SnapshotStore(), []
    client = CloudClient(transport, PastedHeaders("token-1234", "c=cookie-5678", BASE + "/"))
    poller = Poller(client, store, Telemetry(registry), listeners=[heard.append], clock=lambda: 1774700000.0)
    asked: list[dict[str, str]] = []
    responses.add(responses.GET, TODAY, json=load_fixture("today_live.json"))  # the site began 2023-08-10
    responses.add_callback(responses.GET, DAILY, callback=history_cloud(asked))
    assert poller.poll(SITE, "today") and poller.poll(SITE, "daily_energy")

    assert asked[0] == {"start_date": "2023-08-10", "end_date": "2023-11-09"}
    assert "end_date" not in asked[-1] and len(asked) == 11  # 962 days up to 2026-03-28, 92 per part
    parts = [polled.history for polled in heard if polled.source == "daily_energy"]
    assert len(parts) == len(asked)  # each part handed on as it came, not kept for the end
    days = [day.start_timestamp for part in parts for day in part.days]
    assert len(days) == len(set(days)) == 961  # every day once (the cloud has no item for today)
    today_wh = 152.0  # today's fixture total: fresher than any daily_energy reading of that day
    lifetime = store.current.sites[SITE].lifetime_joules["production"]
    assert lifetime == pytest.approx((expected_history_wh() + today_wh) * 3600)


@responses.activate
def test_a_history_that_fails_halfway_resumes_after_the_last_part_without_counting_a_day_twice(setup):
    poller, store, _ = setup
    asked: list[dict[str, str]] = []
    responses.add(responses.GET, TODAY, json=load_fixture("today_live.json"))
    responses.add_callback(responses.GET, DAILY, callback=history_cloud(asked, failing={3}))
    assert poller.poll(SITE, "today")
    assert not poller.poll(SITE, "daily_energy")
    assert "production" not in store.current.sites[SITE].lifetime_joules  # two parts are not a lifetime
    assert poller.poll(SITE, "daily_energy")
    assert asked[3]["start_date"] == asked[2]["start_date"] == "2024-02-10"  # resumed at the failed part
    lifetime = store.current.sites[SITE].lifetime_joules["production"]
    assert lifetime == pytest.approx((expected_history_wh() + 152.0) * 3600)
    assert poller.poll(SITE, "daily_energy")
    assert asked[-1] == {"start_date": "2026-03-24"}  # then only the last few days
    assert store.current.sites[SITE].lifetime_joules["production"] == pytest.approx(lifetime)


@responses.activate
def test_the_history_waits_for_today_to_name_the_sites_first_day(setup):
    poller, store, _ = setup
    asked: list[dict[str, str]] = []
    responses.add_callback(responses.GET, DAILY, callback=history_cloud(asked))
    responses.add(responses.GET, TODAY, status=503)
    assert not poller.poll(SITE, "today")
    assert not poller.poll(SITE, "daily_energy")
    assert asked == []  # not a request per quarter since 2008 to read empty days
    assert "waiting for today" in store.current.sites[SITE].health["daily_energy"].error
    responses.replace(responses.GET, TODAY, json=load_fixture("today_live.json"))
    assert poller.poll(SITE, "today") and poller.poll(SITE, "daily_energy")
    assert asked[0]["start_date"] == "2023-08-10"


@responses.activate
def test_a_stopping_exporter_leaves_the_history_between_two_parts(setup):
    poller, store, _ = setup
    asked: list[dict[str, str]] = []
    answer = history_cloud(asked)

    def stop_after_the_second_part(request):
        if len(asked) == 1:
            poller.stop()  # as PollScheduler.shutdown does, from another thread, while a part is fetched
        return answer(request)

    responses.add(responses.GET, TODAY, json=load_fixture("today_live.json"))
    responses.add_callback(responses.GET, DAILY, callback=stop_after_the_second_part)
    assert poller.poll(SITE, "today")
    assert not poller.poll(SITE, "daily_energy")
    assert len(asked) == 2  # the part under way was finished; no third one was asked for
    assert "stopped before the history was complete" in store.current.sites[SITE].health["daily_energy"].error
