"""Issue 13's acceptance: ``once`` against a scripted cloud with every further endpoint in the shapes of
ENLIGHTEN_API.md §7b prints exactly the values these payloads mean, and promtool accepts the exposition.

The payloads below are written for this test alone (no other test or fixture uses them); each expected value
is worked out by hand in the comment beside it.
"""

from __future__ import annotations

import json
import re

from conftest import FIXTURES
from fixture_cloud import ROUTES, SITE, FixtureCloud, pasted_headers
from test_once import promtool_check, run_once

CHARGE_MODE = f"/service/evse_scheduler/api/v1/iqevc/charging-mode/{SITE}/{{}}/preference"
TODAY = json.loads((FIXTURES / "today_live.json").read_text())


def preference(enabled: str) -> dict[str, object]:
    keys = ("manualCharging", "scheduledCharging", "greenCharging", "smartCharging")
    return {"data": {"modes": {key: {"enabled": key == enabled, "chargingMode": "X"} for key in keys}}}


PAYLOADS: dict[str, object] = {
    f"/pv/systems/{SITE}/today": {**TODAY, "siteStatus": "comm"},
    f"/app-api/{SITE}/get_latest_power": {
        "latest_power": {"value": "1.234", "units": "kW", "precision": 3, "time": "1774675200"}
    },
    f"/app-api/{SITE}/devices.json": {
        "result": [
            {"type": "envoy", "devices": [
                {"name": "IQ Gateway", "serial_number": "GW1", "sku_id": "ENV-IQ-AM1", "status": "normal",
                 "statusText": "Normal", "last_report": 1774675000, "sw_version": "D8.3.1"},
            ]},
            {"type": "meter", "devices": [
                {"name": "Net meter", "serial_number": "MTR1", "sku_id": "CT-200", "status": "not_reporting",
                 "last_report": "1774600000"},
            ]},
            {"curr_date_site": "2026-03-28"},
        ]
    },
    f"/pv/settings/{SITE}/battery_status.json": {
        "current_charge": "71%", "available_energy": 7.1, "max_capacity": 10.0, "available_power": 7.68,
        "max_power": 7.68,
        "storages": [
            {"serial_num": "B1", "current_charge": "71%", "available_energy": 3.55, "max_capacity": 5.0,
             "status": "normal", "last_report": 1774675000, "cycle_count": 120, "battery_soh": "97%",
             "rated_power": 3840, "battery_mode": "Self - Consumption"},
            {"serial_num": "B2", "current_charge": "N/A", "available_energy": "3.55", "max_capacity": "5.0",
             "status": "sleeping", "last_report": 1774674900, "cycle_count": "44", "battery_soh": "N/A",
             "rated_power": 3840},
        ],
    },
    f"/service/batteryConfig/api/v1/batterySettings/{SITE}": {
        "type": "battery-details",
        "timestamp": "2026-03-28T05:00:00.000Z[UTC]",
        "data": {"profile": "self-consumption", "batteryBackupPercentage": 30, "stormGuardState": "disabled",
                 "chargeFromGrid": True, "chargeFromGridScheduleEnabled": True, "chargeBeginTime": 60,
                 "chargeEndTime": 360, "veryLowSoc": 10, "requestedConfig": {"batteryBackupPercentage": 40}},
    },
    CHARGE_MODE.format("EV1111111111"): preference("smartCharging"),
    CHARGE_MODE.format("EV2222222222"): preference("scheduledCharging"),
    f"/app-api/{SITE}/inverters.json": {
        "total": 3, "not_reporting": 1,
        "inverters": [
            {"id": 501, "name": "Inverter 1", "serial_number": "I1", "sku_id": "IQ8M", "status": "normal",
             "statusText": "Normal", "last_report": 1774675100, "array_name": "Garage roof"},
            {"id": 502, "name": "Inverter 2", "serial_number": "I2", "sku_id": "IQ8M", "status": "error",
             "statusText": "Error", "last_report": 1774590000, "array_name": "Garage roof"},
            {"id": 503, "name": "Inverter 3", "serial_number": "I3", "sku_id": "IQ8A", "status": "normal",
             "statusText": "Normal", "last_report": 1774675100, "array_name": "Shed"},
        ],
    },
    f"/systems/{SITE}/inverter_data_x/energy.json": {"production": {"501": 1200, "502": 0, "503": "1350.5"}},
}  # fmt: skip

