"""Devices of a site — ``GET /app-api/<site_id>/devices.json``.

One group per device type (``envoy``, ``encharge``, ``enpower``, ``meter``, ``q_relay``, ``generator``,
``dryContactLoads``, ``wirelessRangeExtender``, ``iqCollars``, …), each with its ``devices``; the list ends
with an item of metadata (``{"curr_date_site": "2026-02-08"}``), which has no ``devices`` and is not a group.
The type is kept as sent (made safe as text), so a type the cloud adds later shows up without a change here.
One series per device and metric: a device is its (type, serial); a device without a serial cannot be told
apart from the next one and is left out, and a second device of the same type and serial is left out too
(both counted). Sample output::

    enphase_device_info{site_id="7",type="envoy",serial="1222",name="GW",model="SC1",firmware_version="8"} 1.0
    enphase_device_normal{site_id="7",type="envoy",serial="1222"} 1.0
    enphase_device_last_report_timestamp_seconds{site_id="7",type="envoy",serial="1222"} 1.774674802e+09

Units, per field: ``last_report`` is epoch s (a numeric string is read too; ``"N/A"`` is absent, not a
problem); ``status`` is text, ``"normal"`` (in any case) when all is well: any other status reads 0, none (or
``"N/A"``) is absent. ``name``, ``sku_id`` (the model) and ``sw_version`` (the firmware) are text, absent when
not sent. ``inverters`` reads ``status`` and ``last_report`` of its items the same way (``normal``,
``last_report``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exporter.readings import Gauge, Info, Reading
from exporter.sources.source import Fetch, Source
from exporter.values import NOT_AVAILABLE, Parsed, PayloadError, Reader, require_object

if TYPE_CHECKING:
    from exporter.snapshot import SiteSnapshot

ENDPOINT = "devices"
NORMAL = "normal"
# A site has tens of devices; far more is a broken answer, and every device is a series of its own.
MAX_DEVICES = 1000


@dataclass(frozen=True, slots=True)
class Device:
    type: str  # as the cloud names the group: "envoy", "encharge", "meter", …
    serial: str
    name: str | None
    model: str | None  # sku_id
    firmware_version: str | None  # sw_version
    normal: bool | None  # status is "normal"; None when no status was sent
    last_report_timestamp: float | None


@dataclass(frozen=True, slots=True)
class Devices:
    devices: tuple[Device, ...]  # in the order sent; (type, serial) unique


def path(site_id: str) -> str:
    return f"/app-api/{site_id}/devices.json"


def parse(payload: Any) -> Parsed[Devices]:
    body = require_object(payload, ENDPOINT)
    groups = body.get("result")
    if not isinstance(groups, list):
        raise PayloadError(f"{ENDPOINT}: no list of device groups (result)")
    reader = Reader()
    devices: list[Device] = []
    seen: set[tuple[str, str]] = set()
    for index, group in enumerate(groups):
        where = f"{ENDPOINT}.result[{index}]"
        if not isinstance(group, Mapping):
            reader.problem(where, f"expected an object, got {type(group).__name__}")
            continue
        if "devices" not in group:
            continue  # the trailing metadata item ({"curr_date_site": …}), not a group
        kind = reader.text(group, "type", where, required=True)
        kind = kind.strip() if kind else None
        if not kind:
            if "type" in group:
                reader.problem(f"{where}.type", "empty")
            continue
        for number, item in enumerate(reader.objects(group, "devices", f"{ENDPOINT}.{kind}")):
            here = f"{ENDPOINT}.{kind}[{number}]"
            serial = serial_number(reader, item, here)
            if serial is None:
                continue  # no serial, no series
            if (kind, serial) in seen:
                reader.problem(here, "a second device of this type with the same serial: left out")
                continue
            if len(devices) == MAX_DEVICES:
                reader.problem(here, f"more than {MAX_DEVICES} devices: the rest left out")
                return Parsed(Devices(tuple(devices)), tuple(reader.problems))
            seen.add((kind, serial))
            devices.append(
                Device(
                    type=kind,
                    serial=serial,
                    name=text_value(reader, item, "name", here),
                    model=text_value(reader, item, "sku_id", here),
                    firmware_version=text_value(reader, item, "sw_version", here),
                    normal=normal(reader, item, here),
                    last_report_timestamp=last_report(reader, item, here),
                )
            )
    return Parsed(Devices(tuple(devices)), tuple(reader.problems))


def serial_number(reader: Reader, item: Mapping[str, Any], where: str) -> str | None:
    """``serial_number``, stripped; None when it is absent, null, empty or not text, always as one problem."""
    before = len(reader.problems)
    serial = text_value(reader, item, "serial_number", where)
    if serial is None and len(reader.problems) == before:
        reader.problem(f"{where}.serial_number", "none: left out")
    return serial


def normal(reader: Reader, item: Mapping[str, Any], where: str) -> bool | None:
    """Whether ``status`` is "normal" (in any case); None when there is no status, or "N/A"."""
    status = reader.word(item, "status", where)
    return None if status is None else status == NORMAL


def last_report(reader: Reader, item: Mapping[str, Any], where: str) -> float | None:
    """``last_report``, epoch s; "N/A" is absent, not a problem."""
    raw = item.get("last_report")
    if isinstance(raw, str) and raw.strip().lower() in NOT_AVAILABLE:
        return None
    return reader.timestamp(item, "last_report", where, epoch_unit="s")


def text_value(reader: Reader, item: Mapping[str, Any], key: str, where: str) -> str | None:
    """Stripped text; None when absent, empty or "N/A" (no value, as the other further sources read it)."""
    text = reader.text(item, key, where)
    text = text.strip() if text is not None else None
    return None if not text or text.lower() in NOT_AVAILABLE else text


def fetch(poll: Fetch) -> Parsed[Devices]:
    return parse(poll.client.get_json(ENDPOINT, path(poll.site.site_id)))


def readings(site: SiteSnapshot, model: Devices) -> Iterator[Reading]:
    def labels(device: Device) -> dict[str, str]:
        return {"site_id": site.site_id, "type": device.type, "serial": device.serial}

    for device in model.devices:
        details = {
            "name": device.name,
            "model": device.model,
            "firmware_version": device.firmware_version,
        }
        yield Info(
            "enphase_device_info",
            "Each device of the site (devices.json): its name, model (SKU) and firmware version; refreshed "
            "hourly by default.",
            labels(device),
            details,
        )
    for device in model.devices:
        yield Gauge(
            "enphase_device_normal",
            "1 when the device's status is normal, 0 for any other status (devices.json).",
            labels(device),
            device.normal,
        )
    for device in model.devices:
        yield Gauge(
            "enphase_device_last_report_timestamp_seconds",
            "When the device last reported to the cloud (Unix time, devices.json).",
            labels(device),
            device.last_report_timestamp,
        )


SOURCE = Source(
    name="devices",
    reads="devices.json: each device of the site (gateway, batteries, meters, relays, …), its status and "
    "last report",
    default_interval=3600,
    minimum_interval=300,
    first_run=2.5,
    fetch=fetch,
    readings=readings,
)
