"""The renderer on a fresh registry: exact names, labels, units; absent values stay absent."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import load_fixture
from prometheus_client import CollectorRegistry, generate_latest

from exporter.auth import AuthState
from exporter.lifetime import DAILY, DayLedger
from exporter.render_prometheus import SnapshotCollector
from exporter.snapshot import SnapshotStore, SourceHealth
from exporter.sources import daily_energy, ev_status, ev_summary, lifetime_energy, today

SITE = {"site_id": "7654321"}
CHARGER = {"site_id": "7654321", "serial": "EV1111111111"}
SOURCES = ("ev_status", "ev_summary", "today", "daily_energy")


def registry_for(store: SnapshotStore, auth: AuthState | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(
        SnapshotCollector(store, auth or AuthState(ok=True, session_expires_at=2e9), clock=lambda: 1e9)
    )
    return registry


@pytest.fixture
def store() -> SnapshotStore:
    store = SnapshotStore()
    ledger = DayLedger()
    ledger.record_lifetime(lifetime_energy.parse(load_fixture("lifetime_energy_live.json")).value, 1774680000)
    for day in daily_energy.parse(load_fixture("daily_energy_live.json")).value.days:
        ledger.record_day(day, 1774690000, DAILY)
    t = today.parse(load_fixture("today_live.json"), 1774700000).value
    ledger.record_day(t.day, 1774700000)
    health = {s: SourceHealth(True, 1774700000.0, 1774700000.0) for s in SOURCES}
    store.update_site(
        "7654321",
        lambda site: replace(
            site,
            ev_status=ev_status.parse(load_fixture("ev_status_live_charging.json")).value,
            ev_summary=ev_summary.parse(load_fixture("ev_summary_live.json")).value,
            today=t,
            lifetime_joules=ledger.totals(),
            health=health,
        ),
        SOURCES,
    )
    return store


def test_ev_status_series(store):
    r = registry_for(store)
    assert r.get_sample_value("enphase_ev_charger_charging", CHARGER) == 1
    assert r.get_sample_value("enphase_ev_charger_faulted", CHARGER) == 0
    assert r.get_sample_value("enphase_ev_charger_session_energy_joules", CHARGER) == pytest.approx(
        3542.11 * 3600
    )
    assert r.get_sample_value("enphase_ev_charger_charging_current_setpoint_amperes", CHARGER) == 32
    assert r.get_sample_value("enphase_ev_charger_session_start_timestamp_seconds", CHARGER) == 1774667402


def test_connector_status_is_a_state_set(store):
    r = registry_for(store)
    labels = {**CHARGER, "connector": "1"}
    values = {
        s: r.get_sample_value("enphase_ev_charger_connector_status", {**labels, "status": s})
        for s in ev_status.CONNECTOR_STATES
    }
    assert values["charging"] == 1
    assert sum(values.values()) == 1 and len(values) == 11


def test_summary_series_and_info_name_fallback(store):
    r = registry_for(store)
    assert (
        r.get_sample_value(
            "enphase_ev_charger_info",
            {**CHARGER, "name": "Carport", "model": "IQ-EVSE-EU-3032", "firmware_version": "25.37.1.13"},
        )
        == 1
    )
    assert r.get_sample_value("enphase_ev_charger_operating_voltage_volts", CHARGER) == 230
    assert r.get_sample_value("enphase_ev_charger_energy_delivered_joules_total", CHARGER) == pytest.approx(
        1234567.5 * 3600
    )
    # the second charger has no displayName and is not in the status payload: its name is empty
    assert r.get_sample_value(
        "enphase_ev_charger_info",
        {
            "site_id": "7654321",
            "serial": "EV2222222222",
            "name": "",
            "model": "IQ-EVSE-NA-1040",
            "firmware_version": "25.30.0.2",
        },
    )


def test_battery_and_site_series(store):
    r = registry_for(store)
    assert r.get_sample_value("enphase_battery_state_of_charge_ratio", SITE) == pytest.approx(0.62)
    assert r.get_sample_value("enphase_battery_profile", {**SITE, "profile": "self_consumption"}) == 1
    assert r.get_sample_value("enphase_battery_profile", {**SITE, "profile": "expert"}) == 0
    assert r.get_sample_value("enphase_site_production_today_joules", SITE) == pytest.approx(152 * 3600)
    assert r.get_sample_value("enphase_site_grid_import_today_joules", SITE) == pytest.approx(616 * 3600)
    assert r.get_sample_value("enphase_battery_charge_today_joules", SITE) == 0
    assert r.get_sample_value("enphase_site_production_power_watts", SITE) == pytest.approx(560)
    assert r.get_sample_value("enphase_battery_discharge_power_watts", SITE) == 0
    flow = {**SITE, "source": "solar", "sink": "home"}
    assert r.get_sample_value("enphase_site_energy_flow_today_joules", flow) == pytest.approx(152 * 3600)


def test_unmeasured_flows_are_absent_not_zero(store):
    r = registry_for(store)
    assert (
        r.get_sample_value(
            "enphase_site_energy_flow_today_joules", {**SITE, "source": "solar", "sink": "battery"}
        )
        is None
    )
    assert r.get_sample_value("enphase_site_load_today_joules", {**SITE, "load": "heatpump"}) is None


def test_lifetime_counters(store):
    """lifetime_energy's days through 2026-03-25 (03-26 unknown), daily_energy's 03-27, today's 03-28."""
    r = registry_for(store)
    assert r.get_sample_value("enphase_site_production_joules_total", SITE) == pytest.approx(
        (38400 + 2000 + 152) * 3600
    )
    assert r.get_sample_value("enphase_site_grid_export_joules_total", SITE) == pytest.approx(
        (7600 + 700 + 0) * 3600
    )
    assert r.get_sample_value("enphase_battery_charge_joules_total", SITE) == pytest.approx(
        (11200 + 500 + 0) * 3600
    )


