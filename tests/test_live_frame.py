"""Decoding live stream frames built byte by byte (tests/protowire.py), as the cloud's sender writes them."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import pytest
from protowire import bytes_field, channel, data_msg, fixed32_field, int_field, varint

from exporter.live.frame import FrameError, decode

ROOT = Path(__file__).resolve().parent.parent


def battery_site_frame() -> bytes:
    meters = (
        bytes_field(1, channel(3_200_500, 3_300_000, [1_100_000, 1_050_000, 1_050_500]))  # pv
        + bytes_field(2, channel(-1_500_000, 1_600_000))  # storage: charging
        + bytes_field(3, channel(-400_250))  # grid: exporting
        + bytes_field(4, channel(1_300_250))  # load
        + int_field(5, 2)  # grid relay closed
        + int_field(6, 62)  # soc %
        + int_field(9, 3)
    )
    return data_msg(
        meters,
        int_field(4, 1),  # self consumption
        int_field(5, 20),  # reserve %
        bytes_field(9, int_field(1, 1) + int_field(2, 24) + int_field(3, 23) + int_field(4, 1)),
    )


def test_negative_int32_is_a_ten_byte_varint_and_decodes_signed() -> None:
    assert len(varint(-1_500_000)) == 10  # the frame really carries the 10-byte form
    frame = decode(battery_site_frame())
    assert frame.meters["storage"].watts == -1500.0
    assert frame.meters["grid"].watts == -400.25
    assert frame.meters["pv"].watts == 3200.5
    assert frame.meters["pv"].voltamperes == 3300.0
    assert frame.meters["pv"].phase_watts == (1100.0, 1050.0, 1050.5)
    assert frame.meters["load"].watts == 1300.25
    load = sum(frame.meters[m].watts for m in ("pv", "grid", "storage"))
    assert load == pytest.approx(frame.meters["load"].watts)


def test_ratios_modes_relays_and_microinverters() -> None:
    frame = decode(battery_site_frame())
    assert frame.state_of_charge_ratio == 0.62
    assert frame.backup_reserve_ratio == 0.2
    assert frame.battery_mode == "self_consumption"
    assert frame.grid_relay == "closed"
    assert frame.generator_relay is None  # no generator on this site
    assert (frame.microinverters_total, frame.microinverters_running) == (24, 23)


def test_absent_channels_are_absent_not_zero() -> None:
    frame = decode(data_msg(bytes_field(1, channel(500_000)) + bytes_field(3, channel(100_000))))
    assert set(frame.meters) == {"pv", "grid"}
    # No battery in the frame: its state of charge, reserve and mode are unknown, not 0 / full backup.
    assert frame.state_of_charge_ratio is None
    assert frame.backup_reserve_ratio is None
    assert frame.battery_mode is None
    assert frame.microinverters_total is None


def test_a_present_channel_with_no_numbers_is_zero_watts() -> None:
    frame = decode(data_msg(bytes_field(2, b"") + bytes_field(3, channel(250_000))))
    assert frame.meters["storage"].watts == 0.0
    assert frame.meters["storage"].phase_watts == ()
    # With a battery present, a missing soc/mode is proto3's 0: empty battery, full backup.
    assert frame.state_of_charge_ratio == 0.0
    assert frame.battery_mode == "full_backup"


def test_unknown_fields_and_enum_values_do_not_break_the_frame() -> None:
    meters = (
        bytes_field(3, channel(100_000))
        + int_field(5, 42)  # a grid relay state nobody documented
        + int_field(77, 5)  # an unknown varint field
        + fixed32_field(78, b"\x00\x00\x80?")
    )
    frame = decode(
        data_msg(
            meters,
            int_field(4, 9),  # an unknown battery mode
            bytes_field(6, int_field(1, 1) + int_field(2, 2)),  # dry contact relay status
            bytes_field(8, bytes_field(1, b"load-1") + bytes_field(2, b"on")),  # load status
            bytes_field(99, b"future"),
        )
    )
    assert frame.meters["grid"].watts == 100.0
    assert frame.grid_relay == "unknown"
    assert frame.battery_mode == "unknown"


@pytest.mark.parametrize(
    "field14",
    [
        bytes_field(14, int_field(1, 1) + int_field(2, 1)),  # older copies: a grid-toggle message
        bytes_field(14, channel(1_000_000)) + bytes_field(14, channel(-2_000_000)),  # newer: channels
    ],
    ids=["grid_toggle", "repeated_channels"],
)
def test_both_variants_of_field_14_are_skipped(field14: bytes) -> None:
    frame = decode(data_msg(bytes_field(1, channel(700_000)) + field14 + bytes_field(3, channel(-50_000))))
    assert frame.meters["pv"].watts == 700.0
    assert frame.meters["grid"].watts == -50.0
    assert set(frame.meters) == {"pv", "grid"}


def test_generator_and_its_relay() -> None:
    meters = bytes_field(3, channel(0)) + bytes_field(7, channel(2_000_000)) + int_field(8, 10)
    frame = decode(data_msg(meters))
    assert frame.meters["generator"].watts == 2000.0
    assert frame.generator_relay == "generator_ac_stable"
    assert frame.grid_relay == "unknown"


@pytest.mark.parametrize(
    "data",
    [b"\xff\xff\xff", battery_site_frame()[:-7], b"", int_field(1, 1)],
    ids=["garbage", "truncated", "empty", "no_meters"],
)
def test_bytes_that_are_no_frame_raise_frame_error(data: bytes) -> None:
    with pytest.raises(FrameError) as raised:
        decode(data)
    assert "bytes" in str(raised.value)


def test_the_committed_module_is_what_protoc_makes_of_the_proto() -> None:
    spec = importlib.util.spec_from_file_location("generate_proto", ROOT / "scripts" / "generate_proto.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    sys.modules["generate_proto"] = generator
    spec.loader.exec_module(generator)
    with tempfile.TemporaryDirectory() as out:
        module = generator.generate(Path(out))
        made, stub = module.read_text(), module.with_suffix(".pyi").read_text()
    assert made == (ROOT / "exporter" / "live" / "live_stream_pb2.py").read_text()
    assert stub == (ROOT / "exporter" / "live" / "live_stream_pb2.pyi").read_text()  # its types, for mypy
