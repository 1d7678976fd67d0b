import copy
from typing import Any

import pytest
from conftest import load_fixture

from exporter.readings import Counter, Gauge
from exporter.snapshot import SiteSnapshot
from exporter.sources import battery_status
from exporter.sources.source import Fetch
from exporter.values import PayloadError

SITE = "1234567"
KWH = 3.6e6  # joules


def payload() -> dict[str, Any]:
    return copy.deepcopy(load_fixture("battery_status_live.json"))


def first_unit(**fields: Any) -> tuple[battery_status.BatteryUnit, tuple[str, ...]]:
    body = payload()
    body["storages"][0].update(fields)
    parsed = battery_status.parse(body)
    return parsed.value.units[0], parsed.problems


def test_the_live_shape_reads_without_problems():
    parsed = battery_status.parse(payload())
    assert parsed.problems == ()
    assert [unit.serial for unit in parsed.value.units] == ["482301012345", "482301012346"]


def test_site_energies_are_kwh_and_powers_kw():
    status = battery_status.parse(payload()).value
    assert status.capacity_joules == pytest.approx(10.28 * KWH)
    assert status.available_energy_joules == pytest.approx(4.94 * KWH)
    assert status.max_power_watts == pytest.approx(7680.0)
    assert status.available_power_watts == pytest.approx(3840.0)


def test_battery_energies_are_kwh_numbers_as_strings_too():
    normal, sleeping = battery_status.parse(payload()).value.units
    assert normal.capacity_joules == pytest.approx(10.28 * KWH)
    assert normal.available_energy_joules == pytest.approx(4.94 * KWH)
    assert sleeping.capacity_joules == pytest.approx(5.0 * KWH)  # "5.0"
    assert sleeping.available_energy_joules == 0.0  # an empty battery: a real 0, present


def test_charge_and_health_are_percent_strings_as_ratios():
    normal, sleeping = battery_status.parse(payload()).value.units
    assert normal.state_of_charge_ratio == pytest.approx(0.48)
    assert sleeping.state_of_charge_ratio == 0.0
    assert normal.health_ratio == pytest.approx(1.0)
    assert sleeping.health_ratio == pytest.approx(1.03)  # a new battery above its nominal capacity


def test_a_plain_number_percentage_reads_too():
    unit, problems = first_unit(current_charge=61, battery_soh="97")
    assert unit.state_of_charge_ratio == pytest.approx(0.61)
    assert unit.health_ratio == pytest.approx(0.97)
    assert problems == ()


def test_rated_power_is_watts_cycles_a_count_last_report_epoch_seconds():
    normal, sleeping = battery_status.parse(payload()).value.units
    assert normal.rated_power_watts == 3840.0
    assert normal.cycles == 212.0
    assert sleeping.cycles == 87.0  # "87"
    assert normal.last_report_timestamp == 1774674802
    assert sleeping.last_report_timestamp == 1774674500  # "1774674500"


def test_status_is_kept_in_lower_case():
    normal, sleeping = battery_status.parse(payload()).value.units
    assert (normal.status, sleeping.status) == ("normal", "sleeping")
    unit, problems = first_unit(status=" Normal ")
    assert unit.status == "normal" and problems == ()


def test_not_available_is_absent_not_a_problem():
    body = payload()
    body["current_charge"] = "N/A"
    body["available_energy"] = "N/A"
    body["storages"][0].update(current_charge="N/A", battery_soh="n/a", last_report="N/A", status="N/A")
    parsed = battery_status.parse(body)
    unit = parsed.value.units[0]
    assert parsed.problems == ()
    assert parsed.value.available_energy_joules is None
    assert unit.state_of_charge_ratio is None
    assert unit.health_ratio is None
    assert unit.last_report_timestamp is None
    assert unit.status is None


def test_missing_optional_keys_are_absent_without_problems():
    body = {"storages": [{"serial_num": "482301012345"}]}
    parsed = battery_status.parse(body)
    assert parsed.problems == ()
    assert parsed.value.capacity_joules is None
    assert parsed.value.max_power_watts is None
    unit = parsed.value.units[0]
    assert unit == battery_status.BatteryUnit("482301012345", None, None, None, None, None, None, None, None)


def test_a_battery_without_serial_is_left_out_and_counted():
    body = payload()
    del body["storages"][0]["serial_num"]
    body["storages"][1]["serial_num"] = "   "  # no serial either
    parsed = battery_status.parse(body)
    assert parsed.value.units == ()
    assert parsed.problems == (
        "battery_status.storages[0].serial_num: missing",
        "battery_status.storages[1].serial_num: missing",
    )


def test_a_serial_sent_as_a_number_is_read_as_text():
    unit, problems = first_unit(serial_num=482301012399)
    assert unit.serial == "482301012399" and problems == ()


