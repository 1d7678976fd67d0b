"""A hand-written protobuf wire encoder for tests: frames built byte by byte, independent of the protobuf
library the exporter decodes them with, so a test shows the decoder reads the wire format the cloud sends."""

from __future__ import annotations


def varint(value: int) -> bytes:
    """Base-128 varint; a negative int32/int64 is sent as its 64-bit two's complement (10 bytes)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def int_field(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def bytes_field(number: int, payload: bytes) -> bytes:
    return key(number, 2) + varint(len(payload)) + payload


def packed(number: int, values: list[int]) -> bytes:
    return bytes_field(number, b"".join(varint(v) for v in values))


def fixed32_field(number: int, raw4: bytes) -> bytes:
    return key(number, 5) + raw4


def channel(mw: int = 0, mva: int = 0, phases_mw: list[int] | None = None) -> bytes:
    """A MeterChannel; zeros left out, as proto3 senders do."""
    body = b""
    if mw:
        body += int_field(1, mw)
    if mva:
        body += int_field(2, mva)
    if phases_mw:
        body += packed(3, phases_mw)
    return body


def data_msg(meters: bytes, *extra: bytes) -> bytes:
    return int_field(1, 1) + int_field(2, 1700000000) + bytes_field(3, meters) + b"".join(extra)
