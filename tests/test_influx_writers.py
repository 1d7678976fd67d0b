"""The two write paths, request by request: what is sent, and what each answer means.

The 1.x path uses requests, so ``responses`` stands in for the server. influxdb-client (the 2.x path) speaks
urllib3, which ``responses`` cannot intercept: a small recording HTTP server on 127.0.0.1 stands in there.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from support import free_port

from exporter.config import InfluxSettings, Secret
from exporter.influx.writers import V1Writer, V2Writer, WriteFailed

BODY = "enphase_site,site_id=1 production_power_watts=560 1774656000000000000"
PASSWORD = "influx-password-never-shown"
TOKEN = "influx-token-never-shown"


def settings(**overrides: object) -> InfluxSettings:
    values: dict[str, object] = {
        "url": "http://127.0.0.1:8086",
        "bucket": None,
        "org": None,
        "token": None,
        "database": "enphase",
        "retention_policy": None,
        "username": None,
        "password": None,
        "queue_dir": Path("/nonexistent"),
        "queue_max_bytes": 10**8,
    }
    values.update(overrides)
    return InfluxSettings(**values)  # type: ignore[arg-type]


# -- InfluxDB 1.x: /write ----------------------------------------------------------------------------------


@responses.activate
def test_v1_posts_line_protocol_to_write_with_database_policy_and_basic_auth() -> None:
    responses.post("http://127.0.0.1:8086/write", status=204)
    writer = V1Writer(settings(retention_policy="forever", username="grafana", password=Secret(PASSWORD)))
    writer.write(BODY)
    [call] = responses.calls
    query = parse_qs(urlsplit(call.request.url).query)
    assert query == {"db": ["enphase"], "rp": ["forever"], "precision": ["ns"]}
    assert call.request.body == BODY.encode()
    expected = base64.b64encode(f"grafana:{PASSWORD}".encode()).decode()
    assert call.request.headers["Authorization"] == f"Basic {expected}"
    assert PASSWORD not in call.request.url  # never in a URL, which proxies and servers log


@pytest.mark.parametrize(
    ("status", "body", "headers", "reason", "retry_after"),
    [
        (404, '{"error":"database not found: \\"enphase\\""}', {}, "not_found", None),
        (401, '{"error":"authorization failed"}', {}, "unauthorized", None),
        (403, '{"error":"forbidden"}', {}, "unauthorized", None),
        (400, '{"error":"partial write: field type conflict"}', {}, "rejected", None),
        (413, '{"error":"Request Entity Too Large"}', {}, "rejected", None),
        (429, "{}", {"Retry-After": "17"}, "rate_limited", 17.0),
        (503, "{}", {"Retry-After": "5"}, "rate_limited", 5.0),
        (500, '{"error":"timeout"}', {}, "server_error", None),
    ],
)
@responses.activate
def test_v1_answers_map_to_what_the_sender_should_do(
    status: int, body: str, headers: dict[str, str], reason: str, retry_after: float | None
) -> None:
    responses.post("http://127.0.0.1:8086/write", status=status, body=body, headers=headers)
    with pytest.raises(WriteFailed) as failed:
        V1Writer(settings()).write(BODY)
    assert failed.value.reason == reason
    assert failed.value.retry_after == retry_after
    assert f"HTTP {status}" in failed.value.detail


@responses.activate
def test_v1_server_message_is_kept_for_the_log() -> None:
    responses.post("http://127.0.0.1:8086/write", status=404, body='{"error":"database not found: \\"x\\""}')
    with pytest.raises(WriteFailed, match='database not found: "x"'):
        V1Writer(settings()).write(BODY)


def test_v1_unreachable_server_is_retryable_and_names_no_secret() -> None:
    port = free_port()
    writer = V1Writer(settings(url=f"http://127.0.0.1:{port}", username="u", password=Secret(PASSWORD)))
    with pytest.raises(WriteFailed) as failed:
        writer.write(BODY)
    assert failed.value.reason == "unreachable"
    assert failed.value.action == "retry"
    assert PASSWORD not in str(failed.value)


# -- InfluxDB 2.x/3.x: /api/v2/write through influxdb-client ------------------------------------------------


@dataclass
class Recorded:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class RecordingServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    answer: tuple[int, dict[str, str], bytes] = (204, {}, b"")


@pytest.fixture
def v2_server() -> Iterator[RecordingServer]:
    recording = RecordingServer("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            parts = urlsplit(self.path)
            recording.requests.append(
                Recorded(parts.path, parse_qs(parts.query), dict(self.headers), self.rfile.read(length))
            )
            status, headers, body = recording.answer
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recording.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recording
    server.shutdown()
    server.server_close()


def v2_settings(url: str) -> InfluxSettings:
    return settings(url=url, database=None, bucket="energy", org="home", token=Secret(TOKEN))


def test_v2_sends_the_token_header_org_bucket_and_precision(v2_server: RecordingServer) -> None:
    writer = V2Writer(v2_settings(v2_server.url))
    writer.write(BODY)
    writer.close()
    [request] = v2_server.requests
    assert request.path == "/api/v2/write"
    assert request.query["org"] == ["home"]
    assert request.query["bucket"] == ["energy"]
    assert request.query["precision"] == ["ns"]
    assert request.headers["Authorization"] == f"Token {TOKEN}"
    assert request.body.decode() == BODY


@pytest.mark.parametrize(
    ("status", "body", "headers", "reason", "retry_after"),
    [
        (401, b'{"code":"unauthorized","message":"unauthorized access"}', {}, "unauthorized", None),
        (404, b'{"code":"not found","message":"bucket \\"energy\\" not found"}', {}, "not_found", None),
        (400, b'{"code":"invalid","message":"unable to parse"}', {}, "rejected", None),
        (429, b"{}", {"Retry-After": "30"}, "rate_limited", 30.0),
        (503, b"{}", {}, "server_error", None),
    ],
)
def test_v2_answers_map_to_what_the_sender_should_do(
    v2_server: RecordingServer,
    status: int,
    body: bytes,
    headers: dict[str, str],
    reason: str,
    retry_after: float | None,
) -> None:
    v2_server.answer = (status, {"Content-Type": "application/json", **headers}, body)
    writer = V2Writer(v2_settings(v2_server.url))
    with pytest.raises(WriteFailed) as failed:
        writer.write(BODY)
    writer.close()
    assert failed.value.reason == reason
    assert failed.value.retry_after == retry_after
    assert TOKEN not in str(failed.value)


def test_v2_message_names_the_missing_bucket(v2_server: RecordingServer) -> None:
    v2_server.answer = (404, {}, b'{"code":"not found","message":"bucket \\"energy\\" not found"}')
    with pytest.raises(WriteFailed, match='bucket "energy" not found'):
        V2Writer(v2_settings(v2_server.url)).write(BODY)


def test_v2_unreachable_server_is_retryable() -> None:
    with pytest.raises(WriteFailed) as failed:
        V2Writer(v2_settings(f"http://127.0.0.1:{free_port()}")).write(BODY)
    assert failed.value.reason == "unreachable"
    assert TOKEN not in str(failed.value)
