"""One poll end to end through the real client, against a scripted cloud (``responses``)."""

from __future__ import annotations

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
