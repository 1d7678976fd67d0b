import copy
from typing import Any

import pytest
from conftest import load_fixture

from exporter.client import AuthError, CloudError
from exporter.readings import Gauge
from exporter.snapshot import SiteSnapshot
from exporter.sources import battery_settings
from exporter.sources.source import Fetch
from exporter.values import PayloadError

SITE = "1234567"


def payload(**data: Any) -> dict[str, Any]:
    body = copy.deepcopy(load_fixture("battery_settings_live.json"))
    body["data"].update(data)
    return body


def parse(**data: Any) -> tuple[battery_settings.BatterySettings, tuple[str, ...]]:
    parsed = battery_settings.parse(payload(**data))
    return parsed.value, parsed.problems


def test_the_live_shape_reads_without_problems():
    settings, problems = parse()
    assert problems == ()
    assert settings == battery_settings.BatterySettings(
        storm_guard_enabled=True,
        charge_from_grid_schedule_enabled=False,
        charge_from_grid_schedule_start_seconds=7200.0,  # 120 minutes after midnight
        charge_from_grid_schedule_end_seconds=18000.0,  # 300 minutes
        pending=False,
    )


@pytest.mark.parametrize(("raw", "expected"), [("enabled", True), ("disabled", False), (" Disabled ", False)])
def test_storm_guard_state(raw: str, expected: bool):
    settings, problems = parse(stormGuardState=raw)
    assert settings.storm_guard_enabled is expected and problems == ()


@pytest.mark.parametrize("raw", ["paused", 1, True])
def test_an_unknown_storm_guard_state_is_absent_and_counted(raw: Any):
    settings, problems = parse(stormGuardState=raw)
    assert settings.storm_guard_enabled is None
    assert len(problems) == 1 and problems[0].startswith("battery_settings.data.stormGuardState: ")


def test_an_unsafe_storm_guard_state_is_escaped_and_cut_in_the_problem():
    settings, problems = parse(stormGuardState="on\x1b[2J\ud800" + "x" * 500)
    assert settings.storm_guard_enabled is None
    assert len(problems) == 1
    assert "\x1b" not in problems[0] and "\ud800" not in problems[0]
    assert len(problems[0]) < 120


def test_schedule_flag_reads_booleans_in_their_usual_forms():
    assert parse(chargeFromGridScheduleEnabled=True)[0].charge_from_grid_schedule_enabled is True
    assert parse(chargeFromGridScheduleEnabled="true")[0].charge_from_grid_schedule_enabled is True
    assert parse(chargeFromGridScheduleEnabled=0)[0].charge_from_grid_schedule_enabled is False
    settings, problems = parse(chargeFromGridScheduleEnabled="sometimes")
    assert settings.charge_from_grid_schedule_enabled is None and len(problems) == 1


def test_schedule_times_are_minutes_after_midnight_strings_too():
    settings, problems = parse(chargeBeginTime="1380", chargeEndTime=0)  # 23:00 to midnight
    assert settings.charge_from_grid_schedule_start_seconds == 82800.0
    assert settings.charge_from_grid_schedule_end_seconds == 0.0  # a real 0: present
    assert problems == ()


@pytest.mark.parametrize("raw", [-1, 1441, "soon", None])
def test_a_schedule_time_outside_the_day_is_absent_and_counted(raw: Any):
    settings, problems = parse(chargeBeginTime=raw)
    assert settings.charge_from_grid_schedule_start_seconds is None
    assert settings.charge_from_grid_schedule_end_seconds == 18000.0
    assert len(problems) == (0 if raw is None else 1)  # null: no value, not a problem


def test_the_end_of_the_day_is_a_valid_schedule_time():
    assert parse(chargeEndTime=1440)[0].charge_from_grid_schedule_end_seconds == 86400.0


@pytest.mark.parametrize(
    ("requested", "pending"),
    [
        ({"profile": "backup_only"}, True),
        ({"batteryBackupPercentage": 40, "stormGuardState": None}, True),
        ({}, False),
        ({"profile": None}, False),  # a key without a value asks for no change
        (None, False),
    ],
)
def test_pending_means_a_requested_change_with_a_value(requested: Any, pending: bool):
    settings, problems = parse(requestedConfig=requested)
    assert settings.pending is pending and problems == ()


def test_no_requested_config_at_all_means_nothing_is_pending():
    body = payload()
    del body["data"]["requestedConfig"]
    parsed = battery_settings.parse(body)
    assert parsed.value.pending is False and parsed.problems == ()


@pytest.mark.parametrize("requested", [[], ["profile"], "backup_only", 1])
def test_a_requested_config_that_is_not_an_object_is_absent_and_counted(requested: Any):
    settings, problems = parse(requestedConfig=requested)
    assert settings.pending is None
    assert len(problems) == 1 and problems[0].startswith("battery_settings.data.requestedConfig: ")


def test_missing_keys_are_absent_without_problems():
    parsed = battery_settings.parse({"type": "battery-details", "data": {}})
    assert parsed.value == battery_settings.BatterySettings(None, None, None, None, False)
    assert parsed.problems == ()


