"""Edge cases of the source registry and the further sources, found by an adversarial review.

Each test states what the README, METRICS.md or a module's docstring promises; each failed before its fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from exporter import status_page
from exporter.auth import AuthState
from exporter.poller import Poller, Telemetry
from exporter.render_prometheus import SnapshotCollector
from exporter.scheduler import Plan, PlannedPoll
from exporter.snapshot import SnapshotStore
from exporter.sources import REGISTRY, charge_mode, devices
from exporter.sources.charge_mode import ChargeModes, Preference

SITE = "1234567"
ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {
    "data": {
        "stormGuardState": "enabled",
        "chargeFromGridScheduleEnabled": False,
        "chargeBeginTime": 120,
        "chargeEndTime": 300,
    }
}


class FakeClient:
    """Only what the battery_settings source uses; the user id can change between polls (a new session)."""

    def __init__(self, user_ids: list[str | None], logs_in: bool = False) -> None:
        self.user_ids = list(user_ids)
        self.calls = 0
        self.logs_in = logs_in  # False: pasted headers, which never gain a user id

    def user_id(self) -> str | None:
        return self.user_ids.pop(0) if len(self.user_ids) > 1 else self.user_ids[0]

    def get_json(self, endpoint: str, path: str, params: Any = None, *, bearer=False, as_user=False) -> Any:
        self.calls += 1
        return SETTINGS


def poller(client: FakeClient) -> tuple[Poller, SnapshotStore]:
    store = SnapshotStore()
    poll = Poller(
        client,  # type: ignore[arg-type]
        store,
        Telemetry(CollectorRegistry()),
        sources=("battery_settings",),
        clock=lambda: 1774700000.0,
    )
    return poll, store


def exposition(store: SnapshotStore) -> dict[str, float]:
    found = {}
    for family in SnapshotCollector(store, AuthState(ok=True)).collect():
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


# -- 1. a turned-off source ---------------------------------------------------------------------------------


def test_a_turned_off_source_does_not_keep_exporting_its_last_model():
    """battery_settings answered, then the session's user id went away (a renewed session whose token does not
    name the user): the source is turned off, yet its last model stays in the snapshot and /metrics keeps
    exporting Storm Guard and the schedule as if current, forever, while the source is 'off'."""
    client = FakeClient(["4321", None])
    poll, store = poller(client)
    assert poll.poll(SITE, "battery_settings") is True
    assert poll.poll(SITE, "battery_settings") is False  # NoUserId: turned off
    metrics = exposition(store)
    assert f'enphase_battery_storm_guard_enabled{{site_id="{SITE}"}}' not in metrics


def test_a_session_without_user_id_for_a_moment_does_not_turn_battery_settings_off_for_good():
    """NoUserId is Unavailable, so one poll made while a *login* session lacks the user id (a cookie-only
    login answer, a token refreshed through session_token) turns the source off until restart, with a message
    that speaks of pasted tokens. Only pasted headers can never gain a user id."""
    client = FakeClient([None, "4321"], logs_in=True)
    poll, _ = poller(client)
    poll.poll(SITE, "battery_settings")
    assert poll.poll(SITE, "battery_settings") is True
    assert client.calls == 1


def test_a_turned_off_source_does_not_fire_enphase_source_failing_forever():
    """The README: 'enphase_up no longer counts it'. But enphase_source_up{source="battery_settings"} stays 0
    for good, and prometheus/alerts.yml's EnphaseSourceFailing (enphase_source_up{source!="gateway"} == 0,
    for 15m) then fires forever for every user of pasted headers with the default ENPHASE_SOURCES: there is no
    way for an alert to tell 'off' from 'failing'."""
    poll, store = poller(FakeClient([None]))
    poll.poll(SITE, "battery_settings")
    metrics = exposition(store)
    assert metrics.get(f'enphase_source_up{{site_id="{SITE}",source="battery_settings"}}') != 0.0


def test_the_status_page_promises_no_next_poll_for_a_turned_off_source():
    """The job of a turned-off source keeps running (and returns at once), so the page shows an 'off' source
    with a 'next poll' time and an interval, as though it were still polled."""
    poll, store = poller(FakeClient([None]))
    poll.poll(SITE, "battery_settings")
    plan = Plan(1.0, (PlannedPoll(SITE, "battery_settings", 3600.0, 1774700000.0 + 600),))
    page = status_page.render(
        store.current, status_page.StatusSources(plan=lambda: plan), 1774700000.0, "test"
    )
    row = re.search(r"<tr><td>1234567</td><td>battery_settings</td>(.*?)</tr>", page)
    assert row is not None
    assert "class=off" in row.group(1)
    assert "(in 10 min)" not in row.group(1)


# -- 2. charge mode -----------------------------------------------------------------------------------------


def test_a_preference_asked_before_the_status_payload_answered_is_not_overridden_by_its_first_answer():
    """The preference was asked while the status payload had not said anything yet (ev_status not
    answered yet, or failing). Its first later answer is no change since the preference was asked (the owner
    switched nothing), yet it was shown instead of the preference for up to an hour. The status payload's
    'manual' only means 'no active schedule', which is normal in green or scheduled mode."""
    model = ChargeModes({"EV1": Preference("green", None)})
    assert charge_mode.current_mode("EV1", "manual", model) == "green"


# -- 3. "N/A" as a serial or a name --------------------------------------------------------------------------


def test_devices_reads_n_a_as_absent_like_every_other_further_source():
    """devices.py's docstring: 'N/A' is absent (last_report), name/sku_id/sw_version 'absent when not sent';
    battery_status drops every 'N/A' field. devices (and inverters, through devices.serial_number) keep
    'N/A' as a serial, so devices without a serial become series serial="N/A" (and serial="n/a", a second
    series for the same missing value), and name="N/A" becomes a label value."""
    parsed = devices.parse(
        {
            "result": [
                {
                    "type": "envoy",
                    "devices": [
                        {"serial_number": "1222", "name": "N/A", "sku_id": "n/a", "sw_version": "N/A"},
                        {"serial_number": "N/A", "status": "normal"},
                    ],
                }
            ]
        }
    )
    assert [device.serial for device in parsed.value.devices] == ["1222"]
    first = parsed.value.devices[0]
    assert (first.name, first.model, first.firmware_version) == (None, None, None)


# -- 4. the shipped alert rules after the changed defaults ---------------------------------------------------


def test_enphase_data_stale_thresholds_are_still_three_intervals_at_the_new_defaults():
    """alerts.yml: 'Threshold: 3 x the source's normal refresh interval, so one or two missed refreshes stay
    quiet'. The changelog doubled the defaults of ev_summary (900 -> 1800 s) and today (300 -> 600 s) but the
    rule still says 3 * 900 and 3 * 300: 1.5 intervals, so one missed ev_summary or today poll fires the
    alert (and a budget stretch of 1.7 makes ev_summary fire on every cycle)."""
    rules = (ROOT / "prometheus" / "alerts.yml").read_text()
    defaults = {source.name: source.default_interval for source in REGISTRY}
    lines = re.findall(r'last_success_timestamp_seconds\{source=~?"([^"]+)"\}\s*> 3 \* (\d+)', rules)
    for source in ("ev_status", "ev_summary", "today", "daily_energy", "battery_status", "site_status"):
        (every,) = [int(seconds) for names, seconds in lines if source in names.split("|")]
        assert every >= defaults.get(source, defaults["today"]), f"{source}: 3 * {every}"


# -- 5. inverters' paging ------------------------------------------------------------------------------------


class PagedCloud:
    """inverters.json that serves at most ``cap`` items a page whatever ``limit`` asks (as many APIs do)."""

    def __init__(self, total: int, cap: int) -> None:
        self.total, self.cap = total, cap

    def get_json(self, endpoint: str, path: str, params: Any = None, **_: Any) -> Any:
        if endpoint != "inverters":
            return {"production": {}}
        offset = int(params["offset"])
        count = max(0, min(self.cap, int(params["limit"]), self.total - offset))
        items = [{"serial_number": f"S{offset + n}", "status": "normal"} for n in range(count)]
        return {"total": self.total, "inverters": items}


def test_inverters_keeps_paging_while_total_is_not_reached_when_pages_are_shorter_than_asked():
    """The docstring: 'read until total items are in or a page comes back short'. A server that caps its pages
    below LIMIT (50 of the 100 asked) stops the reading after the first page, though `total` says 120 and
    the page was full by the server's measure: 70 microinverters are missing, every hour."""
    from exporter.snapshot import SiteSnapshot
    from exporter.sources import inverters
    from exporter.sources.source import Fetch

    fetch = Fetch(client=PagedCloud(120, 50), site=SiteSnapshot(SITE, ("inverters",)), now=1774700000.0)
    parsed = inverters.fetch(fetch)  # type: ignore[arg-type]
    assert len(parsed.value.inverters) == 120, parsed.problems


