"""What each model offers, by metric name: the one table both renderers read.

A row is (metric name, help, getter). The Prometheus renderer writes the metric; the InfluxDB renderer writes
a field named like the metric without its ``enphase_<area>_`` prefix (``enphase_ev_charger_charging`` →
measurement ``enphase_ev_charger``, field ``charging``). A getter returning None means the value is absent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeAlias, TypeVar

from exporter.sources.ev_status import ChargerStatus
from exporter.sources.ev_summary import ChargerSummary
from exporter.sources.today import Today

Model = TypeVar("Model")
# (metric name, help, getter): the getter reads one model type, which mypy checks against each table's rows.
Row: TypeAlias = tuple[str, str, Callable[[Model], float | bool | None]]

CHARGER_STATUS_GAUGES: tuple[Row[ChargerStatus], ...] = (
    ("enphase_ev_charger_connected", "1 when the charger is connected to the cloud.", lambda c: c.connected),
    ("enphase_ev_charger_plugged_in", "1 when a vehicle is plugged in.", lambda c: c.plugged_in),
    ("enphase_ev_charger_charging", "1 while charging.", lambda c: c.charging),
    ("enphase_ev_charger_faulted", "1 when the charger reports a fault.", lambda c: c.faulted),
    (
        "enphase_ev_charger_charging_current_setpoint_amperes",
        "Current setpoint while charging, in amperes.",
        lambda c: c.charging_current_setpoint_amperes,
    ),
    (
        "enphase_ev_charger_session_energy_joules",
        "Energy of the current or last charging session, in joules.",
        lambda c: c.session_energy_joules,
    ),
    (
        "enphase_ev_charger_session_plugged_in_timestamp_seconds",
        "When the vehicle of the current or last session was plugged in (Unix time).",
        lambda c: c.session_plugged_in_timestamp,
    ),
    (
        "enphase_ev_charger_session_start_timestamp_seconds",
        "When charging of the current or last session started (Unix time).",
        lambda c: c.session_start_timestamp,
    ),
    (
        "enphase_ev_charger_session_cost",
        "Cost of the current or last session, in the site's currency.",
        lambda c: c.session_cost,
    ),
    (
        "enphase_ev_charger_last_report_timestamp_seconds",
        "When the charger last reported to the cloud (Unix time).",
        lambda c: c.last_report_timestamp,
    ),
)

CHARGER_SUMMARY_GAUGES: tuple[Row[ChargerSummary], ...] = (
    (
        "enphase_ev_charger_max_current_amperes",
        "Hardware maximum current, in amperes.",
        lambda c: c.max_current_amperes,
    ),
    (
        "enphase_ev_charger_charge_level_min_amperes",
        "Lowest settable charging current, in amperes.",
        lambda c: c.charge_level_min_amperes,
    ),
    (
        "enphase_ev_charger_charge_level_max_amperes",
        "Highest settable charging current, in amperes.",
        lambda c: c.charge_level_max_amperes,
    ),
    (
        "enphase_ev_charger_operating_voltage_volts",
        "Nominal operating voltage, in volts.",
        lambda c: c.operating_voltage_volts,
    ),
    ("enphase_ev_charger_phases", "Number of phases the charger uses (1 or 3).", lambda c: c.phases),
)

TODAY_GAUGES: tuple[Row[Today], ...] = (
    (
        "enphase_battery_state_of_charge_ratio",
        "Aggregate battery state of charge (0-1).",
        lambda t: t.state_of_charge_ratio,
    ),
    (
        "enphase_battery_backup_reserve_ratio",
        "Battery reserve kept for outages (0-1).",
        lambda t: t.backup_reserve_ratio,
    ),
    (
        "enphase_battery_very_low_soc_ratio",
        "Very-low state-of-charge limit (0-1).",
        lambda t: t.very_low_soc_ratio,
    ),
    (
        "enphase_battery_charge_from_grid_enabled",
        "1 when charging the battery from the grid is allowed.",
        lambda t: t.charge_from_grid,
    ),
    (
        "enphase_site_last_report_timestamp_seconds",
        "When the site last reported to the cloud (Unix time).",
        lambda t: t.last_report_timestamp,
    ),
    (
        "enphase_site_power_interval_end_timestamp_seconds",
        "End of the settled interval that the *_power_watts gauges average (Unix time).",
        lambda t: t.power_interval_end_timestamp,
    ),
)

# channel -> what the channel is, for HELP strings
CHANNEL_MEANING: Mapping[str, str] = {
    "production": "produced",
    "consumption": "consumed",
    "grid_import": "imported from the grid",
    "grid_export": "exported to the grid",
    "battery_charge": "charged into the battery",
    "battery_discharge": "discharged from the battery",
}


def channel_metric(channel: str, suffix: str) -> str:
    """``production`` → ``enphase_site_production_<suffix>``; battery channels: ``enphase_battery_``."""
    area = "" if channel.startswith("battery_") else "site_"
    return f"enphase_{area}{channel}_{suffix}"