S = f'site_id="{SITE}"'
EXPECTED = {
    # today.siteStatus "comm": the gateway stopped reporting
    f'enphase_site_status{{{S},status="normal"}}': 0.0,
    f'enphase_site_status{{{S},status="comm"}}': 1.0,
    f'enphase_site_status{{{S},status="warning"}}': 0.0,
    f'enphase_site_status{{{S},status="error"}}': 0.0,
    f'enphase_site_status{{{S},status="unknown"}}': 0.0,
    # "1.234" kW = 1234 W, sampled at "1774675200" s
    f"enphase_site_latest_production_power_watts{{{S}}}": 1234.0,
    f"enphase_site_latest_production_timestamp_seconds{{{S}}}": 1774675200.0,
    'enphase_device_info{firmware_version="D8.3.1",model="ENV-IQ-AM1",name="IQ Gateway",serial="GW1",'
    f'{S},type="envoy"}}': 1.0,
    'enphase_device_info{firmware_version="",model="CT-200",name="Net meter",serial="MTR1",'
    f'{S},type="meter"}}': 1.0,
    f'enphase_device_normal{{serial="GW1",{S},type="envoy"}}': 1.0,
    f'enphase_device_normal{{serial="MTR1",{S},type="meter"}}': 0.0,
    f'enphase_device_last_report_timestamp_seconds{{serial="GW1",{S},type="envoy"}}': 1774675000.0,
    f'enphase_device_last_report_timestamp_seconds{{serial="MTR1",{S},type="meter"}}': 1774600000.0,
    # kWh x 3.6e6 = J; kW x 1000 = W; "71%" = 0.71; "N/A" is absent
    f"enphase_battery_capacity_joules{{{S}}}": 36_000_000.0,
    f"enphase_battery_available_energy_joules{{{S}}}": 25_560_000.0,
    f"enphase_battery_max_power_watts{{{S}}}": 7680.0,
    f"enphase_battery_available_power_watts{{{S}}}": 7680.0,
    f'enphase_battery_unit_state_of_charge_ratio{{serial="B1",{S}}}': 0.71,
    f'enphase_battery_unit_health_ratio{{serial="B1",{S}}}': 0.97,
    f'enphase_battery_unit_cycles_total{{serial="B1",{S}}}': 120.0,
    f'enphase_battery_unit_cycles_total{{serial="B2",{S}}}': 44.0,
    f'enphase_battery_unit_capacity_joules{{serial="B1",{S}}}': 18_000_000.0,
    f'enphase_battery_unit_capacity_joules{{serial="B2",{S}}}': 18_000_000.0,
    f'enphase_battery_unit_available_energy_joules{{serial="B1",{S}}}': 12_780_000.0,
    f'enphase_battery_unit_available_energy_joules{{serial="B2",{S}}}': 12_780_000.0,
    f'enphase_battery_unit_rated_power_watts{{serial="B1",{S}}}': 3840.0,
    f'enphase_battery_unit_rated_power_watts{{serial="B2",{S}}}': 3840.0,
    f'enphase_battery_unit_normal{{serial="B1",{S}}}': 1.0,
    f'enphase_battery_unit_normal{{serial="B2",{S}}}': 0.0,
    f'enphase_battery_unit_sleeping{{serial="B1",{S}}}': 0.0,
    f'enphase_battery_unit_sleeping{{serial="B2",{S}}}': 1.0,
    f'enphase_battery_unit_last_report_timestamp_seconds{{serial="B1",{S}}}': 1774675000.0,
    f'enphase_battery_unit_last_report_timestamp_seconds{{serial="B2",{S}}}': 1774674900.0,
    # stormGuardState "disabled"; the schedule from 60 to 360 minutes after midnight; a change waits
    f"enphase_battery_storm_guard_enabled{{{S}}}": 0.0,
    f"enphase_battery_charge_from_grid_schedule_enabled{{{S}}}": 1.0,
    f"enphase_battery_charge_from_grid_schedule_start_seconds{{{S}}}": 3600.0,
    f"enphase_battery_charge_from_grid_schedule_end_seconds{{{S}}}": 21600.0,
    f"enphase_battery_settings_pending{{{S}}}": 1.0,
    # EV1111111111's status payload says green (sch_d) and has not changed: the preference, smart, stands
    **{f'enphase_ev_charger_charge_mode{{mode="{m}",serial="EV1111111111",{S}}}': float(m == "smart")
       for m in ("manual", "scheduled", "green", "smart", "unknown")},
    **{f'enphase_ev_charger_charge_mode{{mode="{m}",serial="EV2222222222",{S}}}': float(m == "scheduled")
       for m in ("manual", "scheduled", "green", "smart", "unknown")},
    f'enphase_inverter_info{{array="Garage roof",model="IQ8M",serial="I1",{S}}}': 1.0,
    f'enphase_inverter_info{{array="Garage roof",model="IQ8M",serial="I2",{S}}}': 1.0,
    f'enphase_inverter_info{{array="Shed",model="IQ8A",serial="I3",{S}}}': 1.0,
    f'enphase_inverter_normal{{serial="I1",{S}}}': 1.0,
    f'enphase_inverter_normal{{serial="I2",{S}}}': 0.0,
    f'enphase_inverter_normal{{serial="I3",{S}}}': 1.0,
    f'enphase_inverter_last_report_timestamp_seconds{{serial="I1",{S}}}': 1774675100.0,
    f'enphase_inverter_last_report_timestamp_seconds{{serial="I2",{S}}}': 1774590000.0,
    f'enphase_inverter_last_report_timestamp_seconds{{serial="I3",{S}}}': 1774675100.0,
    # Wh x 3600 = J
    f'enphase_inverter_production_today_joules{{serial="I1",{S}}}': 4_320_000.0,
    f'enphase_inverter_production_today_joules{{serial="I2",{S}}}': 0.0,
    f'enphase_inverter_production_today_joules{{serial="I3",{S}}}': 4_861_800.0,
}  # fmt: skip
FURTHER = re.compile(
    r"^(enphase_site_status|enphase_site_latest_\w+|enphase_device_\w+|enphase_battery_unit_\w+|"
    r"enphase_battery_(capacity|available|max_power|storm|charge_from_grid_schedule|settings)\w*|"
    r"enphase_ev_charger_charge_mode|enphase_inverter_\w+)\{"
)


def canonical(series: str) -> str:
    """``name{labels}`` with its labels sorted, so that two spellings of one series compare equal."""
    name, _, labels = series.partition("{")
    return name + "{" + ",".join(sorted(labels.rstrip("}").split(","))) + "}"


def samples(exposition: str) -> dict[str, float]:
    """Each sample line as its canonical series -> value."""
    found = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            found[canonical(series)] = float(value)
    return found


def test_once_prints_exactly_what_the_further_endpoints_mean(tmp_path):
    with FixtureCloud({**ROUTES, **PAYLOADS}) as cloud:
        result = run_once(pasted_headers(cloud), tmp_path)
    assert result.returncode == 0, result.stderr
    printed = samples(result.stdout)
    further = {series: value for series, value in printed.items() if FURTHER.match(series)}
    assert further == {canonical(series): value for series, value in EXPECTED.items()}
    for source in ("site_status", "latest_power", "devices", "battery_status", "battery_settings",
                   "charge_mode", "inverters"):  # fmt: skip
        assert printed[f'enphase_source_up{{{S},source="{source}"}}'] == 1.0
        assert printed[f'enphase_parse_errors_total{{source="{source}"}}'] == 0.0
    promtool_check(result.stdout)
