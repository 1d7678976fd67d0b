"""The metric catalog is a contract: every listed metric is documented, and all that is exported too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fixture_cloud import PASTED_COOKIE, PASTED_TOKEN, FixtureCloud
from test_once import run_once

README = (Path(__file__).parent.parent / "README.md").read_text()

# The catalog's names (kept here because the project must test without the shared reference folder).
CATALOG = [
    "enphase_ev_charger_connected",
    "enphase_ev_charger_plugged_in",
    "enphase_ev_charger_charging",
    "enphase_ev_charger_faulted",
    "enphase_ev_charger_connector_status",
    "enphase_ev_charger_charging_current_setpoint_amperes",
    "enphase_ev_charger_session_energy_joules",
    "enphase_ev_charger_session_plugged_in_timestamp_seconds",
    "enphase_ev_charger_session_start_timestamp_seconds",
    "enphase_ev_charger_session_cost",
    "enphase_ev_charger_last_report_timestamp_seconds",
    "enphase_ev_charger_info",
    "enphase_ev_charger_max_current_amperes",
    "enphase_ev_charger_charge_level_min_amperes",
    "enphase_ev_charger_charge_level_max_amperes",
    "enphase_ev_charger_operating_voltage_volts",
    "enphase_ev_charger_phases",
    "enphase_ev_charger_energy_delivered_joules_total",
    "enphase_battery_state_of_charge_ratio",
    "enphase_battery_backup_reserve_ratio",
    "enphase_battery_very_low_soc_ratio",
    "enphase_battery_charge_from_grid_enabled",
    "enphase_battery_profile",
    "enphase_site_last_report_timestamp_seconds",
    "enphase_site_production_today_joules",
    "enphase_site_consumption_today_joules",
    "enphase_site_grid_import_today_joules",
    "enphase_site_grid_export_today_joules",
    "enphase_battery_charge_today_joules",
    "enphase_battery_discharge_today_joules",
    "enphase_site_energy_flow_today_joules",
    "enphase_site_production_power_watts",
    "enphase_site_consumption_power_watts",
    "enphase_site_grid_import_power_watts",
    "enphase_site_grid_export_power_watts",
    "enphase_battery_charge_power_watts",
    "enphase_battery_discharge_power_watts",
    "enphase_site_production_joules_total",
    "enphase_site_consumption_joules_total",
    "enphase_site_grid_import_joules_total",
    "enphase_site_grid_export_joules_total",
    "enphase_battery_charge_joules_total",
    "enphase_battery_discharge_joules_total",
    "enphase_counter_regressions_total",
    "enphase_up",
    "enphase_source_up",
    "enphase_source_last_success_timestamp_seconds",
    "enphase_api_requests_total",
    "enphase_api_request_duration_seconds",
    "enphase_parse_errors_total",
    "enphase_auth_ok",
    "enphase_auth_session_expiry_timestamp_seconds",
    "enphase_exporter_build_info",
]


def documented() -> set[str]:
    return set(re.findall(r"^\| `(enphase_[a-z_]+)` \|", README, re.M))


@pytest.mark.parametrize("name", CATALOG)
def test_every_catalog_metric_is_documented_in_the_readme(name):
    assert name in documented()


def test_everything_once_prints_is_documented(tmp_path):
    with FixtureCloud() as cloud:
        result = run_once(
            {
                "ENPHASE_BASE_URL": cloud.base_url,
                "ENPHASE_E_AUTH_TOKEN": PASTED_TOKEN,
                "ENPHASE_COOKIE": PASTED_COOKIE,
            },
            tmp_path,
        )
    families = set(re.findall(r"^# TYPE (\S+) ", result.stdout, re.M))
    assert families, result.stderr
    undocumented = {
        name for name in families if name not in documented() and f"{name}_total" not in documented()
    }
    assert not undocumented


def test_catalog_metrics_are_all_produced_from_live_shaped_payloads(tmp_path):
    with FixtureCloud() as cloud:
        result = run_once(
            {
                "ENPHASE_BASE_URL": cloud.base_url,
                "ENPHASE_E_AUTH_TOKEN": PASTED_TOKEN,
                "ENPHASE_COOKIE": PASTED_COOKIE,
            },
            tmp_path,
        )
    samples = {
        line.split("{")[0].split(" ")[0] for line in result.stdout.splitlines() if not line.startswith("#")
    }
    produced = samples | {
        name.rsplit("_", 1)[0] for name in samples if name.endswith(("_bucket", "_count", "_sum"))
    }
    # Only shown when something happens: a downward revision, a token with a known expiry.
    event_only = {"enphase_counter_regressions_total", "enphase_auth_session_expiry_timestamp_seconds"}
    assert set(CATALOG) - produced == event_only
