import pytest
from conftest import load_fixture

from exporter.sources import ev_status
from exporter.values import PayloadError


def charger(payload_name, index=0):
    return ev_status.parse(load_fixture(payload_name)).value.chargers[index]


def test_live_shape_while_charging():
    parsed = ev_status.parse(load_fixture("ev_status_live_charging.json"))
    assert parsed.problems == ()
    status = parsed.value
    assert status.time_zone == "Europe/Amsterdam"
    assert status.server_timestamp == pytest.approx(1774675080.415)  # serverTimeStamp is epoch ms
    assert status.any_charging
    c = status.chargers[0]
    assert (c.serial, c.name, c.connected, c.plugged_in, c.charging, c.faulted) == (
        "EV1111111111",
        "Carport",
        True,
        True,
        True,
        False,
    )
    assert [(k.connector_id, k.status) for k in c.connectors] == [("1", "charging")]


def test_session_energy_is_wh_in_joules():
    assert charger("ev_status_live_charging.json").session_energy_joules == pytest.approx(3542.11 * 3600)


def test_small_session_energy_is_still_wh_not_kwh():
    # 140.038 Wh has been seen live; the seeds' "below 200 means kWh" rule would make it 140 kWh.
    assert charger("ev_status_live_idle.json").session_energy_joules == pytest.approx(140.038 * 3600)


def test_session_start_is_epoch_milliseconds():
    assert charger("ev_status_live_charging.json").session_start_timestamp == pytest.approx(1774667402.0)


def test_plugged_in_and_last_report_are_iso_utc():
    c = charger("ev_status_live_charging.json")
    assert c.session_plugged_in_timestamp == pytest.approx(1774667402.101)
    assert c.last_report_timestamp == pytest.approx(1774673674.36)


def test_setpoint_is_amperes_while_charging_and_absent_when_idle():
    assert charger("ev_status_live_charging.json").charging_current_setpoint_amperes == 32.0
    assert charger("ev_status_live_idle.json").charging_current_setpoint_amperes is None


def test_session_cost_in_site_currency():
    assert charger("ev_status_live_charging.json").session_cost == pytest.approx(0.91)


def test_last_session_survives_unplugging():
    c = charger("ev_status_live_idle.json")
    assert not c.plugged_in and not c.charging
    assert c.session_energy_joules is not None and c.session_start_timestamp is not None


def test_awkward_values_are_absent_and_counted_without_losing_the_rest():
    parsed = ev_status.parse(load_fixture("ev_status_live_idle.json"))
    second = parsed.value.chargers[1]
    assert second.last_report_timestamp is None  # "not a date"
    assert second.connectors[0].status == "unknown"  # BRAND_NEW_STATE must not crash anything
    assert second.session_energy_joules == pytest.approx(12.5 * 3600)  # a numeric string still reads
    assert second.faulted is True
    assert len(parsed.problems) == 2


def test_legacy_shape():
    parsed = ev_status.parse(load_fixture("ev_status_legacy.json"))
    assert parsed.problems == ()
    c = parsed.value.chargers[0]
    assert parsed.value.server_timestamp == 1700000123  # ts: epoch s
    assert [(k.connector_id, k.status) for k in c.connectors] == [("1", "suspended_ev")]
    assert c.charging_current_setpoint_amperes == 16.0  # chargingLevel on the charger
    assert c.session_start_timestamp == 1700000000  # start_time: epoch s
    assert c.session_plugged_in_timestamp == 1699999900
    assert c.session_cost == pytest.approx(0.84)
    assert c.session_energy_joules == pytest.approx(3.52 * 3600)  # Wh, as the live service says


def test_charger_without_serial_is_dropped_and_counted():
    parsed = ev_status.parse({"data": {"chargers": [{"name": "x", "charging": True}]}})
    assert parsed.value.chargers == ()
    assert any("sn" in p for p in parsed.problems)


def test_missing_required_flags_are_schema_drift():
    parsed = ev_status.parse({"data": {"chargers": [{"sn": "EV1"}]}})
    assert parsed.value.chargers[0].charging is None
    assert len(parsed.problems) == 4


@pytest.mark.parametrize("payload", [[], {"data": {}}, {"data": {"chargers": "x"}}, {"error": {}}])
def test_unusable_payload_raises(payload):
    with pytest.raises(PayloadError):
        ev_status.parse(payload)


def test_a_negative_session_energy_is_counted_and_left_out():
    payload = load_fixture("ev_status_live_charging.json")
    payload["data"]["chargers"][0]["session_d"]["e_c"] = -3542.11
    parsed = ev_status.parse(payload)
    assert parsed.value.chargers[0].session_energy_joules is None
    assert any("e_c: out of range" in problem for problem in parsed.problems)
