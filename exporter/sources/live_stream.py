"""Live stream credentials — ``GET /pv/aws_sigv4/livestream.json?serial_num=<gateway serial>``.

Asking for credentials is also what switches the gateway's stream on, for ``live_stream_duration`` seconds
(ENLIGHTEN_API.md §7.2); the session in ``exporter.live.session`` asks again before that runs out, about four
times an hour. The gateway serial is ``today``'s ``connectionDetails[].serial_num``, else the ``envoy`` entry
of ``GET /app-api/<site_id>/devices.json`` (§7b). Sample output of the stream::

    enphase_site_live_power_watts{meter="grid",site_id="1234567"} -412.5
    enphase_site_live_energy_joules_total{flow="grid_export",site_id="1234567"} 1.2e+06
    enphase_live_stream_up{site_id="1234567"} 1.0

The token, the digest and the MQTT username made of them are secrets: ``StreamCredentials`` keeps them out of
its ``repr``, and ``parse`` registers them with the log redaction as soon as it sees them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from exporter import logs
from exporter.sources import devices
from exporter.values import Parsed, PayloadError, Reader, require_object

ENDPOINT = "live_stream"
SHOW_ENDPOINT = "show_livestream"
PATH = "/pv/aws_sigv4/livestream.json"
_REQUIRED = (
    "aws_iot_endpoint",
    "aws_authorizer",
    "aws_token_key",
    "aws_token_value",
    "aws_digest",
    "live_stream_topic",
)


@dataclass(frozen=True, slots=True)
class StreamCredentials:
    endpoint: str  # host or host:port of the broker, used as given
    authorizer: str
    token_key: str
    token_value: str = field(repr=False)
    digest: str = field(repr=False)
    topic: str = field(repr=False)  # names the stream; not a secret, but of no use in a log either
    duration: float  # seconds the stream runs after this request (900 today)
    timeout: float  # seconds of silence after which the stream counts as gone


def query(gateway_serial: str) -> dict[str, str]:
    return {"serial_num": gateway_serial}


def show_path(site_id: str) -> str:
    return f"/app-api/{site_id}/show_livestream"


def parse_offered(payload: Any) -> Parsed[bool]:
    """``show_livestream`` → ``{"live_status": true, "live_vitals": true}``: whether the app shows the site's
    live status. Anything but a true ``live_status`` means no."""
    body = require_object(payload, SHOW_ENDPOINT)
    reader = Reader()
    offered = reader.flag(body, "live_status", SHOW_ENDPOINT, required=True)
    return Parsed(offered is True, tuple(reader.problems))


def parse(payload: Any) -> Parsed[StreamCredentials]:
    """Raises ``PayloadError`` when a field the connection needs is missing: no stream without it."""
    body = require_object(payload, ENDPOINT)
    reader = Reader()
    values: dict[str, str] = {}
    for key in _REQUIRED:
        raw = body.get(key)
        if not isinstance(raw, str) or not raw.strip():
            raise PayloadError(f"{ENDPOINT}: {key} is missing or not a string")
        values[key] = raw.strip()
    for secret in (values["aws_token_value"], values["aws_digest"]):
        logs.register_secret(secret)
    duration = _positive(reader, body, "live_stream_duration")
    timeout = _positive(reader, body, "timeout")
    credentials = StreamCredentials(
        endpoint=values["aws_iot_endpoint"],
        authorizer=values["aws_authorizer"],
        token_key=values["aws_token_key"],
        token_value=values["aws_token_value"],
        digest=values["aws_digest"],
        topic=values["live_stream_topic"],
        # Without a duration the stream's end is unknown: renew as the documented 900 s would need, and the
        # silence watchdog reconnects if it ended sooner. Counted as a problem either way.
        duration=duration if duration is not None else 900.0,
        timeout=timeout if timeout is not None else 15.0,
    )
    return Parsed(credentials, tuple(reader.problems))


def username(credentials: StreamCredentials, site_id: str) -> str:
    """The MQTT username that carries the authorizer (§7.3); a secret. ``site-id`` is required: without it
    the broker drops the connection."""
    name = (
        f"?x-amz-customauthorizer-name={quote(credentials.authorizer, safe='')}"
        f"&{quote(credentials.token_key, safe='')}={quote(credentials.token_value, safe='')}"
        f"&site-id={quote(site_id, safe='')}"
        f"&x-amz-customauthorizer-signature={quote(credentials.digest, safe='')}"
    )
    logs.register_secret(name)
    logs.register_secret(quote(credentials.token_value, safe=""))
    logs.register_secret(quote(credentials.digest, safe=""))
    return name


def gateway_from_devices(payload: Any) -> Parsed[str | None]:
    """The serial of the site's gateway (the ``envoy`` group of ``devices.json``), None when it has none."""
    body = require_object(payload, devices.ENDPOINT)
    reader = Reader()
    for group in reader.objects(body, "result", devices.ENDPOINT, required=True):
        if group.get("type") != "envoy":
            continue  # other groups, and the trailing metadata item ({"curr_date_site": ...})
        for device in reader.objects(group, "devices", "devices.envoy"):
            serial = reader.text(device, "serial_number", "devices.envoy")
            if serial and serial.strip():
                return Parsed(serial.strip(), tuple(reader.problems))
    return Parsed(None, tuple(reader.problems))


def gateway_from_today(connection_details: Any, reader: Reader) -> str | None:
    """``connectionDetails`` of ``today``: a list whose items carry ``serial_num`` (an object in old shapes,
    which carries no serial)."""
    items: list[Mapping[str, Any]]
    if isinstance(connection_details, Mapping):
        items = [connection_details]
    elif isinstance(connection_details, list):
        items = [item for item in connection_details if isinstance(item, Mapping)]
    else:
        if connection_details is not None:
            reader.problem("today.connectionDetails", "expected a list")
        return None
    for item in items:
        serial = reader.text(item, "serial_num", "today.connectionDetails")
        if serial and serial.strip():
            return serial.strip()
    return None


def _positive(reader: Reader, body: Mapping[str, Any], key: str) -> float | None:
    value = reader.number(body, key, ENDPOINT, required=True)
    if value is not None and not (value > 0 and math.isfinite(value)):
        reader.problem(f"{ENDPOINT}.{key}", "must be a positive number of seconds")
        return None
    return value
