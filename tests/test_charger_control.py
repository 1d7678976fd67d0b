"""``enphase-exporter charger``: every command against the demo cloud, and the regional forms of the
requests against a scripted cloud that takes only one of them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import FIXTURES
from fixture_cloud import PASTED_COOKIE, PASTED_TOKEN, SITE
from prometheus_client import CollectorRegistry
from support import FakeClock

from exporter import cli, control
from exporter.auth import PastedHeaders, SessionFile
from exporter.client import CloudClient, RequestMetrics, Transport, UpstreamUnavailable
from exporter.demo import DEMO_CHARGER_SERIAL, DEMO_EMAIL, DEMO_PASSWORD, DEMO_SITE_ID, DemoCloud, payloads
from exporter.demo import simulation as sim

SERIAL = DEMO_CHARGER_SERIAL
START_PATHS = ("start_charging", "stop_charging", "trigger_message")
PREFERENCE = f"/service/evse_scheduler/api/v1/iqevc/charging-mode/{SITE}/EV1111111111/preference"


def moment(plugged_in: bool, charging: bool, faulted: bool = False) -> float:
    """The first 5-minute mark from a fixed day on where the simulated charger is in that state."""
    start = 1764600000.0
    for step in range(0, 86400 * 14, 300):
        state = sim.charger_state(start + step)
        if (state.plugged_in, state.charging, state.faulted) == (plugged_in, charging, faulted):
            return start + step
    raise AssertionError("no such moment in two weeks of the simulation")


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[DemoCloud, FakeClock]]:
    clock = FakeClock(moment(plugged_in=True, charging=False))
    for name in [name for name in os.environ if name.startswith("ENPHASE_")]:
        monkeypatch.delenv(name)
    with DemoCloud(clock=clock) as cloud:
        monkeypatch.setenv("ENPHASE_BASE_URL", cloud.base_url)
        monkeypatch.setenv("ENPHASE_EMAIL", DEMO_EMAIL)
        monkeypatch.setenv("ENPHASE_PASSWORD", DEMO_PASSWORD)
        monkeypatch.setenv("ENPHASE_SESSION_FILE", str(tmp_path / "session.json"))
        monkeypatch.setenv("ENPHASE_LOG_LEVEL", "warning")
        yield cloud, clock


def charger(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["charger", *args])
    return code, capsys.readouterr().out


def control_requests(cloud: DemoCloud) -> list[tuple[str, str]]:
    return [(m, p) for m, p in cloud.requests_seen if p.endswith(START_PATHS) or p.endswith("/preference")]


def charger_payload(cloud: DemoCloud, now: float) -> dict:
    return cloud.charger.apply(payloads.ev_status(now), now)


# -- every command against the demo cloud ------------------------------------------------------------------


def test_list_shows_each_charger_with_its_state_limits_and_mode(demo, capsys):
    code, out = charger(capsys, "list")
    assert code == 0
    assert f"Site {DEMO_SITE_ID}" in out
    assert f"{SERIAL}  Garage  plugged in, not charging, 6-32 A, mode manual" in out
    code, out = charger(capsys, "list", "--json")
    listed = json.loads(out)["sites"][0]
    assert listed["site_id"] == DEMO_SITE_ID
    assert listed["chargers"][0]["mode"] == "manual"
    assert listed["chargers"][0]["charge_level_max_amperes"] == 32


def test_a_site_without_a_charger_hides_neither_the_list_nor_the_other_sites_charger(
    demo, capsys, monkeypatch
):
    monkeypatch.setenv("ENPHASE_SITE_ID", f"7777777,{DEMO_SITE_ID}")  # the demo answers 404 for 7777777
    code, out = charger(capsys, "list")
    assert code == 0
    assert out.startswith("Site 7777777\n  no charger\nSite 1234567\n")
    code, out = charger(capsys, "stop", "--serial", SERIAL, "--json")
    assert code == 0 and json.loads(out)["site_id"] == DEMO_SITE_ID


def test_a_started_charge_charges_at_the_asked_current_and_a_stopped_one_stops(demo, capsys):
    cloud, clock = demo
    code, out = charger(capsys, "start", "--serial", SERIAL, "--amps", "20")
    assert (code, out.strip()) == (0, f"Charging started on {SERIAL} at 20 A")
    started = charger_payload(cloud, clock.now)["data"]["chargers"][0]
    assert started["charging"] is True and started["session_d"]["charge_level"] == 20
    assert started["connectors"][0]["connectorStatusType"] == "CHARGING"
    energy_at_start = started["session_d"]["e_c"]
    clock.now += 600
    ten_minutes = charger_payload(cloud, clock.now)["data"]["chargers"][0]["session_d"]["e_c"]
    assert ten_minutes - energy_at_start == pytest.approx(3 * 230 * 20 / 6, abs=0.02)  # 10 min at 13.8 kW

    code, out = charger(capsys, "stop", "--serial", SERIAL)
    assert (code, out.strip()) == (0, f"Charging stopped on {SERIAL}")
    clock.now += 600
    stopped = charger_payload(cloud, clock.now)["data"]["chargers"][0]
    assert stopped["charging"] is False and stopped["session_d"]["charge_level"] is None
    assert stopped["session_d"]["e_c"] == pytest.approx(ten_minutes, abs=0.02)  # held where it stopped


def test_the_exporter_sees_the_started_charge(demo, capsys):
    """The status payload the exporter polls (over HTTP, through its parser) shows the change."""
    _cloud, _clock = demo
    assert charger(capsys, "start", "--serial", SERIAL, "--amps", "10")[0] == 0
    _code, out = charger(capsys, "list", "--json")
    listed = json.loads(out)["sites"][0]["chargers"][0]
    assert listed["charging"] is True and listed["charging_current_amperes"] == 10


def test_start_while_unplugged_and_stop_while_idle_are_nothing_to_do(demo, capsys):
    _cloud, clock = demo
    code, out = charger(capsys, "stop", "--serial", SERIAL, "--json")
    assert code == 0
    answer = json.loads(out)
    assert (answer["outcome"], answer["http_status"]) == ("nothing_to_do", 422)
    clock.now = moment(plugged_in=False, charging=False)
    code, out = charger(capsys, "start", "--serial", SERIAL)
    assert code == 0
    assert out.startswith("nothing to do") and "HTTP 409" in out


def test_a_mode_change_shows_in_the_status_payload_and_the_preference(demo, capsys):
    cloud, clock = demo
    code, out = charger(capsys, "mode", "--serial", SERIAL, "green")
    assert (code, out.strip()) == (0, f"{SERIAL} now charges in green mode")
    status = charger_payload(cloud, clock.now)["data"]["chargers"][0]
    assert status["mode"] == 2 and status["sch_d"]["info"][0]["type"] == "greencharging"
    assert json.loads(charger(capsys, "list", "--json")[1])["sites"][0]["chargers"][0]["mode"] == "green"
    assert (
        "PUT",
        f"/service/evse_scheduler/api/v1/iqevc/charging-mode/{DEMO_SITE_ID}/{SERIAL}/preference",
    ) in (control_requests(cloud))


def test_trigger_asks_for_the_ocpp_message(demo, capsys):
    cloud, _ = demo
    code, out = charger(capsys, "trigger", "--serial", SERIAL, "StatusNotification", "--json")
    assert code == 0 and json.loads(out)["outcome"] == "accepted"
    assert cloud.charger.triggered == ["StatusNotification"]


@pytest.mark.parametrize(
    "args",
    [
        ("start", "--serial", "EV9999999999"),
        ("start", "--serial", SERIAL, "--amps", "33"),
        ("start", "--serial", SERIAL, "--amps", "5"),
        ("stop", "--serial", SERIAL, "--site", "7777777"),
    ],
)
def test_bad_input_exits_2_and_sends_no_control_request(demo, capsys, args):
    cloud, _ = demo
    code, out = charger(capsys, *args)
    assert code == 2, out
    assert "nothing was sent" in out
    assert control_requests(cloud) == []


@pytest.mark.parametrize(
    "args", [("mode", "--serial", SERIAL, "turbo"), ("trigger", "--serial", SERIAL, "Reboot"), ("start",)]
)
def test_arguments_outside_the_choices_exit_2_before_any_request(demo, capsys, args):
    cloud, _ = demo
    with pytest.raises(SystemExit) as stopped:
        cli.main(["charger", *args])
    assert stopped.value.code == 2
    assert cloud.requests_seen == []


def test_dry_run_prints_the_request_with_secrets_masked_and_sends_nothing(demo, capsys):
    cloud, _ = demo
    code, out = charger(capsys, "start", "--serial", SERIAL, "--amps", "16", "--dry-run", "--json")
    assert code == 0
    request = json.loads(out)["request"]
    assert request["method"] == "POST"
    assert request["url"].endswith(
        f"/service/evse_controller/{DEMO_SITE_ID}/ev_chargers/{SERIAL}/start_charging"
    )
    assert request["body"] == {"chargingLevel": 16, "connectorId": 1}
    assert request["headers"]["e-auth-token"] == "***" and request["headers"]["Cookie"] == "***"
    assert request["headers"]["Authorization"] == "Bearer ***"
    assert control_requests(cloud) == []


def _send_every_form(cloud: DemoCloud) -> list[tuple[str, str, int]]:
    transport = Transport(cloud.base_url, RequestMetrics(CollectorRegistry()))
    token, cookie = cloud.browser_session()
    client = CloudClient(transport, PastedHeaders(token, cookie, cloud.base_url + "/"))
    answers = []
    for action, fields in (
        ("start", {"chargingLevel": 12, "connectorId": 1}),
        ("stop", {}),
        ("trigger", {"requestedMessage": "Heartbeat"}),
    ):
        for form in control.forms(action):
            path = form.path(DEMO_SITE_ID, SERIAL, action)
            answers.append(
                (action, form.name, client.send_json(action, form.method, path, form.body(fields)).status)
            )
            if action == "stop":  # the next stop needs a charge to stop
                client.send_json(
                    "start", "POST", control.forms("start")[0].path(DEMO_SITE_ID, SERIAL, "start")
                )
    return answers


def test_the_demo_cloud_takes_every_regional_form(demo):
    cloud, _ = demo
    answers = _send_every_form(cloud)
    assert len(answers) == 12 + 4 + 8
    assert [(a, f) for a, f, status in answers if status != 200] == []


# -- the regional forms, against a cloud that takes only one ---------------------------------------------


class OneFormCloud:
    """Takes start and trigger only as PUT + ev_charger + snake_case, stop only as PUT + ev_charger (else
    404/405/400), and the charge mode as the scheduler takes it."""

    def __init__(self, control_status: int | None = None) -> None:
        self.control_status = control_status  # answer every control request with this, when set
        self.controls: list[tuple[str, str, dict | None]] = []
        self.mode = "MANUAL_CHARGING"
        self.delay = 0.0  # seconds before a control request is answered
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not self._authorised():
                    return
                path = self.path.split("?")[0]
                if path == f"/service/evse_controller/{SITE}/ev_chargers/status":
                    return self._send(200, (FIXTURES / "ev_status_live_charging.json").read_bytes())
                if path == f"/service/evse_controller/api/v2/{SITE}/ev_chargers/summary":
                    return self._send(200, (FIXTURES / "ev_summary_live.json").read_bytes())
                if path == PREFERENCE and self.headers.get("Authorization") == f"Bearer {PASTED_TOKEN}":
                    return self._preference()
                self._send(404, b'{"message": "not found"}')

            def do_POST(self) -> None:
                self._control("POST")

            def do_PUT(self) -> None:
                self._control("PUT")

            def _control(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if raw else None
                cloud.controls.append((method, self.path, body))
                time.sleep(cloud.delay)
                if not self._authorised():
                    return
                if cloud.control_status is not None:
                    return self._send(cloud.control_status, b'{"message": "trouble"}')
                if self.path == PREFERENCE and method == "PUT" and self.headers.get("Authorization"):
                    cloud.mode = body["mode"]
                    return self._preference()
                base = f"/service/evse_controller/{SITE}/ev_charger/EV1111111111/"
                actions = ("start_charging", "stop_charging", "trigger_message")
                if self.path not in [base + action for action in actions]:
                    return self._send(404, b'{"message": "not found"}')
                if method != "PUT":
                    return self._send(405, b'{"message": "method not allowed"}')
                needed = {"start_charging": "charging_level", "trigger_message": "requested_message"}
                key = needed.get(self.path.rsplit("/", 1)[1])
                if key is not None and (body is None or key not in body):
                    return self._send(400, f'{{"message": "{key} is required"}}'.encode())
                self._send(200, b'{"status": "accepted"}')

            def _preference(self) -> None:
                modes = {
                    "manualCharging": {"enabled": cloud.mode == "MANUAL_CHARGING"},
                    "greenCharging": {"enabled": cloud.mode == "GREEN_CHARGING"},
                }
                self._send(200, json.dumps({"data": {"modes": modes}}).encode())

            def _authorised(self) -> bool:
                if (
                    self.headers.get("e-auth-token") == PASTED_TOKEN
                    and self.headers.get("Cookie") == PASTED_COOKIE
                ):
                    return True
                self._send(401, b'{"message": "Not authorized"}')
                return False

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.handle_error = lambda *args: None  # a client that timed out has gone: expected here
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OneFormCloud:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def one_form(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[OneFormCloud]:
    for name in [name for name in os.environ if name.startswith("ENPHASE_")]:
        monkeypatch.delenv(name)
    with OneFormCloud() as cloud:
        monkeypatch.setenv("ENPHASE_BASE_URL", cloud.base_url)
        monkeypatch.setenv("ENPHASE_E_AUTH_TOKEN", PASTED_TOKEN)
        monkeypatch.setenv("ENPHASE_COOKIE", PASTED_COOKIE)
        monkeypatch.setenv("ENPHASE_SITE_ID", SITE)
        monkeypatch.setenv("ENPHASE_SESSION_FILE", str(tmp_path / "session.json"))
        monkeypatch.setenv("ENPHASE_LOG_LEVEL", "warning")
        yield cloud


def test_forms_are_tried_in_order_and_the_one_that_worked_is_remembered(one_form, capsys, tmp_path):
    code, out = charger(capsys, "start", "--serial", "EV1111111111", "--amps", "16")
    assert (code, out.strip()) == (0, "Charging started on EV1111111111 at 16 A")
    tried = [(method, path.split("/")[4], body) for method, path, body in one_form.controls]
    assert tried == [
        ("POST", "ev_chargers", {"chargingLevel": 16, "connectorId": 1}),
        ("POST", "ev_chargers", {"charging_level": 16, "connector_id": 1}),
        ("POST", "ev_charger", {"chargingLevel": 16, "connectorId": 1}),
        ("POST", "ev_charger", {"charging_level": 16, "connector_id": 1}),
        ("PUT", "ev_chargers", {"chargingLevel": 16, "connectorId": 1}),
        ("PUT", "ev_chargers", {"charging_level": 16, "connector_id": 1}),
        ("PUT", "ev_charger", {"chargingLevel": 16, "connectorId": 1}),
        ("PUT", "ev_charger", {"charging_level": 16, "connector_id": 1}),
    ]
    saved = json.loads((tmp_path / "session.json").read_text())
    assert (tmp_path / "session.json").stat().st_mode & 0o777 == 0o600
    assert list(saved["control_forms"].values()) == [{"start": "PUT ev_charger snake"}]

    one_form.controls.clear()
    code, _ = charger(capsys, "start", "--serial", "EV1111111111", "--amps", "12")
    assert code == 0
    assert [(m, p.split("/")[4], b) for m, p, b in one_form.controls] == [
        ("PUT", "ev_charger", {"charging_level": 12, "connector_id": 1})
    ]


def test_stop_finds_its_own_form_and_a_dry_run_shows_the_remembered_one(one_form, capsys):
    assert charger(capsys, "stop", "--serial", "EV1111111111")[0] == 0
    assert [(m, p.split("/")[4]) for m, p, _ in one_form.controls] == [
        ("POST", "ev_chargers"),
        ("POST", "ev_charger"),
        ("PUT", "ev_chargers"),
        ("PUT", "ev_charger"),
    ]
    one_form.controls.clear()
    code, out = charger(capsys, "stop", "--serial", "EV1111111111", "--dry-run")
    assert code == 0 and out.startswith(
        f"Would send: PUT {one_form.base_url}/service/evse_controller/{SITE}/ev_charger/"
    )
    assert one_form.controls == []


def test_trigger_and_mode_and_list_against_the_one_form_cloud(one_form, capsys, tmp_path):
    code, out = charger(capsys, "trigger", "--serial", "EV1111111111", "MeterValues", "--json")
    assert code == 0 and json.loads(out)["form"] == "PUT ev_charger snake"
    assert one_form.controls[-1][2] == {"requested_message": "MeterValues"}
    assert len(one_form.controls) == 8  # the last of the eight forms
    assert charger(capsys, "mode", "--serial", "EV1111111111", "green")[0] == 0
    assert one_form.controls[-1] == ("PUT", PREFERENCE, {"mode": "GREEN_CHARGING"})
    code, out = charger(capsys, "list")
    assert code == 0 and "EV1111111111" in out and "mode green" in out
    saved = json.loads((tmp_path / "session.json").read_text())["control_forms"]
    assert list(saved.values()) == [{"trigger": "PUT ev_charger snake"}]


def test_a_cloud_that_takes_no_form_is_a_refusal(one_form, capsys):
    one_form.control_status = 404
    code, out = charger(capsys, "trigger", "--serial", "EV1111111111", "MeterValues")
    assert code == 1
    assert "accepted none of the 8 forms" in out
    assert len(one_form.controls) == 8


@pytest.mark.parametrize(("status", "exit_code"), [(503, 1), (403, 1), (409, 0), (422, 0)])
def test_control_answers_are_never_retried(one_form, capsys, status, exit_code):
    """A retried start or stop could act twice, or after the user gave up: one request, whatever comes."""
    one_form.control_status = status
    code, out = charger(capsys, "stop", "--serial", "EV1111111111", "--json")
    assert code == exit_code
    assert len(one_form.controls) == 1
    if status == 503:
        assert "not sent again" in json.loads(out)["message"]


def test_send_json_is_not_retried_on_5xx_even_with_retries_configured(one_form):
    one_form.control_status = 502
    transport = Transport(
        one_form.base_url, RequestMetrics(CollectorRegistry()), retries=3, sleep=lambda _: None
    )
    client = CloudClient(transport, PastedHeaders(PASTED_TOKEN, PASTED_COOKIE, one_form.base_url + "/"))
    with pytest.raises(UpstreamUnavailable):
        client.send_json(
            "stop_charging", "PUT", f"/service/evse_controller/{SITE}/ev_charger/EV1111111111/stop"
        )
    assert len(one_form.controls) == 1


def test_send_json_is_not_retried_after_a_timeout(one_form):
    one_form.delay = 1.0
    transport = Transport(
        one_form.base_url,
        RequestMetrics(CollectorRegistry()),
        retries=3,
        read_timeout=0.2,
        sleep=lambda _: None,
    )
    client = CloudClient(transport, PastedHeaders(PASTED_TOKEN, PASTED_COOKIE, one_form.base_url + "/"))
    with pytest.raises(UpstreamUnavailable, match="timed out"):
        client.send_json(
            "stop_charging", "PUT", f"/service/evse_controller/{SITE}/ev_charger/EV1111111111/stop"
        )
    assert len(one_form.controls) == 1


def test_a_session_file_without_forms_still_loads_and_keeps_its_session(tmp_path):
    path = tmp_path / "session.json"
    account = SessionFile(path, "owner@example.com")
    old = {"account": account._account, "cookies": {"_enlighten_4_session": "old-session-1"}, "token": None}
    path.write_text(json.dumps(old))
    path.chmod(0o600)
    assert account.load() is not None and account.control_forms() == {}
    account.remember_control_form("stop", "PUT ev_charger none")
    reloaded = account.load()
    assert reloaded is not None and reloaded.cookies == {"_enlighten_4_session": "old-session-1"}
    account.save(reloaded)  # a new session (serve's login or refresh) keeps what was learnt
    assert account.control_forms() == {"stop": "PUT ev_charger none"}
    assert SessionFile(path, "someone-else@example.com").control_forms() == {}


def test_no_secret_reaches_the_output_even_at_debug(one_form, tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k.startswith("ENPHASE_") or k in ("PATH", "PYTHONPATH", "HOME")
    }
    env["ENPHASE_LOG_LEVEL"] = "debug"
    for args in (("start", "--amps", "16", "--dry-run"), ("start", "--amps", "16"), ("list",)):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "exporter",
                "charger",
                args[0],
                *(("--serial", "EV1111111111") if args[0] != "list" else ()),
                *args[1:],
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        for secret in (PASTED_TOKEN, PASTED_COOKIE.partition("=")[2]):
            assert secret not in result.stdout + result.stderr


def test_the_charge_mode_metric_follows_a_mode_command(demo, capsys):
    """`charger mode` changes the mode; the exporter's charge_mode (preference) and ev_status (its schedule)
    polls show it, in enphase_ev_charger_charge_mode."""
    from exporter import exposition
    from exporter.app import build
    from exporter.config import load

    exporter = build(load({}, dict(os.environ)))

    def shown() -> dict[str, float]:
        text = exposition.render(exporter.registry)[0].decode()
        labels = rf'mode="(\w+)",serial="{SERIAL}",site_id="{DEMO_SITE_ID}"'
        pattern = rf"enphase_ev_charger_charge_mode{{{labels}}} (\S+)"
        return {mode: float(value) for mode, value in re.findall(pattern, text)}

    for source in ("ev_status", "charge_mode"):
        assert exporter.poller.poll(DEMO_SITE_ID, source)
    assert shown() == {"manual": 1.0, "scheduled": 0.0, "green": 0.0, "smart": 0.0, "unknown": 0.0}
    assert charger(capsys, "mode", "--serial", SERIAL, "green")[0] == 0
    assert exporter.poller.poll(DEMO_SITE_ID, "ev_status")  # a minute later: the status payload has it
    assert shown()["green"] == 1.0 and shown()["manual"] == 0.0
    assert exporter.poller.poll(DEMO_SITE_ID, "charge_mode")  # and the preference, at its next poll
    assert shown() == {"manual": 0.0, "scheduled": 0.0, "green": 1.0, "smart": 0.0, "unknown": 0.0}
