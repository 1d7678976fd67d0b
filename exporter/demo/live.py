"""The demo cloud's live stream (ENLIGHTEN_API.md §7): credentials, and a broker streaming the simulated site.

- ``LiveGrants`` issues credentials as ``/pv/aws_sigv4/livestream.json`` does: a token, its signature, a topic
  and the stream's ``live_stream_duration``; the broker checks them.
- ``DemoBroker`` speaks MQTT 3.1.1 over WebSocket on 127.0.0.1, plain ``ws://`` (the exporter accepts that
  for the loopback interface under ``serve --demo`` only). WebSocket framing comes from the ``websockets``
  library; the MQTT side is the small subset a live stream needs (CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH
  at QoS 0, PINGREQ/PINGRESP, DISCONNECT), written here because no well-kept broker embeds in a Python
  process (an external Mosquitto would make the demo need a setup). Like the real broker it checks the
  username's authorizer fields, the token's signature and ``site-id``, refuses other topics, sends a frame
  a second that agrees with the simulation, and goes silent when the stream's duration has passed.
- Faults (``faults.py``): ``refused`` credentials (403) on the credentials route; per stream, ``dropped``
  (the broker closes the connection), ``silence`` (the stream stops sending) and ``garbled_frame``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import secrets
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

from exporter.live import live_stream_pb2 as pb

from . import simulation as sim
from .faults import Faults

GATEWAY_SERIAL = sim.GATEWAY_SERIAL
AUTHORIZER = "demo-lambda-authoriser"
TOKEN_KEY = "enph_token"
DURATION = 900
TIMEOUT = 15
MICROINVERTERS = 16
STREAM_FAULTS_ENDPOINT = "live_frames"

_log = logging.getLogger(__name__)
# websockets logs every connection at INFO: noise in the exporter's log, which the demo shares.
_log.setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class Grant:
    token: str
    topic: str
    expires_at: float  # the demo clock's time the stream ends


class LiveGrants:
    def __init__(
        self, clock: Callable[[], float], duration: float = DURATION, timeout: float = TIMEOUT
    ) -> None:
        self._clock = clock
        self.duration = duration  # tests shorten both
        self.timeout = timeout
        self._secret = secrets.token_bytes(32)
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def issue(self, endpoint: str) -> dict[str, object]:
        now = self._clock()
        grant = Grant(
            secrets.token_urlsafe(24), f"v1/live-stream/{secrets.token_hex(8)}", now + self.duration
        )
        with self._lock:
            self._grants = {t: g for t, g in self._grants.items() if g.expires_at > now}  # forget ended ones
            self._grants[grant.token] = grant
        return {
            "aws_iot_endpoint": endpoint,
            "aws_authorizer": AUTHORIZER,
            "aws_token_key": TOKEN_KEY,
            "aws_token_value": grant.token,
            "aws_digest": self._sign(grant.token),
            "live_stream_topic": grant.topic,
            "live_stream_duration": self.duration,
            "timeout": self.timeout,
        }

    def check(self, username: str, site_ids: Iterable[str]) -> Grant | None:
        """The grant the MQTT username stands for, or None: the checks of the real authorizer."""
        fields = {name: values[0] for name, values in parse_qs(username.removeprefix("?")).items()}
        token = fields.get(TOKEN_KEY, "")
        with self._lock:
            grant = self._grants.get(token)
        if (
            grant is None
            or fields.get("x-amz-customauthorizer-name") != AUTHORIZER
            or fields.get("site-id") not in set(site_ids)
            or not hmac.compare_digest(fields.get("x-amz-customauthorizer-signature", ""), self._sign(token))
            or grant.expires_at <= self._clock()
        ):
            return None
        return grant

    def _sign(self, token: str) -> str:
        return base64.b64encode(hmac.new(self._secret, token.encode(), hashlib.sha256).digest()).decode()


# -- the simulated site's power, now ---------------------------------------------------------------------


def site_power_mw(ts: float) -> dict[str, int]:
    """pv, storage, grid, load in mW at ``ts``: the simulated interval's mean power plus a flicker that
    changes every second; load = pv + grid + storage exactly (the EV's charging is inside load)."""
    if sim.local_day(ts) < sim.SITE_START:
        return {"pv": 0, "storage": 0, "grid": 0, "load": 0}
    day = sim.simulate_day(sim.local_day(ts))
    interval = day.intervals[int((ts - day.start_time) // sim.INTERVAL_SECONDS)]
    to_watts = 3600 / sim.INTERVAL_SECONDS
    pv = (interval.solar_home + interval.solar_battery + interval.solar_grid) * to_watts
    storage = (interval.battery_home - interval.solar_battery) * to_watts  # > 0 discharging
    grid = (interval.grid_home - interval.solar_grid) * to_watts  # > 0 importing
    flicker = (
        30 * math.sin(ts * 0.7) + 15 * math.sin(ts * 2.3) + 20
    )  # appliances switching: the grid covers it
    passing_cloud = pv * 0.01 * math.sin(ts * 1.3)  # less sun: the grid covers it too
    pv, grid = pv + passing_cloud, grid + flicker - passing_cloud
    power = {"pv": round(pv * 1000), "storage": round(storage * 1000), "grid": round(grid * 1000)}
    power["load"] = power["pv"] + power["storage"] + power["grid"]
    return power


def frame_bytes(ts: float) -> bytes:
    power = site_power_mw(ts)
    message = pb.DataMsg(protocol_ver=1, timestamp=1)  # a constant placeholder, as the real stream's
    for meter, mw in power.items():
        channel = getattr(message.meters, meter)
        channel.SetInParent()  # present even when every number is 0 (proto3 would leave it out)
        channel.agg_p_mw = mw
        channel.agg_s_mva = round(abs(mw) * 1.02)
        third = int(mw / 3)
        channel.agg_p_ph_mw.extend((third, third, mw - 2 * third))
    message.meters.grid_relay = pb.CLOSED
    message.meters.soc = round(sim.battery_soc(ts))
    message.meters.phase_count = 3
    message.batt_mode = pb.SELF_CONS
    message.backup_soc = sim.BACKUP_RESERVE_PERCENT
    running = MICROINVERTERS if power["pv"] > 0 else 0
    message.power_match_status.total_pcu_count = MICROINVERTERS
    message.power_match_status.running_pcu_count = running
    return message.SerializeToString()


# -- MQTT 3.1.1, the subset a live stream uses --------------------------------------------------------------

CONNECT, CONNACK, PUBLISH, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 1, 2, 3, 8, 9, 12, 13, 14
NOT_AUTHORIZED = 5


class ProtocolError(Exception):
    pass


def packet(kind: int, flags: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([kind << 4 | flags]) + bytes(encoded) + body


def split_packets(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Whole packets off the front of ``buffer`` as (type, body); a partial one stays."""
    packets: list[tuple[int, bytes]] = []
    while len(buffer) >= 2:
        length, multiplier, index = 0, 1, 1
        while True:
            if index >= len(buffer):
                return packets
            byte = buffer[index]
            length += (byte & 0x7F) * multiplier
            multiplier, index = multiplier * 128, index + 1
            if not byte & 0x80:
                break
            if index > 4:
                raise ProtocolError("remaining length over 4 bytes")
        if len(buffer) < index + length:
            return packets
        packets.append((buffer[0] >> 4, bytes(buffer[index : index + length])))
        del buffer[: index + length]
    return packets


def _string(body: bytes, at: int) -> tuple[str, int]:
    if at + 2 > len(body):
        raise ProtocolError("truncated string")
    (size,) = struct.unpack_from("!H", body, at)
    if at + 2 + size > len(body):
        raise ProtocolError("truncated string")
    return body[at + 2 : at + 2 + size].decode("utf-8", "replace"), at + 2 + size


def connect_username(body: bytes) -> str:
    """The username of a CONNECT (empty without one)."""
    name, at = _string(body, 0)
    if name != "MQTT" or at + 4 > len(body) or body[at] != 4:
        raise ProtocolError("not MQTT 3.1.1")
    flags = body[at + 1]
    at += 4  # level, flags, keep-alive
    _, at = _string(body, at)  # client id
    if flags & 0x04:  # a will: topic and message
        _, at = _string(body, at)
        _, at = _string(body, at)
    return _string(body, at)[0] if flags & 0x80 else ""


def subscribe_topics(body: bytes) -> tuple[bytes, list[str]]:
    """(packet id, topics) of a SUBSCRIBE."""
    packet_id, at, topics = body[:2], 2, []
    while at < len(body):
        topic, at = _string(body, at)
        topics.append(topic)
        at += 1  # requested QoS
    return packet_id, topics


def publish(topic: str, payload: bytes) -> bytes:
    encoded = topic.encode()
    return packet(PUBLISH, 0, struct.pack("!H", len(encoded)) + encoded + payload)


class DemoBroker:
    def __init__(
        self,
        grants: LiveGrants,
        site_ids: Callable[[], Iterable[str]],
        faults: Faults,
        clock: Callable[[], float],
        host: str = "127.0.0.1",
    ) -> None:
        self._grants = grants
        self._site_ids = site_ids
        self._faults = faults
        self._clock = clock
        self._host = host
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""  # host:port, as aws_iot_endpoint
        self.connections = 0

    def start(self) -> None:
        self._server = serve(
            self._serve,
            self._host,
            0,
            subprotocols=[Subprotocol("mqtt")],
            compression=None,
            # MQTT has its own keep-alive (PINGREQ). paho-mqtt 2.2 answers a WebSocket ping with an unmasked
            # pong, which websockets takes (rightly) as a protocol error and closes the connection for.
            ping_interval=None,
            process_request=_only_mqtt_path,
            logger=_log,
        )
        port = self._server.socket.getsockname()[1]
        self.endpoint = f"{self._host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-broker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            if self._thread is not None:
                self._thread.join(5)
            self._server = self._thread = None

    def _serve(self, connection: ServerConnection) -> None:
        self.connections += 1
        buffer, grant, topic = bytearray(), None, None
        fault = None
        sent = 0
        next_frame = time.monotonic() + 1.0
        try:
            while True:
                try:
                    data = connection.recv(timeout=max(0.0, next_frame - time.monotonic()))
                except TimeoutError:
                    data = None
                if data is not None:
                    buffer.extend(data if isinstance(data, bytes) else data.encode())
                    for kind, body in split_packets(buffer):
                        if kind == CONNECT:
                            grant = self._grants.check(connect_username(body), self._site_ids())
                            connection.send(packet(CONNACK, 0, bytes([0, 0 if grant else NOT_AUTHORIZED])))
                            if grant is None:
                                return  # the real broker closes the connection too
                        elif kind == SUBSCRIBE and grant is not None:
                            packet_id, topics = subscribe_topics(body)
                            codes = bytes(0 if t == grant.topic else 0x80 for t in topics)
                            connection.send(packet(SUBACK, 0, packet_id + codes))
                            if grant.topic in topics:
                                topic = grant.topic
                                fault = self._faults.stream_fault(STREAM_FAULTS_ENDPOINT, self._clock())
                                next_frame = time.monotonic()  # the first frame at once, then one a second
                        elif kind == PINGREQ:
                            connection.send(packet(PINGRESP, 0, b""))
                        elif kind == DISCONNECT or grant is None:
                            return
                    continue
                next_frame += 1.0
                if topic is None or grant is None or self._clock() >= grant.expires_at:
                    continue  # not subscribed yet, or the stream has ended: silence
                sent += 1
                if fault is not None and sent == 5:  # a few good frames first, as a fault mid-stream
                    if fault.name == "dropped":
                        return
                    if fault.name == "garbled_frame":
                        connection.send(publish(topic, b"\x1a\xff\xff\x01garbled"))
                        continue
                if fault is not None and fault.name == "silence" and sent >= 5:
                    continue
                connection.send(publish(topic, frame_bytes(self._clock())))
        except (ConnectionClosed, ProtocolError):
            return
        finally:
            connection.close()


def _only_mqtt_path(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.split("?")[0] != "/mqtt":
        return connection.respond(404, "Not found\n")
    return None
