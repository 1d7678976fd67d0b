"""EV charge mode — the scheduler's preference, per charger, with the status payload as a free fallback.

``GET /service/evse_scheduler/api/v1/iqevc/charging-mode/<site_id>/<sn>/preference`` with the session token as
``Authorization: Bearer`` answers ``data.modes.{manualCharging,scheduledCharging,greenCharging,smartCharging}
.enabled``: the one enabled is the mode. It costs a request per charger, so it is asked hourly. Between two
asks the status payload (``ev_status``, every minute) tells what it can at no cost: its ``sch_d`` names an
active green, scheduled or smart schedule, or none (manual). Sample output::

    enphase_ev_charger_charge_mode{mode="green",serial="EV0000000001",site_id="1234567"} 1.0
    enphase_ev_charger_charge_mode{mode="manual",serial="EV0000000001",site_id="1234567"} 0.0

Which one is shown: the preference where it answered, unless the status payload's reading has changed since
the preference was asked (the owner switched modes in the app since); then the status payload's, until the
next ask. A charger whose preference does not answer (the service refuses the token, or has no such charger)
shows the status payload's reading; one the status payload cannot read either (no ``sch_d``; its numeric
``mode`` has no documented meaning and is not read) has no series.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exporter.client import AuthError, CloudError
from exporter.readings import Reading, StateSet
from exporter.sources.ev_status import CHARGE_MODES
from exporter.sources.source import Fetch, Incomplete, Source
from exporter.values import Parsed, PayloadError, Reader, require_object

if TYPE_CHECKING:
    from exporter.snapshot import SiteSnapshot

ENDPOINT = "charge_mode"
_PREFERENCE_KEYS = {
    "manualCharging": "manual",
    "scheduledCharging": "scheduled",
    "greenCharging": "green",
    "smartCharging": "smart",
}


@dataclass(frozen=True, slots=True)
class Preference:
    mode: str  # one of CHARGE_MODES
    status_mode: str | None  # what the status payload said when the preference was read


@dataclass(frozen=True, slots=True)
class ChargeModes:
    preferences: Mapping[str, Preference]  # serial -> the scheduler's answer, where it answered


def path(site_id: str, serial: str) -> str:
    return f"/service/evse_scheduler/api/v1/iqevc/charging-mode/{site_id}/{serial}/preference"


def parse(payload: Any) -> Parsed[str]:
    """The enabled mode of a preference answer; ``unknown`` (a problem) when none or several are enabled."""
    body = require_object(payload, ENDPOINT)
    reader = Reader()
    modes = reader.mapping(
        reader.mapping(body, "data", ENDPOINT, required=True), "modes", "data", required=True
    )
    if not modes:
        raise PayloadError(f"{ENDPOINT}: no data.modes in the payload")
    enabled = []
    for key, item in modes.items():
        if not isinstance(item, Mapping):
            reader.problem(f"data.modes.{str(key)[:40]}", "expected an object")
        elif reader.flag(item, "enabled", f"data.modes.{str(key)[:40]}"):
            enabled.append(_PREFERENCE_KEYS.get(str(key), "unknown"))
    if len(enabled) == 1 and enabled[0] != "unknown":
        return Parsed(enabled[0], tuple(reader.problems))
    reader.problem("data.modes", f"expected one known mode enabled, got {sorted(enabled) or 'none'}")
    return Parsed("unknown", tuple(reader.problems))


def status_modes(site: SiteSnapshot) -> dict[str, str | None]:
    """serial -> the status payload's reading of the mode, for every charger the site is known to have."""
    modes: dict[str, str | None] = {}
    if site.ev_summary is not None:
        modes.update((charger.serial, None) for charger in site.ev_summary.chargers)
    if site.ev_status is not None:
        modes.update((charger.serial, charger.schedule_mode) for charger in site.ev_status.chargers)
    return modes


def fetch(poll: Fetch) -> Parsed[ChargeModes]:
    """Every charger's preference. One charger's failure does not hide the others': the answers are shown
    (the status payload stands in for the rest) and the source is down, naming the first failure."""
    site_id = poll.site.site_id
    listed = poll.site.ev_status is not None or poll.site.ev_summary is not None
    if not listed and {"ev_status", "ev_summary"} & set(poll.site.sources):
        # Not "no charger": the sources that list the chargers have not answered yet (a login at start).
        raise CloudError(f"{ENDPOINT}: no charger known yet (ev_status and ev_summary have not answered)")
    preferences, problems, failures = {}, [], []
    for serial, status_mode in status_modes(poll.site).items():
        try:
            parsed = parse(poll.client.get_json(ENDPOINT, path(site_id, serial), bearer=True))
        except AuthError:
            raise  # the session is gone: nothing to show around
        except CloudError as error:
            failures.append(str(error))
            continue
        except PayloadError as error:
            problems.append(str(error))
            continue
        problems.extend(parsed.problems)
        preferences[serial] = Preference(parsed.value, status_mode)
    result = Parsed(ChargeModes(preferences), tuple(problems))
    if failures:
        raise Incomplete(
            f"{failures[0]} ({len(failures)} of {len(status_modes(poll.site))} chargers)", result
        )
    return result


def current_mode(serial: str, status_mode: str | None, model: ChargeModes) -> str | None:
    preference = model.preferences.get(serial)
    if preference is None:
        return status_mode
    # The status payload has news only if it said something else when the preference was read (a reading
    # that was not there yet is no change).
    changed = None not in (status_mode, preference.status_mode) and status_mode != preference.status_mode
    return status_mode if changed else preference.mode


def readings(site: SiteSnapshot, model: ChargeModes) -> Iterator[Reading]:
    for serial, status_mode in status_modes(site).items():
        mode = current_mode(serial, status_mode, model)
        if mode is None:
            continue
        yield StateSet(
            "enphase_ev_charger_charge_mode",
            "Charge mode as a state set: 1 for the current mode. From the scheduler's preference (hourly), "
            "or the status payload's schedule where it changed since.",
            {"site_id": site.site_id, "serial": serial},
            "mode",
            CHARGE_MODES,
            mode,
        )


SOURCE = Source(
    name="charge_mode",
    reads="the scheduler's charge mode preference, a request per charger; in between, the status payload's",
    default_interval=3600,
    minimum_interval=300,
    first_run=4.5,  # after ev_status and ev_summary, which list the chargers it asks about
    fetch=fetch,
    readings=readings,
    per_charger=True,
    needs="the session token as a bearer token (the scheduler service)",
)
