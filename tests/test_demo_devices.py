"""The demo cloud's device, battery, settings, charge-mode and inverter endpoints (ENLIGHTEN_API.md §7b).

Each test asks a running DemoCloud over HTTP on 127.0.0.1, on a fake clock, and checks that the answers
agree with one another and with ``today``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

import pytest
import requests
from support import FakeClock

from exporter.demo import DEMO_CHARGER_SERIAL, DEMO_EMAIL, DEMO_PASSWORD, DEMO_SITE_ID, DemoCloud
from exporter.demo import hardware as hw
from exporter.demo import simulation as sim

DAY = date(2026, 3, 28)
TODAY = f"/pv/systems/{DEMO_SITE_ID}/today"
DAILY = f"/pv/systems/{DEMO_SITE_ID}/daily_energy"
DEVICES = f"/app-api/{DEMO_SITE_ID}/devices.json"
BATTERY_STATUS = f"/pv/settings/{DEMO_SITE_ID}/battery_status.json"
SETTINGS = f"/service/batteryConfig/api/v1/batterySettings/{DEMO_SITE_ID}"
PREFERENCE = (
    f"/service/evse_scheduler/api/v1/iqevc/charging-mode/{DEMO_SITE_ID}/{DEMO_CHARGER_SERIAL}/preference"
)
INVERTERS = f"/app-api/{DEMO_SITE_ID}/inverters.json"
ENERGY = f"/systems/{DEMO_SITE_ID}/inverter_data_x/energy.json"
NEW_PATHS = {
    "devices": DEVICES,
    "battery_status": BATTERY_STATUS,
    "battery_settings": f"{SETTINGS}?userId=4242",
    "inverters": f"{INVERTERS}?limit=5&offset=0",
    "inverter_energy": f"{ENERGY}?start_date={DAY}&end_date={DAY}",
    "latest_power": f"/app-api/{DEMO_SITE_ID}/get_latest_power",
}
DEVICE_KEYS = {"name", "serial_number", "sku_id", "status", "statusText", "last_report", "sw_version"}


def local(day: date, hour: int, minute: int = 0) -> float:
    return datetime.combine(day, time(hour, minute), sim.TZ).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(local(DAY, 12, 7))


@pytest.fixture
def cloud(clock: FakeClock) -> Iterator[DemoCloud]:
    with DemoCloud(clock=clock) as running:
        yield running


class Account:
    """A logged-in requests session and what the login answered (the manager JWT, the user id in it)."""

    def __init__(self, cloud: DemoCloud) -> None:
        self.cloud = cloud
        self.http = requests.Session()
        answer = self.http.post(
            cloud.base_url + "/login/login.json",
            data={"user[email]": DEMO_EMAIL, "user[password]": DEMO_PASSWORD},
        )
        assert answer.status_code == 200
        self.token = answer.json()["manager_token"]
        claims = self.token.split(".")[1]
        self.user_id = json.loads(_b64(claims))["data"]["user_id"]

    def get(self, path: str, **headers: str) -> requests.Response:
        return self.http.get(self.cloud.base_url + path, headers=headers, allow_redirects=False)

    def json(self, path: str, **headers: str) -> dict:
        answer = self.get(path, **headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
        return answer.json()


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def account(cloud: DemoCloud) -> Account:
    return Account(cloud)


def groups(body: dict) -> dict[str, list[dict]]:
    return {group["type"]: group["devices"] for group in body["result"][:-1]}


def production_today(account: Account) -> int:
    return sum(account.json(TODAY)["stats"][0]["production"])


# --- access --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*NEW_PATHS.values(), PREFERENCE])
def test_every_new_endpoint_needs_a_session(cloud: DemoCloud, path: str) -> None:
    answer = requests.get(cloud.base_url + path, headers={"Username": "4242"}, allow_redirects=False)
    assert answer.status_code == 401
    assert answer.json() == {"message": "Not authorized"}


@pytest.mark.parametrize("endpoint", sorted(NEW_PATHS))
def test_new_endpoints_are_journalled_and_meet_body_faults(account: Account, endpoint: str) -> None:
    path = NEW_PATHS[endpoint]
    headers = {"Username": str(account.user_id)}
    normal = account.json(path, **headers)
    account.cloud.faults.inject("truncated_json", endpoint=endpoint)
    spoiled = account.get(path, **headers)
    assert spoiled.status_code == 200
    with pytest.raises(ValueError):
        json.loads(spoiled.text)
    account.cloud.faults.inject("schema_drift", endpoint=endpoint)
    drifted = account.json(path, **headers)
    assert drifted != normal
    assert len(account.cloud.journal.events("request", endpoint)) == 3
    assert [event.fault.name for event in account.cloud.journal.events("fault", endpoint) if event.fault] == [
        "truncated_json",
        "schema_drift",
    ]


def test_charge_mode_meets_the_generic_faults(account: Account) -> None:
    account.cloud.faults.inject("429", endpoint="charge_mode", retry_after=90)
    answer = account.get(PREFERENCE, Authorization=f"Bearer {account.token}")
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "90"


# --- devices.json --------------------------------------------------------------------------------


def test_devices_lists_every_group_then_the_site_date(account: Account) -> None:
    body = account.json(DEVICES)
    assert body["result"][-1] == {"curr_date_site": "2026-03-28"}
    found = groups(body)
    assert set(found) == {"envoy", "meter", "encharge", "enpower", "micro"}
    assert [len(found[kind]) for kind in ("envoy", "meter", "encharge", "enpower", "micro")] == [
        1,
        2,
        2,
        1,
        12,
    ]
    assert found["envoy"][0]["serial_number"] == sim.GATEWAY_SERIAL
    reported = int(local(DAY, 12, 5))
    for devices in found.values():
        for device in devices:
            assert set(device) == DEVICE_KEYS
            assert (device["status"], device["statusText"], device["last_report"]) == (
                "normal",
                "Normal",
                reported,
            )
            assert device["serial_number"] and device["sku_id"] and device["sw_version"]
    serials = [device["serial_number"] for devices in found.values() for device in devices]
    assert len(set(serials)) == len(serials) == 18


def test_a_microinverter_stops_reporting_in_the_afternoon(account: Account, clock: FakeClock) -> None:
    assert account.json(TODAY)["siteStatus"] == "normal"
    clock.now = local(DAY, 14, 42)
    micros = groups(account.json(DEVICES))["micro"]
    silent = [micro for micro in micros if micro["status"] != "normal"]
    assert [(m["serial_number"], m["status"], m["statusText"]) for m in silent] == [
        (hw.SILENT_INVERTER.device.serial, "comm", "Not Reporting")
    ]
    assert silent[0]["last_report"] == local(DAY, 14)  # frozen since it fell silent
    assert {m["last_report"] for m in micros if m["status"] == "normal"} == {local(DAY, 14, 40)}
    assert account.json(TODAY)["siteStatus"] == "comm"
    clock.now = local(DAY, 15, 30)
    assert all(micro["status"] == "normal" for micro in groups(account.json(DEVICES))["micro"])
    assert account.json(TODAY)["siteStatus"] == "normal"


# --- battery_status.json -------------------------------------------------------------------------


def test_battery_status_agrees_with_devices_and_today(account: Account) -> None:
    body = account.json(BATTERY_STATUS)
    soc = account.json(TODAY)["battery_details"]["aggregate_soc"]
    assert body["current_charge"] == f"{soc}%"
    encharge = groups(account.json(DEVICES))["encharge"]
    storages = body["storages"]
    assert [s["serial_num"] for s in storages] == [d["serial_number"] for d in encharge]
    assert body["max_capacity"] == sum(s["max_capacity"] for s in storages) == 10.0
    assert body["available_energy"] == pytest.approx(sum(s["available_energy"] for s in storages), abs=0.011)
    assert body["available_energy"] == pytest.approx(10.0 * soc / 100, abs=0.051)
    assert body["max_power"] * 1000 == sum(s["rated_power"] for s in storages) == sim.BATTERY_MAX_POWER_W
    assert body["available_power"] == body["max_power"]  # charged above the reserve, both awake
    for storage in storages:
        assert storage["current_charge"] == f"{soc}%"
        assert storage["status"] == "normal"
        assert storage["last_report"] == local(DAY, 12, 5)
        assert isinstance(storage["cycle_count"], int) and 100 < storage["cycle_count"] < 1000
        assert 90 <= int(storage["battery_soh"].removesuffix("%")) <= 100
        assert storage["battery_mode"] == "self-consumption"


def test_a_battery_sleeps_while_the_charge_sits_at_the_reserve(account: Account, clock: FakeClock) -> None:
    at_reserve = next(
        ts
        for ts in range(int(local(DAY - timedelta(days=60), 0)), int(local(DAY, 0)), 900)
        if round(sim.battery_soc(ts)) <= sim.BACKUP_RESERVE_PERCENT
    )
    clock.now = at_reserve
    storages = account.json(BATTERY_STATUS)
    assert [s["status"] for s in storages["storages"]] == ["normal", "sleeping"]
    assert storages["available_power"] == 0.0
    encharge = groups(account.json(DEVICES))["encharge"]
    assert [(d["status"], d["statusText"]) for d in encharge] == [
        ("normal", "Normal"),
        ("sleeping", "Sleeping"),
    ]


# --- batterySettings -----------------------------------------------------------------------------


def test_battery_settings_need_the_cookie_and_the_username_header(account: Account) -> None:
    path = f"{SETTINGS}?userId={account.user_id}"
    for headers in ({}, {"Username": "999"}):
        answer = account.get(path, **headers)
        assert answer.status_code == 302
        assert answer.headers["Location"].endswith("/login")
        assert answer.headers["Content-Type"].startswith("text/html") and "<form" in answer.text
    # A valid token alone, as the exporter's pasted-header mode sends it, is sent to the login page too.
    alone = requests.get(
        account.cloud.base_url + path,
        headers={"e-auth-token": account.token, "Username": str(account.user_id)},
        allow_redirects=False,
    )
    assert alone.status_code == 302
    assert account.get(f"{SETTINGS}?userId=999", Username=str(account.user_id)).status_code == 400
    assert account.json(path, Username=str(account.user_id))["type"] == "battery-details"


def test_battery_settings_agree_with_today_and_show_a_pending_change(
    account: Account, clock: FakeClock
) -> None:
    path, username = f"{SETTINGS}?userId={account.user_id}", str(account.user_id)
    body = account.json(path, Username=username)
    data = body["data"]
    config = account.json(TODAY)["batteryConfig"]
    assert data["profile"] == config["usage"] == "self-consumption"
    assert data["batteryBackupPercentage"] == config["battery_backup_percentage"] == 20
    assert data["veryLowSoc"] == config["very_low_soc"] == 10
    assert data["chargeFromGrid"] is config["charge_from_grid"] is False
    assert data["chargeFromGridScheduleEnabled"] is False
    assert (data["chargeBeginTime"], data["chargeEndTime"]) == (120, 300)
    assert data["stormGuardState"] in ("enabled", "disabled")
    assert data["requestedConfig"] == {}
    assert body["timestamp"] == "2026-03-28T11:07:00.000Z"
    clock.now = local(DAY, 9, 10)
    assert account.json(path, Username=username)["data"]["requestedConfig"] == {"batteryBackupPercentage": 30}


# --- charge mode ---------------------------------------------------------------------------------


def enabled_modes(body: dict) -> list[str]:
    return [mode["chargingMode"] for mode in body["data"]["modes"].values() if mode["enabled"]]


def test_charge_mode_needs_a_valid_bearer(account: Account) -> None:
    assert account.get(PREFERENCE).status_code == 401
    forged = account.token[:-4] + ("AAAA" if not account.token.endswith("AAAA") else "BBBB")
    assert account.get(PREFERENCE, Authorization=f"Bearer {forged}").status_code == 401
    assert account.get(PREFERENCE, Authorization="Bearer not-a-jwt").status_code == 401
    account.cloud.expire_sessions()
    fresh = Account(account.cloud)
    stale = requests.get(  # the new session's cookie, the old session's bearer
        account.cloud.base_url + PREFERENCE,
        headers={"Authorization": f"Bearer {account.token}"},
        cookies=fresh.http.cookies,
    )
    assert stale.status_code == 401


def test_the_enabled_charge_mode_is_the_controls_mode(account: Account) -> None:
    bearer = {"Authorization": f"Bearer {account.token}"}
    body = account.json(PREFERENCE, **bearer)
    assert set(body["data"]["modes"]) == {
        "manualCharging",
        "scheduledCharging",
        "greenCharging",
        "smartCharging",
    }
    assert enabled_modes(body) == [account.cloud.charger.mode] == ["MANUAL_CHARGING"]
    for mode in ("GREEN_CHARGING", "SMART_CHARGING", "SCHEDULED_CHARGING"):
        changed = account.http.put(account.cloud.base_url + PREFERENCE, json={"mode": mode}, headers=bearer)
        assert changed.status_code == 200
        assert enabled_modes(account.json(PREFERENCE, **bearer)) == [account.cloud.charger.mode] == [mode]


# --- inverters -----------------------------------------------------------------------------------


def test_inverter_pages_are_disjoint_and_cover_all_twelve(account: Account) -> None:
    pages = [account.json(f"{INVERTERS}?limit=5&offset={offset}") for offset in (0, 5, 10, 15)]
    assert [len(page["inverters"]) for page in pages] == [5, 5, 2, 0]
    assert {(page["total"], page["not_reporting"]) for page in pages} == {(12, 0)}
    serials = [item["serial_number"] for page in pages for item in page["inverters"]]
    assert len(serials) == len(set(serials)) == 12
    everything = account.json(INVERTERS)["inverters"]
    assert [item["serial_number"] for item in everything] == serials
    micros = groups(account.json(DEVICES))["micro"]
    assert {m["serial_number"] for m in micros} == set(serials)
    for item in everything:
        assert DEVICE_KEYS | {"id", "array_name"} <= set(item)
        assert item["id"] == hw.INVERTER_ID_BASE + int(item["name"].removeprefix("Microinverter "))
        assert item["array_name"] in ("South roof", "West roof")
    for bad in ("limit=0", "limit=x", "offset=-1"):
        assert account.get(f"{INVERTERS}?{bad}").status_code == 400


def test_inverter_energy_adds_up_to_todays_production(account: Account, clock: FakeClock) -> None:
    ids = {str(item["id"]) for item in account.json(INVERTERS)["inverters"]}
    energy = account.json(f"{ENERGY}?start_date={DAY}&end_date={DAY}")["production"]
    assert set(energy) == ids
    assert all(isinstance(wh, int) and wh > 0 for wh in energy.values())
    produced = production_today(account)
    assert produced > 1000
    assert sum(energy.values()) == pytest.approx(produced, abs=12)  # twelve roundings of at most 0.5 Wh
    assert max(energy.values()) < 1.5 * min(energy.values())  # no panel far out of line

    clock.now = local(DAY, 14, 42)  # microinverter 7 is silent: its energy stays where it was at 14:00
    silent_id = str(hw.SILENT_INVERTER.id)
    during = account.json(f"{ENERGY}?start_date={DAY}")["production"]
    pages = account.json(INVERTERS)
    assert pages["not_reporting"] == 1
    assert [i["id"] for i in pages["inverters"] if i["status"] != "normal"] == [hw.SILENT_INVERTER.id]
    produced = production_today(account)
    others = sum(wh for key, wh in during.items() if key != silent_id)
    assert others == pytest.approx(produced * (1 - hw.SILENT_INVERTER.share), abs=12)
    assert during[silent_id] < produced * hw.SILENT_INVERTER.share - 10
    clock.now = local(DAY, 14, 55)
    assert account.json(f"{ENERGY}?start_date={DAY}")["production"][silent_id] == during[silent_id]


def test_inverter_energy_over_past_days_matches_daily_energy(account: Account) -> None:
    first, last = DAY - timedelta(days=8), DAY - timedelta(days=1)
    energy = account.json(f"{ENERGY}?start_date={first}&end_date={last}")["production"]
    daily = account.json(f"{DAILY}?start_date={first}&end_date={last}")["stats"]
    produced = sum(sum(item["production"]) for item in daily)
    assert sum(energy.values()) == pytest.approx(produced, abs=12)
    assert account.get(f"{ENERGY}?start_date=28-03-2026").status_code == 400
    assert account.get(f"{ENERGY}?start_date={DAY}&end_date={first}").status_code == 400
