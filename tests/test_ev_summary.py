import pytest
from conftest import load_fixture

from exporter.sources import ev_summary
from exporter.values import PayloadError


def chargers(name):
    return ev_summary.parse(load_fixture(name)).value.chargers


def test_live_shape_numbers_sent_as_strings():
    parsed = ev_summary.parse(load_fixture("ev_summary_live.json"))
    assert parsed.problems == ()
    c = parsed.value.chargers[0]
    assert (c.serial, c.name, c.model, c.firmware_version) == (
        "EV1111111111",
        "Carport",
        "IQ-EVSE-EU-3032",
        "25.37.1.13",
    )
    assert c.max_current_amperes == 32.0
    assert (c.charge_level_min_amperes, c.charge_level_max_amperes) == (6.0, 32.0)  # "6", "32"
    assert c.operating_voltage_volts == 230.0  # "230"
    assert c.phases == 3.0


def test_lifetime_consumption_is_wh_in_joules():
    assert chargers("ev_summary_live.json")[0].energy_delivered_joules == pytest.approx(1234567.5 * 3600)


def test_last_reported_with_nanoseconds():
    assert chargers("ev_summary_live.json")[0].last_report_timestamp == pytest.approx(1754906523.805264)


def test_network_config_string_gives_interfaces_without_addresses():
    interfaces = chargers("ev_summary_live.json")[0].network_interfaces
    assert [(i.name, i.connected) for i in interfaces] == [("eth0", True), ("wlan0", False)]


def test_missing_display_name_and_phase_mode_fallback():
    c = chargers("ev_summary_live.json")[1]
    assert c.name is None
    assert c.phases == 1.0
    assert c.network_interfaces == ()


def test_legacy_shape_with_numeric_voltage_and_placeholder_network_config():
    parsed = ev_summary.parse(load_fixture("ev_summary_legacy.json"))
    c = parsed.value.chargers[0]
    assert c.operating_voltage_volts == 240.0
    assert c.energy_delivered_joules is None
    assert parsed.problems == ("data[0].networkConfig: not a JSON array string",)


def test_no_data_list_raises():
    with pytest.raises(PayloadError):
        ev_summary.parse({"meta": {}})


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("phaseCount", 4, "phases"),
        ("phaseCount", 0, "phases"),
        ("lifeTimeConsumption", -116300.14, "energy_delivered_joules"),
        ("maxCurrent", -32, "max_current_amperes"),
    ],
)
def test_values_a_charger_cannot_have_are_counted_and_left_out(key, value, field):
    payload = load_fixture("ev_summary_live.json")
    payload["data"][0][key] = value
    parsed = ev_summary.parse(payload)
    assert getattr(parsed.value.chargers[0], field) is None
    assert [p for p in parsed.problems if key in p] == [f"data[0].{key}: out of range: {value!r}"]
