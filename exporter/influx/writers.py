"""The two write paths: InfluxDB 1.x ``/write`` and the 2.x/3.x write API (influxdb-client).

Each writer sends one body of line protocol and either returns (the server accepted every point) or raises
``WriteFailed`` saying what the sender should do next. Credentials travel in headers only, never in a URL,
and no error text carries them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Literal, Protocol

import requests
import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from exporter import logs
from exporter.config import InfluxSettings

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0

# What a failure means for the points, by reason:
# - retry: the server is away, overloaded or rate limiting; the same points go again after a back-off.
# - config: the token, user, bucket or database is wrong; only a person can fix it, so retry slowly.
# - bad_points: the server refuses these points themselves; resending them would block the queue forever.
Action = Literal["retry", "config", "bad_points"]
ACTIONS: dict[str, Action] = {
    "unreachable": "retry",
    "server_error": "retry",
    "rate_limited": "retry",
    "unauthorized": "config",
    "not_found": "config",
    "rejected": "bad_points",
}


class WriteFailed(Exception):
    def __init__(self, reason: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # a key of ACTIONS; the `reason` label of enphase_influxdb_write_failures_total
        self.detail = detail
        self.retry_after = retry_after

    @property
    def action(self) -> Action:
        return ACTIONS[self.reason]


class Writer(Protocol):
    target: str  # where the points go, for logs: no credentials

    def write(self, body: str) -> None: ...

    def close(self) -> None: ...


def writer_for(settings: InfluxSettings) -> Writer:
    return V2Writer(settings) if settings.api_version == 2 else V1Writer(settings)


class V1Writer:
    """POST /write?db=…&rp=…&precision=ns, with HTTP basic authentication when a user is set."""

    def __init__(self, settings: InfluxSettings) -> None:
        self.target = settings.target
        self._url = settings.url + "/write"
        self._params = {"db": settings.database or "", "precision": "ns"}
        if settings.retention_policy:
            self._params["rp"] = settings.retention_policy
        self._session = requests.Session()
        if settings.username and settings.password:
            password = settings.password.reveal()
            self._session.auth = (settings.username, password)
            # A server or proxy may echo what it got into an error message, which is logged.
            logs.register_secret(password)
            logs.register_secret(base64.b64encode(f"{settings.username}:{password}".encode()).decode())

    def write(self, body: str) -> None:
        try:
            response = self._session.post(
                self._url, params=self._params, data=body.encode(), timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)
            )
        except requests.Timeout:
            raise WriteFailed("unreachable", "timed out") from None
        except requests.RequestException as error:
            raise WriteFailed("unreachable", _connection_detail(error)) from None
        if response.status_code // 100 != 2:
            raise failure(response.status_code, response.headers.get("Retry-After"), response.text)

    def close(self) -> None:
        self._session.close()


class V2Writer:
    """The 2.x write API through influxdb-client: ``Authorization: Token …``, org and bucket."""

    def __init__(self, settings: InfluxSettings) -> None:
        self.target = settings.target
        self._bucket = settings.bucket or ""
        self._org = settings.org or ""
        token = settings.token.reveal() if settings.token else ""
        logs.register_secret(token)  # a server or proxy may echo it into an error message, which is logged
        self._client = InfluxDBClient(
            url=settings.url,
            token=token,
            org=self._org,
            timeout=(CONNECT_TIMEOUT * 1000, READ_TIMEOUT * 1000),
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, body: str) -> None:
        try:
            self._api.write(
                bucket=self._bucket,
                org=self._org,
                record=body,
                write_precision=WritePrecision.NS,  # type: ignore[arg-type]  # its constants are plain str
            )
        except ApiException as error:
            headers: Mapping[str, str] = error.headers or {}
            raise failure(error.status or 0, headers.get("Retry-After"), error.body) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise WriteFailed("unreachable", _connection_detail(error)) from None

    def close(self) -> None:
        self._client.close()


def failure(status: int, retry_after: str | None, body: object) -> WriteFailed:
    """The failure an HTTP status stands for, with the server's own message (InfluxDB's messages name the
    database, bucket or field at fault and never echo credentials)."""
    detail = f"HTTP {status}: {_server_message(body)}"
    if status == 429 or (status == 503 and retry_after):
        return WriteFailed("rate_limited", detail, _seconds(retry_after))
    if status >= 500:
        return WriteFailed("server_error", detail, _seconds(retry_after))
    if status in (401, 403):
        return WriteFailed("unauthorized", detail)
    if status == 404:
        return WriteFailed("not_found", detail)
    return WriteFailed("rejected", detail)


def _server_message(body: object) -> str:
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        text = str(parsed.get("error") or parsed.get("message") or text)
    text = " ".join(text.split())
    return text[:300] if text else "no message"


def _seconds(retry_after: str | None) -> float | None:
    try:
        return max(0.0, float(retry_after)) if retry_after else None
    except ValueError:
        return None  # an HTTP date: rare for InfluxDB; the normal back-off applies


def _connection_detail(error: BaseException) -> str:
    text = str(error).lower()
    for phrase in ("connection refused", "name or service not known", "timed out", "connection reset"):
        if phrase in text:
            return phrase
    return f"connection failed ({type(error).__name__})"
