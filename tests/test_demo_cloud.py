"""The built-in demo Enlighten cloud: login and sessions, live payload shapes, and a self-consistent site.

Most tests talk HTTP to a real DemoCloud driven by a fake clock; the rest check the simulation directly.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

import pytest
import requests
from support import FakeClock

from exporter.demo import DEMO_CHARGER_SERIAL, DEMO_EMAIL, DEMO_PASSWORD, DEMO_SITE_ID, DemoCloud
from exporter.demo import simulation as sim

TODAY = f"/pv/systems/{DEMO_SITE_ID}/today"
STATUS = f"/service/evse_controller/{DEMO_SITE_ID}/ev_chargers/status"
SUMMARY = f"/service/evse_controller/api/v2/{DEMO_SITE_ID}/ev_chargers/summary?filter_retired=true"
DAILY = f"/pv/systems/{DEMO_SITE_ID}/daily_energy"
LIFETIME = f"/pv/systems/{DEMO_SITE_ID}/lifetime_energy"
LATEST_POWER = f"/app-api/{DEMO_SITE_ID}/get_latest_power"
SEARCH_SITES = "/app-api/search_sites.json?searchText=&favourite=false"
DATA_PATHS = [TODAY, STATUS, SUMMARY, f"{DAILY}?start_date=2026-03-01", LIFETIME, LATEST_POWER, SEARCH_SITES]


def local(day: date, hour: int, minute: int = 0) -> float:
    return datetime.combine(day, time(hour, minute), sim.TZ).timestamp()


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(local(date(2026, 3, 28), 12, 7))


@pytest.fixture
def cloud(clock: FakeClock) -> Iterator[DemoCloud]:
    with DemoCloud(clock=clock) as running:
        yield running


def login(cloud: DemoCloud) -> requests.Session:
    session = requests.Session()
    answer = session.post(
        cloud.base_url + "/login/login.json",
        data={"user[email]": DEMO_EMAIL, "user[password]": DEMO_PASSWORD},
    )
    assert answer.status_code == 200
    return session


def get_json(session: requests.Session, cloud: DemoCloud, path: str) -> dict:
    answer = session.get(cloud.base_url + path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    return answer.json()


# --- login and sessions --------------------------------------------------------------------------


def test_login_answers_like_the_live_service(cloud: DemoCloud, clock: FakeClock) -> None:
    session = requests.Session()
    answer = session.post(
        cloud.base_url + "/login/login.json",
        data={"user[email]": DEMO_EMAIL, "user[password]": DEMO_PASSWORD},
    )
    body = answer.json()
    assert answer.status_code == 200
    assert body["message"] == "success"
    assert body["is_consumer"] is True
    assert body["system_id"] == int(DEMO_SITE_ID)
    assert body["redirect_url"] == ""
    assert session.cookies["_enlighten_4_session"] == body["session_id"]
    assert session.cookies["enlighten_manager_token_production"] == body["manager_token"]
    assert session.cookies["XSRF-TOKEN"]
    claims = jwt_claims(body["manager_token"])
    assert claims["data"]["session_id"] == body["session_id"]
    assert isinstance(claims["data"]["user_id"], int)
    assert claims["exp"] == int(clock.now + 7 * 86400)
    assert claims["iat"] == int(clock.now)
    assert cloud.login_count == 1


def test_wrong_credentials_are_refused_and_counted(cloud: DemoCloud) -> None:
    session = requests.Session()
    answer = session.post(
        cloud.base_url + "/login/login.json", data={"user[email]": DEMO_EMAIL, "user[password]": "wrong"}
    )
    assert answer.status_code == 401
    assert answer.json() == {"message": "Invalid"}
    assert "_enlighten_4_session" not in session.cookies
    assert session.get(cloud.base_url + TODAY).status_code == 401
    login(cloud)
    assert cloud.login_count == 2


@pytest.mark.parametrize("path", DATA_PATHS)
def test_data_endpoints_need_a_session(cloud: DemoCloud, path: str) -> None:
    answer = requests.get(cloud.base_url + path)
    assert answer.status_code == 401
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert answer.json() == {"message": "Not authorized"}


@pytest.mark.parametrize("path", DATA_PATHS)
def test_data_endpoints_accept_the_login_cookie(cloud: DemoCloud, path: str) -> None:
    assert get_json(login(cloud), cloud, path)


@pytest.mark.parametrize("use", ["token", "cookie", "both"])
def test_browser_session_headers_are_accepted_without_a_login(cloud: DemoCloud, use: str) -> None:
    token, cookie = cloud.browser_session()
    headers = {"e-auth-token": token, "Cookie": cookie}
    if use != "both":
        del headers["Cookie" if use == "token" else "e-auth-token"]
    answer = requests.get(cloud.base_url + STATUS, headers=headers)
    assert answer.status_code == 200
    assert answer.json()["data"]["chargers"][0]["sn"] == DEMO_CHARGER_SERIAL
    assert cloud.login_count == 0


@pytest.mark.parametrize("token", ["nonsense", "a.b.c"])
def test_unknown_and_forged_tokens_are_refused(cloud: DemoCloud, token: str) -> None:
    assert requests.get(cloud.base_url + TODAY, headers={"e-auth-token": token}).status_code == 401


def test_a_tampered_jwt_is_refused(cloud: DemoCloud) -> None:
    token, _ = cloud.browser_session()
    header, _, signature = token.split(".")
    other_session = base64.urlsafe_b64encode(
        json.dumps({"data": {"session_id": "x"}, "exp": 9_999_999_999}).encode()
    )
    forged = f"{header}.{other_session.decode().rstrip('=')}.{signature}"
    assert requests.get(cloud.base_url + TODAY, headers={"e-auth-token": forged}).status_code == 401


@pytest.mark.parametrize("form", ["401", "403", "302", "html"])
def test_expired_sessions_are_answered_in_the_chosen_form(cloud: DemoCloud, form: str) -> None:
    session = login(cloud)
    token, _ = cloud.browser_session()
    cloud.expire_sessions(form)
    for answer in (
        session.get(cloud.base_url + TODAY, allow_redirects=False),
        requests.get(cloud.base_url + TODAY, headers={"e-auth-token": token}, allow_redirects=False),
    ):
        if form in ("401", "403"):
            assert answer.status_code == int(form)
            assert answer.headers["Content-Type"].startswith("application/json")
        elif form == "302":
            assert answer.status_code == 302
            assert answer.headers["Location"].endswith("/login")
        else:
            assert answer.status_code == 200
            assert answer.headers["Content-Type"].startswith("text/html")
            assert "<form" in answer.text
    followed = session.get(cloud.base_url + TODAY)  # a client that follows the redirect gets HTML too
    assert followed.headers["Content-Type"].startswith(
        "application/json" if form in ("401", "403") else "text/html"
    )
    get_json(login(cloud), cloud, TODAY)  # new logins work normally


def test_expire_sessions_rejects_unknown_forms(cloud: DemoCloud) -> None:
    with pytest.raises(ValueError):
        cloud.expire_sessions("418")


def test_sessions_run_out_after_their_ttl_unless_the_token_is_refreshed(clock: FakeClock) -> None:
    with DemoCloud(clock=clock, session_ttl=3600) as cloud:
        idle, refreshed = login(cloud), login(cloud)
        clock.now += 3000
        for path in ("/app-api/jwt_token.json", "/service/auth_ms_enho/api/v1/session/token"):
            token = get_json(refreshed, cloud, path)["token"]
            assert jwt_claims(token)["exp"] == int(clock.now + 3600)
        clock.now += 1000
        assert idle.get(cloud.base_url + TODAY).status_code == 401
        get_json(refreshed, cloud, TODAY)
        assert requests.get(cloud.base_url + TODAY, headers={"e-auth-token": token}).status_code == 200
        clock.now += 3600
        assert refreshed.get(cloud.base_url + TODAY).status_code == 401
        assert requests.get(cloud.base_url + TODAY, headers={"e-auth-token": token}).status_code == 401


def test_unknown_site_and_unknown_path_are_404(cloud: DemoCloud) -> None:
    session = login(cloud)
    assert session.get(cloud.base_url + "/pv/systems/7654321/today").status_code == 404
    assert (
        session.get(cloud.base_url + "/service/evse_controller/7654321/ev_chargers/status").status_code == 404
    )
    assert session.get(cloud.base_url + "/no/such/thing").status_code == 404


def test_requests_are_recorded_without_query_and_not_logged(
    cloud: DemoCloud, capfd: pytest.CaptureFixture[str]
) -> None:
    session = login(cloud)
    session.get(cloud.base_url + SEARCH_SITES)
    assert cloud.requests_seen == [("POST", "/login/login.json"), ("GET", "/app-api/search_sites.json")]
    assert capfd.readouterr().err == ""


def test_site_search(cloud: DemoCloud) -> None:
    assert get_json(login(cloud), cloud, SEARCH_SITES) == {
        "sites": [{"id": 1234567, "title": "Demo Home", "path": "/web/1234567?v=3.4.0", "favourite": False}]
    }


# --- site energy ---------------------------------------------------------------------------------


def assert_consistent(item: dict, intervals: int) -> None:
    assert item["battery_grid"] == []  # not measured at this site
    for name in ("heatpump", "water_heater"):
        assert item[name] == [0] * intervals  # loads the site has not got: the live service's placeholders
    # before the panels wake up the live service sends production as []
    item = {**item, "production": item["production"] or [0] * intervals}
    channels = (*sim.CHANNELS, "soc")
    assert {len(item[name]) for name in channels} == {intervals}
    for i in range(intervals):
        v = {name: item[name][i] for name in channels}
        assert v["production"] + v["import"] + v["discharge"] == v["consumption"] + v["export"] + v["charge"]
        assert v["solar_home"] + v["solar_battery"] + v["solar_grid"] == v["production"]
        assert v["solar_home"] + v["battery_home"] + v["grid_home"] == v["consumption"]
        assert v["grid_home"] + v["grid_battery"] == v["import"]
        assert v["solar_battery"] + v["grid_battery"] == v["charge"]
        assert v["battery_home"] == v["discharge"]
        assert v["evse"] <= v["consumption"]
        assert v["grid_battery"] == 0  # charge_from_grid is false
        assert min(v.values()) >= 0
        assert sim.BACKUP_RESERVE_PERCENT <= v["soc"] <= 100
    for name in ("production", "consumption", "import", "export", "charge", "discharge"):
        assert item["totals"][name] == sum(item[name])


@pytest.mark.parametrize(
    ("day", "intervals"),
    [(date(2026, 3, 29), 92), (date(2026, 10, 25), 100), (date(2025, 6, 21), 96), (date(2025, 12, 21), 96)],
)
def test_every_interval_balances_including_dst_days(clock: FakeClock, day: date, intervals: int) -> None:
    clock.now = local(date(2026, 11, 2), 12)
    with DemoCloud(clock=clock) as cloud:
        body = get_json(login(cloud), cloud, f"{DAILY}?start_date={day}&end_date={day + timedelta(days=1)}")
    assert body["system_id"] == int(DEMO_SITE_ID)
    item = body["stats"][0]
    assert item["start_time"] == local(day, 0)
    assert item["interval_length"] == 900
    assert_consistent(item, intervals)
    assert item["totals"]["production"] > 0
    assert body["stats"][1]["start_time"] == local(day + timedelta(days=1), 0)


def test_the_newest_closed_interval_grows_then_settles(cloud: DemoCloud, clock: FakeClock) -> None:
    session = login(cloud)
    closed_at = local(date(2026, 3, 28), 19)
    index = 19 * 4 - 1  # 18:45-19:00 on a 96-interval day
    seen = []
    for after in (0, 60, 150, 240, 300, 600, 840):
        clock.now = closed_at + after
        item = get_json(session, cloud, TODAY)["stats"][0]
        assert len(item["consumption"]) == index + 1 + (after > 0)  # the open interval appears once begun
        assert_consistent(item, len(item["consumption"]))
        seen.append(item["consumption"][index])
    final = seen[-1]
    assert final > 150
    assert abs(seen[0] - final / 3) <= 1
    assert seen[0] < seen[1] < seen[2] < seen[3] < final
    assert seen[4:] == [final, final, final]


def test_the_open_interval_holds_the_energy_so_far_and_the_future_is_absent(
    cloud: DemoCloud, clock: FakeClock
) -> None:
    session = login(cloud)
    clock.now = local(date(2026, 3, 28), 10, 7) + 30
    early = get_json(session, cloud, TODAY)["stats"][0]
    clock.now = local(date(2026, 3, 28), 11, 0)
    settled = get_json(session, cloud, TODAY)["stats"][0]
    assert len(early["production"]) == 41  # 10:00-10:15 is open, nothing after it
    assert len(settled["production"]) == 44
    share = early["consumption"][40] / settled["consumption"][40]
    assert share == pytest.approx(450 / 900, abs=0.02)
    assert early["production"][:40] == settled["production"][:40]


def test_today_carries_battery_state_and_matches_daily_energy(cloud: DemoCloud, clock: FakeClock) -> None:
    session = login(cloud)
    clock.now = local(date(2026, 3, 28), 15, 22) + 17
    today = get_json(session, cloud, TODAY)
    daily = get_json(session, cloud, f"{DAILY}?start_date=2026-03-27")
    assert today["system_id"] == int(DEMO_SITE_ID)
    assert today["start_date"] == today["end_date"] == "2026-03-28"  # today's date, not the site's first day
    assert today["last_report_date"] == local(date(2026, 3, 28), 15, 20)
    assert today["batteryConfig"] == {
        "battery_backup_percentage": 20,
        "very_low_soc": 10,
        "charge_from_grid": False,
        "usage": "self-consumption",
    }
    details = today["battery_details"]
    assert details["aggregate_soc"] == today["stats"][0]["soc"][-1]
    assert isinstance(details["estimated_time"], int)
    assert 5 < details["last_24h_consumption"] < 80
    assert len(today["stats"]) == 1
    assert len(daily["stats"]) == 2  # end_date defaults to today
    assert daily["stats"][-1] == today["stats"][0]
    assert {"soc", "grid_import"} <= today["stats"][0]["totals"].keys()


def test_yesterday_is_unprocessed_for_a_while_then_never_changes(cloud: DemoCloud, clock: FakeClock) -> None:
    session = login(cloud)
    path = f"{DAILY}?start_date=2026-03-27&end_date=2026-03-27"
    clock.now = local(date(2026, 3, 27), 23, 55)
    late = get_json(session, cloud, path)["stats"][0]
    clock.now = local(date(2026, 3, 28), 0, 2)  # after midnight the live service has not processed it yet
    unprocessed = get_json(session, cloud, path)["stats"][0]
    assert unprocessed["totals"] == {} and unprocessed["production"] == unprocessed["consumption"] == []
    assert get_json(session, cloud, LIFETIME)["production"][-2] is None  # lifetime_energy: null
    clock.now = local(date(2026, 3, 28), 1, 31)
    first = get_json(session, cloud, path)["stats"][0]
    assert len(first["consumption"]) == 96 and sum(first["consumption"]) > sum(late["consumption"])
    assert get_json(session, cloud, LIFETIME)["consumption"][-2] == first["totals"]["consumption"]
    clock.now = local(date(2026, 6, 1), 9)
    assert get_json(login(cloud), cloud, path)["stats"][0] == first


def test_daily_energy_spans_years_and_is_empty_before_the_site_started(clock: FakeClock) -> None:
    clock.now = local(date(2026, 8, 1), 12)
    with DemoCloud(clock=clock) as cloud:
        body = get_json(login(cloud), cloud, f"{DAILY}?start_date=2023-06-01")
    stats = body["stats"]
    assert len(stats) == (date(2026, 8, 1) - date(2023, 6, 1)).days + 1
    before = (sim.SITE_START - date(2023, 6, 1)).days
    assert all(
        item["production"] == [] and item["evse"] == [] and item["soc"] == [] for item in stats[:before]
    )
    assert all(len(item["production"]) in (92, 96, 100) for item in stats[before:-1])
    assert stats[before]["start_time"] == local(sim.SITE_START, 0)
    assert stats[-1]["start_time"] == local(date(2026, 8, 1), 0)


def test_daily_energy_needs_a_valid_start_date(cloud: DemoCloud) -> None:
    session = login(cloud)
    assert session.get(cloud.base_url + DAILY).status_code == 400
    assert session.get(cloud.base_url + f"{DAILY}?start_date=yesterday").status_code == 400


def test_lifetime_energy_has_one_value_per_day_through_today(cloud: DemoCloud, clock: FakeClock) -> None:
    session = login(cloud)
    body = get_json(session, cloud, LIFETIME)
    daily = get_json(session, cloud, f"{DAILY}?start_date=2026-03-20&end_date=2026-03-28")["stats"]
    assert body["start_date"] == sim.SITE_START.isoformat() == "2023-08-10"  # the site's first day
    assert len(body["production"]) == (date(2026, 3, 28) - sim.SITE_START).days + 1  # today so far too
    offset = (date(2026, 3, 20) - sim.SITE_START).days
    for name in ("production", "consumption", "import", "export", "charge", "discharge", "evse"):
        assert body[name][offset:] == [sum(item[name]) for item in daily]
    assert body["heatpump"] == body["water_heater"] == body["battery_grid"] == []


def test_latest_power_shape(cloud: DemoCloud, clock: FakeClock) -> None:
    power = get_json(login(cloud), cloud, LATEST_POWER)["latest_power"]
    assert power["units"] == "W"
    assert power["precision"] == 0
    assert power["time"] == local(date(2026, 3, 28), 12, 5)
    assert isinstance(power["value"], int) and 0 <= power["value"] <= 6000


# --- EV charger ----------------------------------------------------------------------------------


def find_session(after: date, *, faulted: bool) -> sim.ChargingSession:
    """The first evening session after ``after`` that is its day's only one, with or without a fault."""
    day = after
    while True:
        match sim.sessions_for_day(day):
            case (session,) if datetime.fromtimestamp(session.plugged_in_at, sim.TZ).hour >= 17:
                if (session.fault is not None) == faulted:
                    return session
        day += timedelta(days=1)


