"""One live stream frame (ENLIGHTEN_API.md §7.4): protobuf ``DataMsg`` bytes → a frozen ``LiveFrame``.

Pure: no I/O, no clock (the caller stamps the frame on arrival, since the frame's own timestamp is a constant
placeholder). Units are converted here, once: milliwatts → watts, percent → ratio. Signs stay as the stream
signs them: grid > 0 importing, storage > 0 discharging.

A meter channel the frame does not carry (no ``storage`` on a site without a battery, no ``generator``) is
absent from ``meters``, never a 0 W meter; inside a channel that is present, proto3 leaves a 0 out of the
frame, so there an absent number *is* 0. Unknown fields (6 to 8, the two published variants of field 14) are
skipped and unknown enumeration values read as ``unknown``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from google.protobuf.message import DecodeError

from exporter.live import live_stream_pb2 as pb

METERS = ("pv", "storage", "grid", "load", "generator")
BATTERY_MODES = ("full_backup", "self_consumption", "savings", "unknown")
RELAY_STATES = (
    "unknown",
    "open",
    "closed",
    "offgrid_ac_grid_present",
    "offgrid_ready_for_resync",
    "waiting_to_initialize_on_grid",
    "generator_open",
    "generator_closed",
    "generator_startup",
    "generator_sync_ready",
    "generator_ac_stable",
    "generator_ac_unstable",
)
_BATTERY_MODE_BY_NUMBER = {0: "full_backup", 1: "self_consumption", 2: "savings"}
_MILLI = 1000.0


class FrameError(ValueError):
    """The bytes are not a ``DataMsg``. The message names no content of the frame."""


@dataclass(frozen=True, slots=True)
class Meter:
    watts: float
    voltamperes: float
    phase_watts: tuple[float, ...]  # one per phase, in order; empty when the frame has none


@dataclass(frozen=True, slots=True)
class LiveFrame:
    meters: Mapping[str, Meter]  # only the meters the frame carries
    state_of_charge_ratio: float | None
    backup_reserve_ratio: float | None
    battery_mode: str | None  # one of BATTERY_MODES
    grid_relay: str | None  # one of RELAY_STATES
    generator_relay: str | None
    microinverters_total: int | None
    microinverters_running: int | None


def decode(data: bytes) -> LiveFrame:
    """Raises ``FrameError`` for bytes that are not a frame (garbled, truncated, or with no meters)."""
    message = pb.DataMsg()
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeWarning) as error:
        raise FrameError(f"not a DataMsg ({len(data)} bytes): {type(error).__name__}") from None
    if not message.HasField("meters"):
        raise FrameError(f"a DataMsg without meters ({len(data)} bytes)")
    summary = message.meters
    meters = {name: _meter(getattr(summary, name)) for name in METERS if summary.HasField(name)}
    # proto3 drops a 0 from the wire, so a 0 % battery or reserve and the FULL_BACKUP mode (0) only show as
    # "absent". Where the frame carries a storage meter, the site has a battery and absent means 0.
    has_battery = "storage" in meters
    soc = summary.soc if summary.HasField("soc") or has_battery else None
    reserve = message.backup_soc if message.HasField("backup_soc") or has_battery else None
    mode = message.batt_mode if message.HasField("batt_mode") or has_battery else None
    has_generator = "generator" in meters or summary.HasField("gen_relay")
    micro = message.power_match_status if message.HasField("power_match_status") else None
    return LiveFrame(
        meters=MappingProxyType(meters),
        state_of_charge_ratio=None if soc is None else soc / 100,
        backup_reserve_ratio=None if reserve is None else reserve / 100,
        battery_mode=None if mode is None else _BATTERY_MODE_BY_NUMBER.get(mode, "unknown"),
        grid_relay=_relay(summary.grid_relay),
        generator_relay=_relay(summary.gen_relay) if has_generator else None,
        microinverters_total=micro.total_pcu_count if micro is not None else None,
        microinverters_running=micro.running_pcu_count if micro is not None else None,
    )


def _meter(channel: pb.MeterChannel) -> Meter:
    return Meter(
        watts=channel.agg_p_mw / _MILLI,
        voltamperes=channel.agg_s_mva / _MILLI,
        phase_watts=tuple(mw / _MILLI for mw in channel.agg_p_ph_mw),
    )


def _relay(number: int) -> str:
    return RELAY_STATES[number] if 0 <= number < len(RELAY_STATES) else "unknown"