def test_a_second_battery_with_the_same_serial_is_left_out_and_counted():
    body = payload()
    body["storages"][1]["serial_num"] = "482301012345"
    parsed = battery_status.parse(body)
    assert [unit.serial for unit in parsed.value.units] == ["482301012345"]
    assert parsed.value.units[0].status == "normal"  # the first one is kept
    assert parsed.problems == ("battery_status.storages[1].serial_num: '482301012345' listed twice",)


def test_items_that_are_not_objects_are_dropped_and_counted():
    body = payload()
    body["storages"][1:1] = ["482301012347", None, 3]
    parsed = battery_status.parse(body)
    assert len(parsed.value.units) == 2
    assert len(parsed.problems) == 3


def test_storages_not_a_list_or_missing_is_a_problem():
    body = payload()
    body["storages"] = {"serial_num": "482301012345"}
    parsed = battery_status.parse(body)
    assert parsed.value.units == () and len(parsed.problems) == 1
    assert parsed.value.capacity_joules == pytest.approx(10.28 * KWH)  # the rest still reads
    del body["storages"]
    parsed = battery_status.parse(body)
    assert parsed.problems == ("battery_status.storages: missing",)


def test_an_unknown_status_is_kept_and_not_a_problem():
    unit, problems = first_unit(status="comm")
    assert unit.status == "comm" and problems == ()


def test_a_status_that_is_not_text_is_absent_and_counted():
    unit, problems = first_unit(status=3)
    assert unit.status is None
    assert problems == ("battery_status.storages[0].status: expected a string, got int",)


@pytest.mark.parametrize(
    ("field", "value", "attribute"),
    [
        ("current_charge", "101%", "state_of_charge_ratio"),
        ("current_charge", "-1%", "state_of_charge_ratio"),
        ("battery_soh", "121%", "health_ratio"),
        ("battery_soh", -5, "health_ratio"),
        ("cycle_count", -1, "cycles"),
        ("cycle_count", 1e9, "cycles"),
        ("max_capacity", 100.5, "capacity_joules"),  # kWh: no single battery holds that
        ("available_energy", -0.1, "available_energy_joules"),
        ("rated_power", 250_000, "rated_power_watts"),
        ("rated_power", -1, "rated_power_watts"),
        ("last_report", 1774674802000, "last_report_timestamp"),  # milliseconds: not this field's unit
    ],
)
def test_an_out_of_range_value_is_absent_and_counted(field: str, value: Any, attribute: str):
    unit, problems = first_unit(**{field: value})
    assert getattr(unit, attribute) is None
    assert len(problems) == 1 and problems[0].startswith(f"battery_status.storages[0].{field}: ")


def test_health_up_to_120_percent_is_kept():
    unit, problems = first_unit(battery_soh="120%")
    assert unit.health_ratio == pytest.approx(1.2) and problems == ()


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_capacity", 1000.1), ("available_energy", -1), ("max_power", 1001), ("available_power", "-0.5")],
)
def test_an_out_of_range_site_value_is_absent_and_counted(field: str, value: Any):
    body = payload()
    body[field] = value
    parsed = battery_status.parse(body)
    assert len(parsed.problems) == 1 and parsed.problems[0].startswith(f"battery_status.{field}: ")
    fields = {
        "max_capacity": parsed.value.capacity_joules,
        "available_energy": parsed.value.available_energy_joules,
        "max_power": parsed.value.max_power_watts,
        "available_power": parsed.value.available_power_watts,
    }
    assert fields[field] is None


def test_site_power_is_bounded_by_the_configured_maximum():
    parsed = battery_status.parse(payload(), max_power_watts=5000.0)
    assert parsed.value.max_power_watts is None  # 7.68 kW
    assert parsed.value.available_power_watts == pytest.approx(3840.0)
    assert len(parsed.problems) == 1


def test_numbers_that_are_not_numbers_are_absent_and_counted():
    unit, problems = first_unit(cycle_count="many", max_capacity=True, battery_soh="%", rated_power=[1])
    assert (unit.cycles, unit.capacity_joules, unit.health_ratio, unit.rated_power_watts) == (None,) * 4
    assert len(problems) == 4


def test_unsafe_serial_is_made_safe_and_counted():
    unit, problems = first_unit(serial_num="4823\x00\ud800" + "9" * 300)
    assert "\x00" not in unit.serial and "\ud800" not in unit.serial
    assert len(unit.serial) == 256
    assert len(problems) == 1 and "unsafe text" in problems[0]


def test_unsafe_status_is_made_safe_and_counted():
    unit, problems = first_unit(status="normal\x1b[2J")
    assert unit.status == "normal\ufffd[2j"
    assert len(problems) == 1


@pytest.mark.parametrize("body", [[], "battery", None, 3])
def test_a_payload_that_is_not_an_object_is_not_understood(body: Any):
    with pytest.raises(PayloadError):
        battery_status.parse(body)


def test_an_object_without_any_battery_field_is_not_understood():
    with pytest.raises(PayloadError, match="none of the battery status fields"):
        battery_status.parse({"message": "Not found", "status": 404})


class FakeClient:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, ...]] = []

    def get_json(self, endpoint, path, params=None, *, bearer=False, as_user=False):
        self.calls.append((endpoint, path, params, bearer, as_user))
        return self.answer