def parse_iso(text: str) -> float:
    assert text.endswith("Z[UTC]")
    return datetime.fromisoformat(text.removesuffix("Z[UTC]")).replace(tzinfo=UTC).timestamp()


def test_a_charging_session_over_an_evening(cloud: DemoCloud, clock: FakeClock) -> None:
    session = login(cloud)
    plan = find_session(date(2026, 3, 28), faulted=False)

    def charger_at(ts: float) -> dict:
        clock.now = ts
        return get_json(session, cloud, STATUS)["data"]["chargers"][0]

    before = charger_at(plan.plugged_in_at - 600)
    assert before["pluggedIn"] is False
    assert before["connectors"][0]["connectorStatusType"] == "AVAILABLE"

    preparing = charger_at(plan.plugged_in_at + 30)
    assert (preparing["pluggedIn"], preparing["charging"]) == (True, False)
    assert preparing["connectors"][0]["connectorStatusType"] == "PREPARING"
    assert preparing["session_d"]["strt_chrg"] is None  # charging has not started yet
    assert preparing["session_d"]["e_c"] == 0

    charging = charger_at(plan.charging_from + 600)
    later = charger_at(plan.charging_from + 1200)
    for state in (charging, later):
        assert (state["pluggedIn"], state["charging"], state["faulted"]) == (True, True, False)
        assert state["connectors"][0]["connectorStatusType"] == "CHARGING"
        assert state["session_d"]["charge_level"] == 16
        assert state["session_d"]["plg_out_at"] is None
    assert parse_iso(charging["session_d"]["plg_in_at"]) == pytest.approx(plan.plugged_in_at, abs=0.001)
    assert charging["session_d"]["strt_chrg"] == round(plan.charging_from * 1000)
    assert charging["session_d"]["e_c"] == pytest.approx(3 * 230 * 16 * 600 / 3600, abs=0.01)
    assert later["session_d"]["e_c"] > charging["session_d"]["e_c"]

    done = charger_at(plan.charging_until + 60)
    assert (done["pluggedIn"], done["charging"]) == (True, False)
    assert done["connectors"][0]["connectorStatusType"] == "SUSPENDED_EV"
    assert done["session_d"]["charge_level"] is None
    energy_wh = done["session_d"]["e_c"]
    assert 8000 <= energy_wh <= 20000
    assert done["session_d"]["session_cost"] == pytest.approx(energy_wh / 1000 * 0.30, abs=0.01)

    gone = charger_at(plan.unplugged_at + 60)
    assert (gone["pluggedIn"], gone["charging"]) == (False, False)
    assert gone["connectors"][0]["connectorStatusType"] == "AVAILABLE"
    assert gone["session_d"]["e_c"] == energy_wh  # the last session stays on show
    assert parse_iso(gone["session_d"]["plg_out_at"]) == pytest.approx(plan.unplugged_at, abs=0.001)
    assert 7 <= datetime.fromtimestamp(plan.unplugged_at, sim.TZ).hour <= 8

    day = sim.local_day(plan.plugged_in_at)
    evse = get_json(session, cloud, f"{DAILY}?start_date={day}&end_date={day}")["stats"][0]["evse"]
    assert sum(evse) == pytest.approx(energy_wh, abs=len(evse) / 2)


