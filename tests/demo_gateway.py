"""A demo IQ Gateway on 127.0.0.1: HTTPS with a self-signed certificate made at test time, answering its
local EV endpoints (seed 004) with the demo charger's status, or 401 as current firmware does for owners."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exporter.demo import DEMO_CHARGER_SERIAL, payloads

GATEWAY_TOKEN = "gateway-token-6d2f9a41"


def self_signed(directory: Path) -> tuple[Path, Path, str]:
    """A certificate like a gateway's (self-signed, for envoy.local and 127.0.0.1): cert, key, SHA-256."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "envoy.local")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("envoy.local"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "gateway.crt", directory / "gateway.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


class DemoGateway:
    def __init__(
        self, directory: Path, *, unauthorized: bool = False, clock: Callable[[], float] = time.time
    ):
        self.unauthorized = unauthorized  # answer 401, as current firmware does for owner tokens
        self.failing = False  # answer 503, as a gateway busy or restarting might
        self.requests: list[str] = []
        self.bearer_ok: list[bool] = []
        cert, key, self.fingerprint = self_signed(directory)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gateway.requests.append(self.path)
                authorised = self.headers.get("Authorization") == f"Bearer {GATEWAY_TOKEN}"
                gateway.bearer_ok.append(authorised)
                if gateway.unauthorized or not authorised:
                    return self._send(401, {"message": "Unauthorized"})
                if gateway.failing:
                    return self._send(503, {"message": "busy"})
                if self.path == "/ivp/pdm/chargers":
                    return self._send(200, {"chargers": [{"sn": DEMO_CHARGER_SERIAL, "status": "NORMAL"}]})
                if self.path == f"/ivp/pdm/charger/{DEMO_CHARGER_SERIAL}/status":
                    return self._send(200, payloads.ev_status(clock()))
                self._send(404, {"message": "not found"})

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> DemoGateway:
        threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