@pytest.mark.parametrize(
    "body",
    [
        [],
        "battery-details",
        None,
        {"type": "battery-details"},
        {"type": "battery-details", "data": None},
        {"type": "battery-details", "data": ["profile"]},
        {"message": "Unauthorized"},
    ],
)
def test_a_payload_without_its_data_object_is_not_understood(body: Any):
    with pytest.raises(PayloadError):
        battery_settings.parse(body)


class FakeClient:
    def __init__(self, answer: Any, user_id: str | None = "4321", logs_in: bool = False) -> None:
        self.answer = answer
        self._user_id = user_id
        self.logs_in = logs_in  # False: pasted headers
        self.calls: list[tuple[Any, ...]] = []

    def user_id(self) -> str | None:
        return self._user_id

    def get_json(self, endpoint, path, params=None, *, bearer=False, as_user=False):
        self.calls.append((endpoint, path, params, bearer, as_user))
        return self.answer


def poll(client: FakeClient) -> Fetch:
    return Fetch(client=client, site=SiteSnapshot(SITE, ("battery_settings",)), now=0.0)


def test_fetch_sends_the_user_id_as_parameter_and_header():
    client = FakeClient(payload())
    parsed = battery_settings.fetch(poll(client))
    assert client.calls == [
        (
            "battery_settings",
            "/service/batteryConfig/api/v1/batterySettings/1234567",
            {"userId": "4321"},
            False,
            True,  # as_user: the client adds the Username header
        )
    ]
    assert parsed.value.storm_guard_enabled is True and parsed.problems == ()


@pytest.mark.parametrize("user_id", [None, ""])
def test_fetch_without_a_user_id_fails_clearly_without_a_request(user_id: str | None):
    client = FakeClient(payload(), user_id=user_id)
    with pytest.raises(battery_settings.NoUserId) as failure:
        battery_settings.fetch(poll(client))
    assert client.calls == []
    message = str(failure.value)
    assert "battery_settings" in message
    assert "ENPHASE_EMAIL" in message and "ENPHASE_PASSWORD" in message and "ENPHASE_SOURCES" in message
    # A CloudError, so the poller reports it as the source's reason (once while it lasts); not an AuthError,
    # which would say the session itself is unusable.
    assert isinstance(failure.value, CloudError) and not isinstance(failure.value, AuthError)


def test_a_login_without_a_user_id_fails_this_poll_only():
    client = FakeClient(payload(), user_id=None, logs_in=True)
    with pytest.raises(CloudError, match="names no user id; asked again at the next poll") as failure:
        battery_settings.fetch(poll(client))
    assert client.calls == [] and not isinstance(failure.value, battery_settings.NoUserId)


def test_the_no_user_id_message_is_the_same_every_time():
    first, second = battery_settings.NoUserId(), battery_settings.NoUserId()
    assert str(first) == str(second)  # the poller logs a reason once, as long as it does not change


def samples(model: battery_settings.BatterySettings) -> dict[str, Gauge]:
    found = list(battery_settings.readings(SiteSnapshot(SITE, ("battery_settings",)), model))
    assert all(isinstance(reading, Gauge) and reading.help for reading in found)
    assert all(reading.labels == {"site_id": SITE} for reading in found)
    return {reading.metric: reading for reading in found}


def test_readings_names_labels_and_values():
    found = samples(battery_settings.parse(payload(requestedConfig={"profile": "backup_only"})).value)
    assert {metric: reading.value for metric, reading in found.items()} == {
        "enphase_battery_storm_guard_enabled": True,
        "enphase_battery_charge_from_grid_schedule_enabled": False,
        "enphase_battery_charge_from_grid_schedule_start_seconds": 7200.0,
        "enphase_battery_charge_from_grid_schedule_end_seconds": 18000.0,
        "enphase_battery_settings_pending": True,
    }


def test_nothing_today_exports_is_exported_again():
    metrics = set(samples(battery_settings.parse(payload()).value))
    assert not metrics & {
        "enphase_battery_profile",
        "enphase_battery_backup_reserve_ratio",
        "enphase_battery_very_low_soc_ratio",
        "enphase_battery_charge_from_grid_enabled",
    }


def test_absent_stays_absent_in_readings():
    found = samples(battery_settings.BatterySettings(None, None, None, None, None))
    assert len(found) == 5
    assert all(reading.value is None for reading in found.values())


def test_source_description():
    source = battery_settings.SOURCE
    assert (source.name, source.default_interval, source.minimum_interval, source.first_run) == (
        "battery_settings",
        3600,
        600,
        4.0,
    )
    assert source.needs == "the user id in the login token"
    assert source.fetch is battery_settings.fetch and source.readings is battery_settings.readings


@pytest.mark.parametrize("raw", ["", " N/A "])
def test_a_storm_guard_state_written_as_no_value_is_absent_without_a_problem(raw: str):
    settings, problems = parse(stormGuardState=raw)
    assert settings.storm_guard_enabled is None and problems == ()