# -- 6. charge_mode's first poll -----------------------------------------------------------------------------


def test_charge_mode_is_not_up_with_nothing_asked_while_no_charger_is_known_yet():
    """In `serve`, charge_mode's first run (3 s after start) is not ordered after ev_status (1 s) and
    ev_summary (1.5 s): they run in parallel in the thread pool, and with a login at start they are still
    waiting for it. charge_mode then finds no charger in the snapshot, asks nothing, and reports success with
    an empty model: for the first hour (its interval) no preference is known and nothing says so."""

    class NoRequests:
        def get_json(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("no charger known: no request expected")

    store = SnapshotStore()
    poll = Poller(
        NoRequests(),  # type: ignore[arg-type]
        store,
        Telemetry(CollectorRegistry()),
        sources=("ev_status", "ev_summary", "charge_mode"),
        clock=lambda: 1774700000.0,
    )
    assert poll.poll(SITE, "charge_mode") is False  # ev_status and ev_summary have not answered yet


# -- 7. the user id in logs ----------------------------------------------------------------------------------


def test_the_user_id_is_redacted_like_the_token_it_comes_from():
    """battery_settings sends the user id as the query parameter userId; at ENPHASE_LOG_LEVEL=debug urllib3
    logs every request line ('GET /service/batteryConfig/api/v1/batterySettings/<site>?userId=98765432'),
    reproduced through the real Transport against a local server. The session keeps the id out of repr
    (repr=False), but it is never registered as a secret, so the redacting formatter lets it through."""
    import base64
    import json

    from exporter.auth import PastedHeaders
    from exporter.logs import redact

    claims = base64.urlsafe_b64encode(json.dumps({"data": {"user_id": 98765432}}).encode()).decode()
    headers = PastedHeaders(f"eyJhbGciOiJub25lIn0.{claims.rstrip('=')}.sig", "c=cookie-5678", "http://x/")
    assert headers.credentials().user_id == "98765432"
    line = '"GET /service/batteryConfig/api/v1/batterySettings/1234567?userId=98765432 HTTP/1.1" 200 40'
    assert "98765432" not in redact(line)
