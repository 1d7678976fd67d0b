"""A small scripted cloud for the live stream, on 127.0.0.1, that the exporter was not built against: its own
``today`` (naming the gateway in ``connectionDetails``) and credentials route, and a publisher that sends a
hand-built frame (tests/protowire.py) a second to every stream it has opened on a real broker, for as long as
the stream's ``live_stream_duration`` says — after that the stream ends, as the real one does.

The test scripts the misbehaviour: ``silence()`` (open streams stop sending), ``refuse`` (credentials
answered 403), and the broker's own restart (every connection dropped).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from protowire import bytes_field, channel, data_msg, int_field

SITE_ID = "31337"
GATEWAY = "122100004242"
E_AUTH_TOKEN = "pasted-e-auth-token-5d1f"


@dataclass(slots=True)
class Stream:
    topic: str
    opened: float  # time.monotonic()
    silent: bool = False


def frame(second: int) -> bytes:
    pv = 2_000_000 + 1000 * (second % 60)
    grid = -500_000
    storage = -800_000
    meters = (
        bytes_field(1, channel(pv))
        + bytes_field(2, channel(storage))
        + bytes_field(3, channel(grid))
        + bytes_field(4, channel(pv + grid + storage))
        + int_field(5, 2)
        + int_field(6, 55)
    )
    return data_msg(meters)


class LiveCloud:
    def __init__(self, broker_tcp_port: int, broker_wss_port: int, *, duration: int, timeout: int) -> None:
        self.token = "live-token-" + secrets.token_hex(12)
        self.digest = secrets.token_urlsafe(24) + "+/="  # base64 signature characters, to be URL-encoded
        self.duration = duration
        self.timeout = timeout
        self.refuse = False
        self.credential_requests: list[float] = []  # time.monotonic() of each credentials request
        self.streams: list[Stream] = []
        self._wss_port = broker_wss_port
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.cloud = self  # type: ignore[attr-defined]
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="live-cloud-publisher")
        self._publisher.reconnect_delay_set(0.2, 1)
        self._publisher.connect_async("127.0.0.1", broker_tcp_port)
        self._threads = [
            threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True),
            threading.Thread(target=self._publish, daemon=True),
        ]

    def start(self) -> None:
        self._publisher.loop_start()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._publisher.loop_stop()

    def silence(self) -> None:
        """The streams open now stop sending; streams opened later send again."""
        with self._lock:
            for stream in self.streams:
                stream.silent = True

    def credentials(self) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.credential_requests.append(time.monotonic())
            if self.refuse:
                return 403, {"message": "Live stream not allowed"}
            stream = Stream(f"v1/live-stream/{secrets.token_hex(4)}", time.monotonic())
            self.streams.append(stream)
        return 200, {
            "aws_iot_endpoint": f"127.0.0.1:{self._wss_port}",
            "aws_authorizer": "scripted-authoriser",
            "aws_token_key": "enph_token",
            "aws_token_value": self.token,
            "aws_digest": self.digest,
            "live_stream_topic": stream.topic,
            "live_stream_duration": self.duration,
            "timeout": self.timeout,
        }

    def _publish(self) -> None:
        second = 0
        while not self._stop.wait(1.0 - time.monotonic() % 1.0):
            second += 1
            now = time.monotonic()
            with self._lock:
                live = [s.topic for s in self.streams if not s.silent and now - s.opened < self.duration]
            for topic in live:
                self._publisher.publish(topic, frame(second), qos=0)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        cloud: LiveCloud = self.server.cloud  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        if self.headers.get("e-auth-token") != E_AUTH_TOKEN:
            self._answer(401, {"message": "Unauthorized"})
        elif url.path == f"/pv/systems/{SITE_ID}/today":
            self._answer(200, {"system_id": int(SITE_ID), "connectionDetails": [{"serial_num": GATEWAY}]})
        elif url.path == "/pv/aws_sigv4/livestream.json":
            if parse_qs(url.query).get("serial_num") != [GATEWAY]:
                self._answer(400, {"message": "Envoy not found"})
            else:
                self._answer(*cloud.credentials())
        else:
            self._answer(404, {"message": "Not found"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
