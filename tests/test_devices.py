"""devices.json: parsing the groups (and skipping the metadata item), fetching, and the readings."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import load_fixture

from exporter.readings import Gauge, Info
from exporter.snapshot import SiteSnapshot
from exporter.sources import devices, live_stream
from exporter.sources.devices import Device, Devices
from exporter.sources.source import Fetch
from exporter.values import REPLACEMENT, PayloadError

SITE = SiteSnapshot(site_id="1234567", sources=("devices",))


def parse(payload: Any = None) -> Any:
    return devices.parse(load_fixture("devices_live.json") if payload is None else payload)


def by_key(parsed: Any) -> dict[tuple[str, str], Device]:
    return {(device.type, device.serial): device for device in parsed.value.devices}


def test_every_group_is_read_and_the_metadata_item_is_skipped_silently():
    parsed = parse()
    assert [(device.type, device.serial) for device in parsed.value.devices] == [
        ("envoy", "122233344455"),
        ("encharge", "482301001111"),
        ("encharge", "482301002222"),
        ("enpower", "122233344455"),
        ("meter", "122233344455EIM1"),
        ("q_relay", "482211003333"),
        ("iqCollars", "482299004444"),
    ]
    # the duplicate battery, the meter without serial, last_report "yesterday", the bell in the relay's name,
    # the string in the list of groups: five problems; the trailing {"curr_date_site": …} is none of them
    assert len(parsed.problems) == 5, parsed.problems


def test_the_gateway_in_full():
    gateway = by_key(parse())[("envoy", "122233344455")]
    assert gateway == Device(
        type="envoy",
        serial="122233344455",
        name="IQ Gateway",
        model="SC100G-M230ROW",
        firmware_version="D8.2.4382",
        normal=True,
        last_report_timestamp=1774674802.0,
    )


def test_status_normal_in_any_case_other_statuses_zero_none_or_na_absent():
    devices_ = by_key(parse())
    assert devices_[("encharge", "482301001111")].normal is True  # "Normal"
    assert devices_[("meter", "122233344455EIM1")].normal is False  # "WARNING"
    assert devices_[("q_relay", "482211003333")].normal is False  # "comm"
    assert devices_[("encharge", "482301002222")].normal is None  # "N/A"
    assert devices_[("iqCollars", "482299004444")].normal is None  # null


def test_last_report_is_epoch_seconds_from_a_number_or_a_numeric_string():
    devices_ = by_key(parse())
    assert devices_[("encharge", "482301001111")].last_report_timestamp == 1774674500.0  # "1774674500"
    assert devices_[("encharge", "482301002222")].last_report_timestamp is None  # "N/A": no problem
    assert devices_[("q_relay", "482211003333")].last_report_timestamp is None  # "yesterday": a problem
    assert sum("q_relay[0].last_report" in problem for problem in parse().problems) == 1


def test_the_first_of_two_devices_with_one_type_and_serial_is_kept():
    parsed = parse()
    battery = by_key(parsed)[("encharge", "482301001111")]
    assert battery.name == "IQ Battery 5P" and battery.model == "IQBATTERY-5P-1P-INT"
    assert sum("same serial" in problem for problem in parsed.problems) == 1
    # the same serial under another type is another device
    assert by_key(parsed)[("enpower", "122233344455")].name == "IQ System Controller 2"


def test_absent_and_null_text_stays_absent_numbers_become_text_unsafe_text_is_made_safe():
    devices_ = by_key(parse())
    meter = devices_[("meter", "122233344455EIM1")]  # the serial came with spaces around it
    assert meter.model is None and meter.firmware_version is None
    collar = devices_[("iqCollars", "482299004444")]  # the serial came as a number
    assert (collar.name, collar.model, collar.firmware_version) == (None, None, "7")
    assert devices_[("q_relay", "482211003333")].name == "IQ Relay" + REPLACEMENT


@pytest.mark.parametrize(
    ("device", "problems"),
    [
        ({"name": "no serial"}, 1),
        ({"serial_number": None}, 1),
        ({"serial_number": "  "}, 1),
        ({"serial_number": ["1"]}, 1),  # one problem, not two: not text, hence no serial
    ],
)
def test_a_device_without_a_serial_is_left_out_with_one_problem(device: dict[str, Any], problems: int):
    parsed = devices.parse({"result": [{"type": "meter", "devices": [device]}]})
    assert parsed.value.devices == ()
    assert len(parsed.problems) == problems


def test_groups_without_a_usable_type_or_device_list_are_counted():
    parsed = devices.parse(
        {
            "result": [
                {"devices": [{"serial_number": "1"}]},  # no type
                {"type": "", "devices": [{"serial_number": "2"}]},
                {"type": "meter", "devices": "none"},
                {"type": "meter", "devices": [3, {"serial_number": "4"}]},
            ]
        }
    )
    assert [(device.type, device.serial) for device in parsed.value.devices] == [("meter", "4")]
    assert len(parsed.problems) == 4, parsed.problems


def test_an_unsafe_type_is_kept_as_sent_made_safe():
    parsed = devices.parse({"result": [{"type": "meter\n", "devices": [{"serial_number": "1"}]}]})
    assert parsed.value.devices[0].type == "meter" + REPLACEMENT
    assert len(parsed.problems) == 1


def test_a_status_that_is_not_text_is_a_problem_and_absent():
    parsed = devices.parse({"result": [{"type": "meter", "devices": [{"serial_number": "1", "status": 1}]}]})
    assert parsed.value.devices[0].normal is None
    assert len(parsed.problems) == 1


def test_the_number_of_devices_is_bounded():
    many = [{"serial_number": str(n)} for n in range(devices.MAX_DEVICES + 5)]
    parsed = devices.parse({"result": [{"type": "meter", "devices": many}]})
    assert len(parsed.value.devices) == devices.MAX_DEVICES
    assert len(parsed.problems) == 1


def test_a_site_without_devices_and_only_the_metadata_item():
    parsed = devices.parse({"result": [{"curr_date_site": "2026-02-08"}]})
    assert parsed.value.devices == () and parsed.problems == ()


@pytest.mark.parametrize("payload", [[], "devices", {"result": None}, {"result": {"type": "envoy"}}, {}])
def test_a_payload_without_a_list_of_groups_is_not_understood(payload: Any):
    with pytest.raises(PayloadError):
        devices.parse(payload)


class FakeClient:
    def __init__(self, payload: Any) -> None:
        self.payload = payload
        self.calls: list[tuple[str, str, Any]] = []

    def get_json(self, endpoint: str, path: str, params: Any = None) -> Any:
        self.calls.append((endpoint, path, params))
        return self.payload


def test_fetch_asks_devices_json_once():
    client = FakeClient(load_fixture("devices_live.json"))
    parsed = devices.fetch(Fetch(client=client, site=SITE, now=1774675000.0))  # type: ignore[arg-type]
    assert client.calls == [("devices", "/app-api/1234567/devices.json", None)]
    assert len(parsed.value.devices) == 7 and len(parsed.problems) == 5


def test_the_live_stream_finds_the_gateway_at_the_same_endpoint():
    assert live_stream.gateway_from_devices(load_fixture("devices_live.json")).value == "122233344455"
    assert devices.path("42") == "/app-api/42/devices.json" and devices.ENDPOINT == "devices"


def test_readings_one_series_per_device_and_metric_absent_stays_absent():
    model = Devices(
        (
            Device("envoy", "1222", "IQ Gateway", "SC100G", "D8.2", True, 1774674802.0),
            Device("iqCollars", "4822", None, None, "7", None, None),
        )
    )
    out = list(devices.readings(SITE, model))
    gateway = {"site_id": "1234567", "type": "envoy", "serial": "1222"}
    collar = {"site_id": "1234567", "type": "iqCollars", "serial": "4822"}
    info = [reading for reading in out if isinstance(reading, Info)]
    assert [(r.metric, dict(r.labels), dict(r.details)) for r in info] == [
        (
            "enphase_device_info",
            gateway,
            {"name": "IQ Gateway", "model": "SC100G", "firmware_version": "D8.2"},
        ),
        ("enphase_device_info", collar, {"name": None, "model": None, "firmware_version": "7"}),
    ]
    gauges = [(r.metric, dict(r.labels), r.value) for r in out if isinstance(r, Gauge)]
    assert gauges == [
        ("enphase_device_normal", gateway, True),
        ("enphase_device_normal", collar, None),
        ("enphase_device_last_report_timestamp_seconds", gateway, 1774674802.0),
        ("enphase_device_last_report_timestamp_seconds", collar, None),
    ]
    assert len(out) == 6


def test_the_source_description():
    source = devices.SOURCE
    assert (source.name, source.default_interval, source.minimum_interval, source.first_run) == (
        "devices",
        3600,
        300,
        2.5,
    )
    assert source.fetch is devices.fetch and source.readings is devices.readings
    assert source.requests_per_poll == 1.0
