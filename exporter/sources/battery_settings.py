"""Battery settings — ``GET /service/batteryConfig/api/v1/batterySettings/<site_id>?userId=<user_id>``.

The settings ``today`` does not tell: Storm Guard, the charge-from-grid schedule, and whether a change waits
for the gateway. The profile, the backup reserve, the very-low state of charge and charge-from-grid come from
``today`` already and are not read here. Sample output::

    enphase_battery_storm_guard_enabled{site_id="1234567"} 1.0
    enphase_battery_charge_from_grid_schedule_enabled{site_id="1234567"} 0.0
    enphase_battery_charge_from_grid_schedule_start_seconds{site_id="1234567"} 7200.0
    enphase_battery_charge_from_grid_schedule_end_seconds{site_id="1234567"} 18000.0
    enphase_battery_settings_pending{site_id="1234567"} 0.0

The service wants the session cookie and the account's user id, as the ``userId`` parameter and a
``Username`` header. The user id is in the token of a login; pasted headers often carry a token without one,
and then no request is made: the source fails with ``NoUserId``, whose message says what to do.

Units, per field: ``data.stormGuardState`` is ``"enabled"`` or ``"disabled"`` (anything else is a problem);
``data.chargeFromGridScheduleEnabled`` is a boolean; ``data.chargeBeginTime`` and ``data.chargeEndTime`` are
minutes after the site's local midnight (→ seconds, 0-86400; the window can pass midnight, so the end may
come before the start). ``data.requestedConfig`` holds the changes the user asked for that the gateway has
not applied yet: a change is pending while it holds at least one value that is not null; an empty object,
null or no key at all mean nothing is pending.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exporter.client import CloudError
from exporter.readings import Gauge, Reading
from exporter.sources.source import Fetch, Source, Unavailable
from exporter.values import Parsed, PayloadError, Reader, require_object

if TYPE_CHECKING:
    from exporter.snapshot import SiteSnapshot

ENDPOINT = "battery_settings"
MINUTES_TO_SECONDS = 60.0
DAY_SECONDS = 86400.0
_STORM_GUARD_STATES = {"enabled": True, "disabled": False}


class NoUserId(Unavailable):
    """The session has no user id, which the battery settings service requires; no request was made."""

    def __init__(self) -> None:
        super().__init__(
            f"{ENDPOINT} needs the account's user id, which the session's token does not carry (a pasted "
            "e-auth-token usually has none): log in with ENPHASE_EMAIL and ENPHASE_PASSWORD, or leave "
            f"{ENDPOINT} out of ENPHASE_SOURCES"
        )


@dataclass(frozen=True, slots=True)
class BatterySettings:
    storm_guard_enabled: bool | None
    charge_from_grid_schedule_enabled: bool | None
    charge_from_grid_schedule_start_seconds: float | None  # after the site's local midnight
    charge_from_grid_schedule_end_seconds: float | None
    pending: bool | None  # a requested change the gateway has not applied yet


def path(site_id: str) -> str:
    return f"/service/batteryConfig/api/v1/batterySettings/{site_id}"


def params(user_id: str) -> dict[str, str]:
    return {"userId": user_id}


def parse(payload: Any) -> Parsed[BatterySettings]:
    body = require_object(payload, ENDPOINT)
    data = body.get("data")
    if not isinstance(data, Mapping):  # an error object answered with 200: nothing here is a setting
        raise PayloadError(f"{ENDPOINT}: expected an object under 'data', got {type(data).__name__}")
    reader = Reader()
    where = f"{ENDPOINT}.data"

    def minutes(key: str) -> float | None:
        return reader.number(data, key, where, scale=MINUTES_TO_SECONDS, minimum=0.0, maximum=DAY_SECONDS)

    settings = BatterySettings(
        storm_guard_enabled=_storm_guard(data, where, reader),
        charge_from_grid_schedule_enabled=reader.flag(data, "chargeFromGridScheduleEnabled", where),
        charge_from_grid_schedule_start_seconds=minutes("chargeBeginTime"),
        charge_from_grid_schedule_end_seconds=minutes("chargeEndTime"),
        pending=_pending(data, where, reader),
    )
    return Parsed(settings, tuple(reader.problems))


def _storm_guard(data: Mapping[str, Any], where: str, reader: Reader) -> bool | None:
    word = reader.word(data, "stormGuardState", where)
    state = _STORM_GUARD_STATES.get(word) if word is not None else None
    if word is not None and state is None:  # repr escapes what a log line must not hold; cut short
        reader.problem(
            f"{where}.stormGuardState", f"unknown Storm Guard state {data['stormGuardState']!r:.40}"
        )
    return state


def _pending(data: Mapping[str, Any], where: str, reader: Reader) -> bool | None:
    requested = data.get("requestedConfig")
    if requested is None:
        return False
    if not isinstance(requested, Mapping):
        reader.problem(f"{where}.requestedConfig", f"expected an object, got {type(requested).__name__}")
        return None
    return any(value is not None for value in requested.values())


def fetch(poll: Fetch) -> Parsed[BatterySettings]:
    user_id = poll.client.user_id()
    if not user_id and not poll.client.logs_in:
        raise NoUserId()  # pasted headers never change: it cannot work
    if not user_id:  # a login whose answer named no user: the next session may
        raise CloudError(f"{ENDPOINT}: this session's token names no user id; asked again at the next poll")
    site_id = poll.site.site_id
    return parse(poll.client.get_json(ENDPOINT, path(site_id), params(user_id), as_user=True))


def readings(site: SiteSnapshot, model: BatterySettings) -> Iterator[Reading]:
    labels = {"site_id": site.site_id}
    yield Gauge(
        "enphase_battery_storm_guard_enabled",
        "1 when Storm Guard is on: the battery charges fully ahead of a storm warning (battery settings).",
        labels,
        model.storm_guard_enabled,
    )
    yield Gauge(
        "enphase_battery_charge_from_grid_schedule_enabled",
        "1 when charging from the grid is limited to a daily window (battery settings).",
        labels,
        model.charge_from_grid_schedule_enabled,
    )
    yield Gauge(
        "enphase_battery_charge_from_grid_schedule_start_seconds",
        "Start of the charge-from-grid window, in seconds after the site's local midnight.",
        labels,
        model.charge_from_grid_schedule_start_seconds,
    )
    yield Gauge(
        "enphase_battery_charge_from_grid_schedule_end_seconds",
        "End of the charge-from-grid window, in seconds after the site's local midnight (before the start "
        "when the window passes midnight).",
        labels,
        model.charge_from_grid_schedule_end_seconds,
    )
    yield Gauge(
        "enphase_battery_settings_pending",
        "1 while a battery settings change the user asked for waits for the gateway to apply it.",
        labels,
        model.pending,
    )


SOURCE = Source(
    name="battery_settings",
    reads="batterySettings: Storm Guard, the charge-from-grid schedule, settings changes not yet applied",
    default_interval=3600,
    minimum_interval=600,
    first_run=4.0,
    fetch=fetch,
    readings=readings,
    needs="the user id in the login token",
)
