from dataclasses import replace
from typing import Any

import pytest

from exporter.client import CloudError, UpstreamError
from exporter.readings import StateSet
from exporter.snapshot import SiteSnapshot
from exporter.sources import charge_mode, ev_status
from exporter.sources.charge_mode import ChargeModes, Preference
from exporter.sources.ev_status import ChargerStatus, EvStatus
from exporter.sources.source import Fetch, Incomplete
from exporter.values import PayloadError, Reader

SITE = "1234567"


def preference(enabled: str | None) -> dict[str, Any]:
    keys = ("manualCharging", "scheduledCharging", "greenCharging", "smartCharging")
    return {
        "data": {"modes": {key: {"enabled": key == enabled, "chargingMode": key.upper()} for key in keys}}
    }


@pytest.mark.parametrize(
    ("key", "mode"),
    [("manualCharging", "manual"), ("scheduledCharging", "scheduled"), ("greenCharging", "green"),
     ("smartCharging", "smart")],
)  # fmt: skip
def test_the_enabled_mode_is_the_mode(key: str, mode: str):
    assert charge_mode.parse(preference(key)).value == mode


def test_the_seeds_shape_without_smart_charging():
    modes = {"manualCharging": {"enabled": True, "chargingMode": "MANUAL_CHARGING"}}
    modes |= {"scheduledCharging": {"enabled": False}, "greenCharging": {"enabled": False}}
    seed = {"data": {"modes": modes}}
    assert charge_mode.parse(seed).value == "manual"


def test_none_or_several_enabled_is_unknown_and_counted():
    none = charge_mode.parse(preference(None))
    assert none.value == "unknown" and none.problems == (
        "data.modes: expected one known mode enabled, got none",
    )
    several = preference("greenCharging")
    several["data"]["modes"]["manualCharging"]["enabled"] = True
    assert charge_mode.parse(several).value == "unknown"
    novel = {"data": {"modes": {"solarOnly": {"enabled": True}}}}
    assert charge_mode.parse(novel).value == "unknown"


@pytest.mark.parametrize("payload", [{}, {"data": {}}, {"data": {"modes": []}}, []])
def test_an_answer_without_modes_is_not_understood(payload: Any):
    with pytest.raises(PayloadError):
        charge_mode.parse(payload)


# The status payload's sch_d, read by ev_status at no cost.
@pytest.mark.parametrize(
    ("sch_d", "mode", "problems"),
    [
        ({"status": 1, "info": [{"type": "greencharging", "startTime": 1770591600, "limit": 0}]}, "green", 0),
        ({"status": 1, "info": [{"type": "scheduledcharging"}]}, "scheduled", 0),
        ({"status": 1, "info": [{"type": "smartcharging"}]}, "smart", 0),
        ({"status": 0, "info": []}, "manual", 0),
        ({"enabled": False, "mode": "IMMEDIATE"}, "manual", 0),  # the seeds' shape
        ({"status": 1, "info": [{"type": "weather"}]}, "unknown", 1),
        ({"status": 1, "info": []}, "unknown", 1),
        ({"status": "maybe"}, None, 1),
        (None, None, 0),
    ],
)
def test_the_status_payloads_schedule(sch_d: Any, mode: str | None, problems: int):
    reader = Reader()
    assert ev_status._schedule_mode(sch_d, "sch_d", reader) == mode
    assert len(reader.problems) == problems


def charger(serial: str, schedule_mode: str | None) -> ChargerStatus:
    return ChargerStatus(
        serial, None, True, False, False, False, (), None, None, None, None, None, None, schedule_mode
    )


def site(*chargers: ChargerStatus) -> SiteSnapshot:
    return SiteSnapshot(SITE, ("ev_status", "charge_mode"), ev_status=EvStatus(None, None, chargers))


class Client:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers, self.calls = answers, []

    def get_json(self, endpoint: str, path: str, params: Any = None, **options: Any) -> Any:
        self.calls.append((endpoint, path, options))
        answer = self.answers[path.split("/")[-2]]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_one_request_per_charger_with_the_bearer_token():
    client = Client({"EV1": preference("greenCharging"), "EV2": preference("manualCharging")})
    parsed = charge_mode.fetch(Fetch(client, site(charger("EV1", "green"), charger("EV2", None)), 0.0))  # type: ignore[arg-type]
    assert parsed.value == ChargeModes(
        {"EV1": Preference("green", "green"), "EV2": Preference("manual", None)}
    )
    base = f"/service/evse_scheduler/api/v1/iqevc/charging-mode/{SITE}"
    assert client.calls == [
        ("charge_mode", f"{base}/EV1/preference", {"bearer": True}),
        ("charge_mode", f"{base}/EV2/preference", {"bearer": True}),
    ]


def test_a_refusing_charger_falls_back_on_the_status_payload_and_the_others_still_count():
    client = Client({"EV1": UpstreamError("charge_mode", 404), "EV2": preference("smartCharging")})
    both = site(charger("EV1", "green"), charger("EV2", "manual"))
    with pytest.raises(Incomplete, match=r"charge_mode: HTTP 404 \(1 of 2 chargers\)") as failed:
        charge_mode.fetch(Fetch(client, both, 0.0))  # type: ignore[arg-type]
    model = failed.value.parsed.value
    assert model == ChargeModes({"EV2": Preference("smart", "manual")})
    modes = {
        r.labels["serial"]: r.current for r in charge_mode.readings(both, model) if isinstance(r, StateSet)
    }
    assert modes == {"EV1": "green", "EV2": "smart"}


def test_the_status_payload_wins_once_it_changed_since_the_preference_was_read():
    model = ChargeModes({"EV1": Preference("scheduled", "scheduled")})
    unchanged, switched = site(charger("EV1", "scheduled")), site(charger("EV1", "manual"))
    (reading,) = charge_mode.readings(unchanged, model)
    assert isinstance(reading, StateSet) and reading.current == "scheduled"
    assert reading.states == ("manual", "scheduled", "green", "smart", "unknown") and reading.label == "mode"
    (reading,) = charge_mode.readings(switched, model)
    assert isinstance(reading, StateSet) and reading.current == "manual"


def test_a_charger_neither_source_can_read_has_no_series():
    quiet = site(charger("EV1", None))
    assert list(charge_mode.readings(quiet, ChargeModes({}))) == []
    none = replace(quiet, ev_status=EvStatus(None, None, ()))  # a site without a charger
    assert charge_mode.fetch(Fetch(Client({}), none, 0.0)).value == ChargeModes({})  # type: ignore[arg-type]
    with pytest.raises(CloudError, match="no charger known yet"):  # ev_status has not answered yet
        charge_mode.fetch(Fetch(Client({}), replace(quiet, ev_status=None), 0.0))  # type: ignore[arg-type]
