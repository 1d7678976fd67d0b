"""The MQTT connection of a live stream session: paho-mqtt's WebSocket transport (ENLIGHTEN_API.md §7.3).

``wss://<aws_iot_endpoint>/mqtt`` (the endpoint may carry a port, used as given; port 443 otherwise),
subprotocol ``mqtt``, the app's ``Origin``, keep-alive 60 s, the authorizer in the MQTT username and no
password. The broker's certificate is verified against the system trust store
(``ssl.create_default_context``), so ``SSL_CERT_FILE`` can add a CA, as tests and corporate proxies need.

The one exception is the demo cloud's broker on the loopback interface, which speaks plain ``ws://``:
``plain_loopback`` is set only by ``serve --demo``, and refused for any other host.
"""

from __future__ import annotations

import secrets
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from exporter.live.session import LinkEvents
from exporter.sources.live_stream import StreamCredentials, username

ORIGIN = "https://enlighten.enphaseenergy.com"
KEEPALIVE = 60
CONNECT_TIMEOUT = 10.0
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``host`` → (host, 443); ``host:port`` → (host, port); ``[v6]:port`` too."""
    host, colon, port = endpoint.rpartition(":")
    if colon and port.isdigit() and (not host.count(":") or host.startswith("[")):
        return host.strip("[]"), int(port)
    return endpoint.strip("[]"), 443


class MqttLink:
    """One connection, subscribed to one stream; its events go to the session."""

    def __init__(
        self,
        credentials: StreamCredentials,
        site_id: str,
        events: LinkEvents,
        *,
        plain_loopback: bool = False,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        host, port = split_endpoint(credentials.endpoint)
        if plain_loopback and host not in LOOPBACK:
            raise ValueError("plain ws:// is only for the demo cloud on the loopback interface")
        self._events = events
        self._topic = credentials.topic
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"enphase-exporter-{secrets.token_hex(6)}",
            protocol=MQTTProtocolVersion.MQTTv311,
            transport="websockets",
            reconnect_on_failure=False,  # the session reconnects, with fresh credentials
        )
        client.ws_set_options(path="/mqtt", headers={"Origin": ORIGIN})
        if not plain_loopback:
            client.tls_set_context(tls_context or ssl.create_default_context())
        client.username_pw_set(username(credentials, site_id), None)
        client.connect_timeout = CONNECT_TIMEOUT
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        self._client = client
        client.connect(host, port, KEEPALIVE)  # raises on a refused connection, TLS or handshake failure
        client.loop_start()

    def close(self) -> None:
        self._client.on_disconnect = None  # a close we asked for is no loss to report
        self._client.disconnect()
        self._client.loop_stop()

    # paho's callbacks, on its network thread

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._events.lost(self, f"connection refused: {reason}")
            return
        client.subscribe(self._topic, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._events.message(self, bytes(message.payload))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._events.lost(self, str(reason))


def open_link(
    credentials: StreamCredentials, site_id: str, events: LinkEvents, *, plain_loopback: bool = False
) -> MqttLink:
    return MqttLink(credentials, site_id, events, plain_loopback=plain_loopback)