def test_a_fault_day_shows_the_fault(cloud: DemoCloud, clock: FakeClock) -> None:
    session = login(cloud)
    plan = find_session(date(2026, 3, 28), faulted=True)
    assert plan.fault is not None
    fault_start, fault_end = plan.fault
    assert 12 * 60 <= fault_end - fault_start <= 18 * 60

    def charger_at(ts: float) -> dict:
        clock.now = ts
        return get_json(session, cloud, STATUS)["data"]["chargers"][0]

    during, still = charger_at(fault_start + 30), charger_at(fault_end - 30)
    for state in (during, still):
        assert (state["pluggedIn"], state["charging"], state["faulted"]) == (True, False, True)
        assert state["connectors"][0]["connectorStatusType"] == "FAULTED"
        assert state["session_d"]["charge_level"] is None
    assert still["session_d"]["e_c"] == during["session_d"]["e_c"]  # nothing flows during a fault
    resumed = charger_at(fault_end + 60)
    assert (resumed["charging"], resumed["faulted"]) == (True, False)
    assert resumed["session_d"]["e_c"] > still["session_d"]["e_c"]
    done = charger_at(plan.unplugged_at)
    day = sim.local_day(plan.plugged_in_at)
    evse = get_json(session, cloud, f"{DAILY}?start_date={day}&end_date={day}")["stats"][0]["evse"]
    assert sum(evse) == pytest.approx(done["session_d"]["e_c"], abs=len(evse) / 2)