def test_fetch_asks_the_sites_battery_status_and_parses_it():
    client = FakeClient(payload())
    poll = Fetch(client=client, site=SiteSnapshot(SITE, ("battery_status",)), now=0.0)
    parsed = battery_status.fetch(poll)
    assert client.calls == [
        ("battery_status", "/pv/settings/1234567/battery_status.json", None, False, False)
    ]
    assert len(parsed.value.units) == 2 and parsed.problems == ()


def test_fetch_passes_the_configured_maximum_power():
    client = FakeClient(payload())
    poll = Fetch(client=client, site=SiteSnapshot(SITE, ()), now=0.0, max_power_watts=5000.0)
    assert battery_status.fetch(poll).value.max_power_watts is None


def samples(model: battery_status.BatteryStatus) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    site = SiteSnapshot(SITE, ("battery_status",))
    return {
        (reading.metric, tuple(sorted(reading.labels.items()))): reading
        for reading in battery_status.readings(site, model)
    }


def test_readings_names_labels_and_values():
    found = samples(battery_status.parse(payload()).value)
    site = (("site_id", SITE),)
    normal = (("serial", "482301012345"), ("site_id", SITE))
    sleeping = (("serial", "482301012346"), ("site_id", SITE))
    values = {key: reading.value for key, reading in found.items()}
    assert values == {
        ("enphase_battery_capacity_joules", site): pytest.approx(10.28 * KWH),
        ("enphase_battery_available_energy_joules", site): pytest.approx(4.94 * KWH),
        ("enphase_battery_max_power_watts", site): 7680.0,
        ("enphase_battery_available_power_watts", site): 3840.0,
        ("enphase_battery_unit_state_of_charge_ratio", normal): pytest.approx(0.48),
        ("enphase_battery_unit_health_ratio", normal): pytest.approx(1.0),
        ("enphase_battery_unit_capacity_joules", normal): pytest.approx(10.28 * KWH),
        ("enphase_battery_unit_available_energy_joules", normal): pytest.approx(4.94 * KWH),
        ("enphase_battery_unit_rated_power_watts", normal): 3840.0,
        ("enphase_battery_unit_normal", normal): True,
        ("enphase_battery_unit_sleeping", normal): False,
        ("enphase_battery_unit_last_report_timestamp_seconds", normal): 1774674802,
        ("enphase_battery_unit_cycles_total", normal): 212.0,
        ("enphase_battery_unit_state_of_charge_ratio", sleeping): 0.0,
        ("enphase_battery_unit_health_ratio", sleeping): pytest.approx(1.03),
        ("enphase_battery_unit_capacity_joules", sleeping): pytest.approx(5.0 * KWH),
        ("enphase_battery_unit_available_energy_joules", sleeping): 0.0,
        ("enphase_battery_unit_rated_power_watts", sleeping): 3840.0,
        ("enphase_battery_unit_normal", sleeping): False,
        ("enphase_battery_unit_sleeping", sleeping): True,
        ("enphase_battery_unit_last_report_timestamp_seconds", sleeping): 1774674500,
        ("enphase_battery_unit_cycles_total", sleeping): 87.0,
    }


def test_cycles_are_a_counter_the_rest_gauges():
    for (metric, _), reading in samples(battery_status.parse(payload()).value).items():
        expected = Counter if metric.endswith("_total") else Gauge
        assert type(reading) is expected, metric
        assert reading.help


def test_an_unknown_status_is_neither_normal_nor_sleeping():
    unit, _ = first_unit(status="error")
    model = battery_status.BatteryStatus(None, None, None, None, (unit,))
    labels = (("serial", "482301012345"), ("site_id", SITE))
    found = samples(model)
    assert found["enphase_battery_unit_normal", labels].value is False
    assert found["enphase_battery_unit_sleeping", labels].value is False


def test_absent_stays_absent_in_readings():
    model = battery_status.parse({"storages": [{"serial_num": "482301012345"}]}).value
    found = samples(model)
    assert len(found) == 13  # four site gauges, nine per battery
    assert all(reading.value is None for reading in found.values())


def test_a_site_without_batteries_yields_only_the_site_gauges():
    found = samples(battery_status.parse({"storages": [], "max_capacity": 0}).value)
    assert {metric for metric, _ in found} == {
        "enphase_battery_capacity_joules",
        "enphase_battery_available_energy_joules",
        "enphase_battery_max_power_watts",
        "enphase_battery_available_power_watts",
    }
    assert found["enphase_battery_capacity_joules", (("site_id", SITE),)].value == 0.0


def test_source_description():
    source = battery_status.SOURCE
    assert (source.name, source.default_interval, source.minimum_interval, source.first_run) == (
        "battery_status",
        1800,
        300,
        3.5,
    )
    assert source.fetch is battery_status.fetch and source.readings is battery_status.readings
    assert source.interval_setting == "ENPHASE_BATTERY_STATUS_INTERVAL"