def test_health_and_auth(store):
    r = registry_for(store)
    assert r.get_sample_value("enphase_up", SITE) == 1
    assert r.get_sample_value("enphase_source_up", {**SITE, "source": "today"}) == 1
    assert (
        r.get_sample_value("enphase_source_last_success_timestamp_seconds", {**SITE, "source": "today"})
        == 1774700000
    )
    assert r.get_sample_value("enphase_auth_ok") == 1
    assert r.get_sample_value("enphase_auth_session_expiry_timestamp_seconds") == 2e9
    assert r.get_sample_value("enphase_auth_login_blocked_until_timestamp_seconds") is None


def test_one_failing_source_marks_the_site_down_but_keeps_everything(store):
    store.update_site(
        "7654321",
        lambda site: replace(
            site, health={**site.health, "today": SourceHealth(False, 1774700100.0, 1774700000.0, "HTTP 503")}
        ),
    )
    r = registry_for(store)
    assert r.get_sample_value("enphase_up", SITE) == 0
    assert r.get_sample_value("enphase_source_up", {**SITE, "source": "today"}) == 0
    assert r.get_sample_value("enphase_source_up", {**SITE, "source": "ev_status"}) == 1
    assert r.get_sample_value("enphase_battery_state_of_charge_ratio", SITE) == pytest.approx(0.62)
    assert (
        r.get_sample_value("enphase_source_last_success_timestamp_seconds", {**SITE, "source": "today"})
        == 1774700000
    )


def test_a_charger_that_leaves_takes_its_series_with_it(store):
    store.update_site("7654321", lambda site: replace(site, ev_status=ev_status.EvStatus(None, None, ())))
    r = registry_for(store)
    assert r.get_sample_value("enphase_ev_charger_charging", CHARGER) is None


def test_login_pause_is_shown_only_while_it_lasts():
    store = SnapshotStore()
    assert (
        registry_for(store, AuthState(login_paused_until=2e9)).get_sample_value(
            "enphase_auth_login_blocked_until_timestamp_seconds"
        )
        == 2e9
    )
    assert (
        registry_for(store, AuthState(login_paused_until=5e8)).get_sample_value(
            "enphase_auth_login_blocked_until_timestamp_seconds"
        )
        is None
    )


def test_help_says_how_often_values_refresh(store):
    text = generate_latest(registry_for(store)).decode()
    assert (
        "# HELP enphase_ev_charger_charging 1 while charging. From ev_chargers/status, refreshed every 60 s"
        in text
    )
    assert "# TYPE enphase_site_production_joules_total counter" in text
    assert "_created" not in text