def test_status_and_summary_shapes(cloud: DemoCloud, clock: FakeClock) -> None:
    session = login(cloud)
    status = get_json(session, cloud, STATUS)
    assert status["meta"]["serverTimeStamp"] == int(clock.now * 1000)
    assert status["data"]["site"] == DEMO_SITE_ID
    assert status["data"]["tz"] == "Europe/Amsterdam"
    charger = status["data"]["chargers"][0]
    assert charger["name"] == "Garage"
    assert 0 <= clock.now - parse_iso(charger["lst_rpt_at"]) <= 120
    assert charger["connectors"][0]["connectorId"] == 1

    summary = get_json(session, cloud, SUMMARY)
    assert summary["meta"]["rowCount"] == 1
    item = summary["data"][0]
    assert item["serialNumber"] == DEMO_CHARGER_SERIAL
    assert item["displayName"] == "Garage"
    assert (item["ratedCurrent"], item["operatingVoltage"]) == ("32", "230")
    assert item["chargeLevelDetails"] == {
        "min": "6",
        "max": "32",
        "granularity": "1",
        "defaultChargeLevel": "disabled",
    }
    assert item["maxCurrent"] == 32 and isinstance(item["maxCurrent"], int)
    assert item["phaseCount"] == 3
    assert isinstance(item["lifeTimeConsumption"], float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z\[UTC\]", item["lastReportedAt"])
    interfaces = json.loads(item["networkConfig"])
    assert interfaces and all(isinstance(entry, str) and "interface_name=" in entry for entry in interfaces)


def test_lifetime_consumption_never_decreases(cloud: DemoCloud, clock: FakeClock) -> None:
    session = login(cloud)
    values = []
    start = local(date(2026, 3, 27), 17)
    for step in range(0, 36 * 3600, 20 * 60):
        clock.now = start + step
        values.append(get_json(session, cloud, SUMMARY)["data"][0]["lifeTimeConsumption"])
    assert values == sorted(values)
    assert values[-1] - values[0] > 8000  # at least one evening's session happened in between


def test_lifetime_consumption_equals_the_evse_history(cloud: DemoCloud, clock: FakeClock) -> None:
    session = login(cloud)
    clock.now = local(date(2026, 3, 28), 2, 0)  # no charging since midnight; yesterday processed
    lifetime = get_json(session, cloud, SUMMARY)["data"][0]["lifeTimeConsumption"]
    per_day = get_json(session, cloud, LIFETIME)["evse"]
    assert lifetime == pytest.approx(sum(per_day), abs=len(per_day) / 2)
    stats = get_json(session, cloud, f"{DAILY}?start_date=2023-08-10&end_date=2026-03-27")["stats"]
    intervals = [wh for item in stats for wh in item["evse"]]
    assert lifetime == pytest.approx(sum(intervals), abs=sum(1 for wh in intervals if wh) / 2)
    assert lifetime > 1_000_000  # years of charging


# --- the simulation itself -----------------------------------------------------------------------


def test_the_simulation_is_deterministic() -> None:
    day = date(2025, 5, 3)
    first = sim.simulate_day(day)
    sim.simulate_day.cache_clear()
    assert sim.simulate_day(day) == first
    assert sim.sessions_for_day(day) == sim.sessions_for_day.__wrapped__(day)


def test_dst_days_have_92_and_100_intervals() -> None:
    assert sim.interval_count(date(2026, 3, 29)) == 92
    assert sim.interval_count(date(2026, 10, 25)) == 100
    assert sim.interval_count(date(2026, 3, 28)) == 96


def test_the_battery_state_is_continuous_across_midnight() -> None:
    day = date(2025, 9, 14)
    assert sim.simulate_day(day + timedelta(days=1)).soc_at_start == sim.simulate_day(day).intervals[-1].soc


def test_sessions_follow_the_household_routine() -> None:
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(365)]
    sessions = [(day, s) for day in days for s in sim.sessions_for_day(day)]
    evenings = [(day, s) for day, s in sessions if datetime.fromtimestamp(s.plugged_in_at, sim.TZ).hour >= 17]
    middays = [(day, s) for day, s in sessions if datetime.fromtimestamp(s.plugged_in_at, sim.TZ).hour < 17]
    assert 0.55 < len(evenings) / len(days) < 0.85  # most evenings
    assert middays and all(day.weekday() >= 5 for day, _ in middays)
    for day, s in evenings:
        plugged = datetime.fromtimestamp(s.plugged_in_at, sim.TZ)
        assert plugged.date() == day and time(18) <= plugged.time() <= time(19, 30)
        assert 8000 <= s.energy_wh(s.plugged_in_at, s.unplugged_at) <= 20000
        assert sim.local_day(s.unplugged_at) == day + timedelta(days=1)
    faults = sum(1 for _, s in sessions if s.fault)
    assert 30 < faults < 90  # about one day in six
    assert all(s.unplugged_at > s.charging_until for _, s in sessions)


def test_the_site_looks_like_a_dutch_home_with_6_kwp() -> None:
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(365)]
    year = {day: sim.day_totals(day) for day in days}
    assert 4500 < sum(totals["production"] for totals in year.values()) / 1000 < 7000

    def monthly_kwh(month: int) -> float:
        return sum(totals["production"] for day, totals in year.items() if day.month == month) / 1000

    assert monthly_kwh(6) > 3 * monthly_kwh(12)
    assert all(totals["grid_battery"] == 0 for totals in year.values())
