"""A real Mosquitto broker for tests (Debian package ``mosquitto``), on 127.0.0.1: a WebSocket listener over
TLS, as AWS IoT's ``wss://`` is, with a certificate from a CA made in a temporary directory (the exporter is
told to trust it through ``SSL_CERT_FILE``), and a plain TCP listener for the test's own publisher.

Mosquitto 2.0.11 (Debian 12) refuses to start with WebSocket listeners only, hence the TCP listener too.
A missing ``mosquitto`` or ``openssl`` fails the test: it is installed by scripts/test.sh.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from servers import stop_process, wait_until
from support import free_port


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1 and localhost."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the test CA (apt-get install openssl)"

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=enphase-exporter test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "san.cnf")  # fmt: skip
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


class Mosquitto:
    def __init__(self, directory: Path) -> None:
        binary = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
        assert binary, "mosquitto is needed for the live stream tests (apt-get install mosquitto)"
        self.binary = binary
        self.directory = directory
        self.ca, certificate, key = make_ca(directory)
        self.tcp_port = free_port()
        self.wss_port = free_port()
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            # Run as root (a container), mosquitto would drop to its own user, who cannot read the key.
            f"user {getpass.getuser()}\n"
            f"listener {self.tcp_port} 127.0.0.1\nallow_anonymous true\n"
            f"listener {self.wss_port} 127.0.0.1\nprotocol websockets\n"
            f"certfile {certificate}\nkeyfile {key}\n"
        )
        self.log = directory / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config), "-v"], stdout=log, stderr=log
            )
        wait_until(lambda: _listening(self.tcp_port) and _listening(self.wss_port), 10, "mosquitto")
        assert self.process.poll() is None, self.log.read_text()[-2000:]

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def restart(self) -> None:
        """Every connection drops, as when the cloud's broker ends them."""
        self.stop()
        time.sleep(0.5)
        self.start()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0
