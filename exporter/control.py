"""``enphase-exporter charger list|start|stop|mode|trigger``: charger control from the command line.

The exporter's HTTP port stays read-only; control is a command an owner runs (cron, an Alertmanager webhook)
with the same settings, session file and cloud client as ``serve``. Every command is at least one cloud
request, counted in the account's budget.

- The serial must be one of the site's chargers (per its status payload) and ``--amps`` within the summary's
  ``chargeLevelDetails`` min/max before anything is sent; bad input exits 2 and sends no control request.
- The Enlighten backend differs by region (seed 001 §3), so start, stop and trigger are tried in several
  forms, in order: POST then PUT, ``ev_chargers`` then ``ev_charger``, camelCase then snake_case keys, then
  no body. 400, 404 and 405 mean "not this form"; the form that worked is kept in the session file (per
  account) and tried first next time.
- 409/422 (not plugged in, not ready) mean there is nothing to do: exit 0 with a message. Any other refusal,
  or a request the cloud did not answer (never retried: it may have acted), exits 1.

Exit codes: 0 done or nothing to do, 1 the cloud refused or did not answer, 2 bad input.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from exporter import sites
from exporter.auth import SessionFile
from exporter.client import CloudClient, CloudError, UpstreamError, UpstreamUnavailable
from exporter.logs import redact
from exporter.sources import ev_status, ev_summary
from exporter.values import PayloadError

log = logging.getLogger(__name__)

CONNECTOR_ID = 1  # every known charger has one connector
MODES = {"manual": "MANUAL_CHARGING", "scheduled": "SCHEDULED_CHARGING", "green": "GREEN_CHARGING"}
# OCPP 1.6 TriggerMessage values.
OCPP_MESSAGES = (
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StatusNotification",
)
NOT_THIS_FORM = (400, 404, 405)
NOTHING_TO_DO = (409, 422)
SNAKE = {
    "chargingLevel": "charging_level",
    "connectorId": "connector_id",
    "requestedMessage": "requested_message",
}
ENDPOINTS = {"start": "start_charging", "stop": "stop_charging", "trigger": "trigger_message"}
SECRET_HEADERS = ("e-auth-token", "cookie", "authorization")
PASTED_ACCOUNT = "pasted-headers"  # the session file's key for forms learnt with pasted headers


class BadInput(Exception):
    """Input that is checked before anything is sent: exit 2."""


@dataclass(frozen=True, slots=True)
class Form:
    """One way of writing a control request; ``name`` is what the session file keeps."""

    method: str
    plural: bool  # ev_chargers/ (plural) or ev_charger/
    keys: str  # "camel", "snake" or "none" (no body)

    @property
    def name(self) -> str:
        return f"{self.method} {'ev_chargers' if self.plural else 'ev_charger'} {self.keys}"

    def path(self, site_id: str, serial: str, action: str) -> str:
        collection = "ev_chargers" if self.plural else "ev_charger"
        return f"/service/evse_controller/{site_id}/{collection}/{serial}/{ENDPOINTS[action]}"

    def body(self, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        if self.keys == "none":
            return None
        return {SNAKE[k] if self.keys == "snake" else k: v for k, v in fields.items()}


def forms(action: str, has_amps: bool = False) -> tuple[Form, ...]:
    """Every form of ``action``, in the order they are tried."""
    if action == "stop":
        keys: tuple[str, ...] = ("none",)  # stop carries no body in any known form
    elif action == "trigger" or has_amps:
        keys = ("camel", "snake")  # without a body the message (or the asked current) would be lost
    else:
        keys = ("camel", "snake", "none")
    return tuple(Form(m, p, k) for m in ("POST", "PUT") for p in (True, False) for k in keys)


def preference_path(site_id: str, serial: str) -> str:
    return f"/service/evse_scheduler/api/v1/iqevc/charging-mode/{site_id}/{serial}/preference"


def enabled_mode(payload: Any) -> str | None:
    """``data.modes.<name>.enabled``: the enabled one is the mode (manualCharging -> manual)."""
    data = payload.get("data") if isinstance(payload, Mapping) else None
    modes = data.get("modes") if isinstance(data, Mapping) else None
    if not isinstance(modes, Mapping):
        return None
    for name, mode in modes.items():
        if isinstance(mode, Mapping) and mode.get("enabled") is True:
            return str(name).removesuffix("Charging")
    return None


@dataclass(slots=True)
class Outcome:
    exit_code: int
    message: str
    details: dict[str, Any] = field(default_factory=dict)


class ChargerControl:
    def __init__(
        self,
        client: CloudClient,
        memory: SessionFile,
        site_ids: Sequence[str],
        *,
        dry_run: bool = False,
    ) -> None:
        self._client = client
        self._memory = memory
        self._site_ids = tuple(site_ids)
        self._dry_run = dry_run

    # -- commands -----------------------------------------------------------------------------------------

    def list(self) -> Outcome:
        listed = []
        lines = []
        for site_id in self._sites():
            status = self._status(site_id)
            limits = self._limits(site_id) if status and status.chargers else {}
            chargers = []
            lines.append(f"Site {site_id}")
            for charger in status.chargers if status else ():
                mode = self._mode(site_id, charger.serial)
                low, high = limits.get(charger.serial, (None, None))
                state = _state_words(charger)
                chargers.append(
                    {
                        "serial": charger.serial,
                        "name": charger.name,
                        "plugged_in": charger.plugged_in,
                        "charging": charger.charging,
                        "faulted": charger.faulted,
                        "connectors": {c.connector_id: c.status for c in charger.connectors},
                        "charging_current_amperes": charger.charging_current_setpoint_amperes,
                        "charge_level_min_amperes": low,
                        "charge_level_max_amperes": high,
                        "mode": mode,
                    }
                )
                amps = "" if low is None else f", {low:g}-{high:g} A"
                lines.append(
                    f"  {charger.serial}  {charger.name or ''}  {state}{amps}, mode {mode or 'unknown'}"
                )
            if not chargers:
                lines.append("  no charger")
            listed.append({"site_id": site_id, "chargers": chargers})
        return Outcome(0, "\n".join(lines), {"sites": listed})

    def start(self, serial: str, amps: int | None, site: str | None) -> Outcome:
        site_id = self._site_of(serial, site)
        fields: dict[str, Any] = {"connectorId": CONNECTOR_ID}
        if amps is not None:
            low, high = self._limits(site_id).get(serial, (None, None))
            if low is None or high is None:
                return Outcome(
                    1, f"cannot check --amps: the summary of {serial} gives no charge level limits"
                )
            if not low <= amps <= high:
                raise BadInput(f"--amps {amps}: {serial} accepts {low:g} to {high:g} A")
            fields = {"chargingLevel": amps, **fields}
        at = f" at {amps} A" if amps is not None else ""
        return self._send(
            "start", site_id, serial, fields, f"Charging started on {serial}{at}", amps is not None
        )

    def stop(self, serial: str, site: str | None) -> Outcome:
        site_id = self._site_of(serial, site)
        return self._send("stop", site_id, serial, {}, f"Charging stopped on {serial}")

    def trigger(self, serial: str, message: str, site: str | None) -> Outcome:
        site_id = self._site_of(serial, site)
        fields = {"requestedMessage": message}
        return self._send("trigger", site_id, serial, fields, f"{serial} was asked to send {message}")

    def mode(self, serial: str, mode: str, site: str | None) -> Outcome:
        site_id = self._site_of(serial, site)
        body = {"mode": MODES[mode]}
        path = preference_path(site_id, serial)
        details = {"action": "mode", "site_id": site_id, "serial": serial, "mode": mode}
        if self._dry_run:
            return self._would_send("PUT", path, body, details, 1)
        return self._answer_of(
            "charge_mode", "PUT", path, body, f"{serial} now charges in {mode} mode", details
        )

    # -- sending ------------------------------------------------------------------------------------------

    def _send(
        self,
        action: str,
        site_id: str,
        serial: str,
        fields: dict[str, Any],
        done: str,
        has_amps: bool = False,
    ) -> Outcome:
        remembered = self._memory.control_forms().get(action)
        order = sorted(forms(action, has_amps), key=lambda form: form.name != remembered)  # stable
        details: dict[str, Any] = {"action": action, "site_id": site_id, "serial": serial}
        if self._dry_run:
            first = order[0]
            return self._would_send(
                first.method, first.path(site_id, serial, action), first.body(fields), details, len(order)
            )
        last_status = 0
        for form in order:
            details["form"] = form.name
            outcome = self._answer_of(
                ENDPOINTS[action],
                form.method,
                form.path(site_id, serial, action),
                form.body(fields),
                done,
                details,
            )
            last_status = outcome.details.get("http_status", 0)
            if last_status not in NOT_THIS_FORM:
                if outcome.exit_code == 0 and last_status < 300 and form.name != remembered:
                    self._memory.remember_control_form(action, form.name)
                return outcome
            log.info(
                "The cloud does not take %s as %s (HTTP %d); trying the next form",
                action,
                form.name,
                last_status,
            )
        details.pop("form", None)
        return Outcome(
            1,
            f"the cloud accepted none of the {len(order)} forms of {action} (last: HTTP {last_status})",
            details,
        )

    def _answer_of(
        self, endpoint: str, method: str, path: str, body: Any, done: str, details: dict[str, Any]
    ) -> Outcome:
        details = dict(details)
        try:
            answer = self._client.send_json(endpoint, method, path, body)
        except UpstreamUnavailable as error:
            return Outcome(
                1,
                f"no answer from the cloud ({error}); the request was not sent again, as the charger may "
                "have acted on it: check with `enphase-exporter charger list`",
                details,
            )
        except CloudError as error:
            return Outcome(1, f"not sent: {error}", details)
        details["http_status"] = answer.status
        if answer.status < 300:
            details["outcome"] = "accepted"
            return Outcome(0, done, details)
        if answer.status in NOTHING_TO_DO:
            details["outcome"] = "nothing_to_do"
            return Outcome(
                0,
                f"nothing to do: the charger is not ready for this (not plugged in, or not in a state "
                f"that allows it; HTTP {answer.status})",
                details,
            )
        details["outcome"] = "refused"
        return Outcome(1, f"the cloud refused the request (HTTP {answer.status})", details)

    def _would_send(
        self, method: str, path: str, body: Any, details: dict[str, Any], form_count: int
    ) -> Outcome:
        headers = {
            name: "***" if name.lower() in SECRET_HEADERS else value
            for name, value in self._client.auth.credentials().headers.items()
        }
        headers["Authorization"] = "Bearer ***"
        url = self._client.transport.base_url + path
        request = {"method": method, "url": url, "headers": headers, "body": body}
        lines = [f"Would send: {method} {url}"]
        lines += [f"  {name}: {value}" for name, value in headers.items()]
        lines.append(f"  body: {json.dumps(body) if body is not None else '(none)'}")
        if form_count > 1:
            lines.append(f"(if the cloud does not take this form, up to {form_count - 1} others follow)")
        return Outcome(0, "\n".join(lines), {**details, "outcome": "dry_run", "request": request})

    # -- reading what validation needs --------------------------------------------------------------------

    def _sites(self) -> tuple[str, ...]:
        if self._site_ids:
            return self._site_ids
        try:
            found = sites.discover(self._client)
        except (CloudError, PayloadError) as error:
            raise ReadFailed(f"site discovery failed: {error}") from None
        if not found:
            raise ReadFailed("no site found for this account")
        return found

    def _site_of(self, serial: str, site: str | None) -> str:
        """The site that has ``serial``, per its status payload; BadInput when none has."""
        candidates = (site,) if site else self._sites()
        known: list[str] = []
        for site_id in candidates:
            status = self._status(site_id)
            if status is None and site:
                raise BadInput(f"--site {site}: the cloud knows no chargers of that site for this account")
            serials = [charger.serial for charger in status.chargers] if status else []
            if serial in serials:
                return site_id
            known += serials
        listed = ", ".join(known) or "none"
        raise BadInput(
            f"--serial {serial}: not a charger of site {', '.join(candidates)} (its chargers: {listed})"
        )

    def _status(self, site_id: str) -> ev_status.EvStatus | None:
        """The site's EV status; None for a site without a charger, which answers 403 or 404
        (ENLIGHTEN_API.md §2): one such site must not hide the chargers of the others."""
        try:
            return ev_status.parse(self._client.get_json(ev_status.ENDPOINT, ev_status.path(site_id))).value
        except UpstreamError as error:
            if error.status in (403, 404):
                return None
            raise ReadFailed(f"cannot read the chargers of site {site_id}: {error}") from None
        except (CloudError, PayloadError) as error:
            raise ReadFailed(f"cannot read the chargers of site {site_id}: {error}") from None

    def _limits(self, site_id: str) -> dict[str, tuple[float | None, float | None]]:
        try:
            payload = self._client.get_json(ev_summary.ENDPOINT, ev_summary.path(site_id), ev_summary.QUERY)
            summary = ev_summary.parse(payload).value
        except (CloudError, PayloadError) as error:
            log.warning("Cannot read the charge level limits of site %s: %s", site_id, error)
            return {}
        return {c.serial: (c.charge_level_min_amperes, c.charge_level_max_amperes) for c in summary.chargers}

    def _mode(self, site_id: str, serial: str) -> str | None:
        try:
            answer = self._client.send_json("charge_mode", "GET", preference_path(site_id, serial))
        except CloudError as error:
            log.warning("Cannot read the charge mode of %s: %s", serial, error)
            return None
        return enabled_mode(answer.payload) if answer.status == 200 else None


class ReadFailed(Exception):
    """What validation needs could not be read: exit 1, nothing sent."""


def _state_words(charger: ev_status.ChargerStatus) -> str:
    if charger.faulted:
        return "faulted"
    if charger.charging:
        amps = charger.charging_current_setpoint_amperes
        return f"charging{f' at {amps:g} A' if amps is not None else ''}"
    return "plugged in, not charging" if charger.plugged_in else "not plugged in"


def print_outcome(outcome: Outcome, out: TextIO, as_json: bool) -> None:
    """Everything printed passes the secret filter too: a last line of defence, as for the log."""
    if as_json:
        text = json.dumps(
            {"ok": outcome.exit_code == 0, "message": outcome.message, **outcome.details}, indent=2
        )
    else:
        text = outcome.message
    out.write(redact(text) + "\n")


def run(
    client: CloudClient,
    memory: SessionFile,
    site_ids: Sequence[str],
    command: str,
    options: Mapping[str, Any],
    out: TextIO,
) -> int:
    control = ChargerControl(client, memory, site_ids, dry_run=bool(options.get("dry_run")))
    as_json = bool(options.get("json"))
    serial, site = str(options.get("serial")), options.get("site")  # argparse requires --serial but for list
    try:
        if command == "list":
            outcome = control.list()
        elif command == "start":
            outcome = control.start(serial, options.get("amps"), site)
        elif command == "stop":
            outcome = control.stop(serial, site)
        elif command == "mode":
            outcome = control.mode(serial, options["mode"], site)
        else:
            outcome = control.trigger(serial, options["message"], site)
    except BadInput as error:
        outcome = Outcome(2, f"error: {error}; nothing was sent", {"outcome": "bad_input"})
    except ReadFailed as error:
        outcome = Outcome(1, f"error: {error}; nothing was sent", {"outcome": "failed"})
    print_outcome(outcome, out, as_json)
    return outcome.exit_code
