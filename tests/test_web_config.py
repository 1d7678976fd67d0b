"""The web config file: TLS and basic auth on /metrics, over real HTTP(S) on 127.0.0.1.

Certificates are made for each test session (``openssl`` or the ``cryptography`` package, whichever is
there) and never committed; passwords are real bcrypt hashes.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt
import pytest
import requests
from prometheus_client import CollectorRegistry, Gauge
from support import free_port

from exporter import web_auth
from exporter.config import ConfigError
from exporter.server import MetricsServer
from exporter.snapshot import SnapshotStore
from exporter.web_auth import BasicAuth
from exporter.web_config import load

ROOT = Path(__file__).parent.parent
PASSWORD = "scrape-pass-Ω-7f3a"  # not ASCII on purpose: Prometheus sends UTF-8 (requests needs bytes)
SAN_CLIENT, SAN_STRANGER = "prometheus.test", "stranger.test"


def hashed(password: str, rounds: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


# -- certificates -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A server CA with a server certificate for 127.0.0.1, and a client CA with two client certificates."""
    directory = tmp_path_factory.mktemp("pki")
    if shutil.which("openssl"):
        _openssl_pki(directory)
    else:
        pytest.importorskip("cryptography", reason="neither openssl nor cryptography to make certificates")
        _cryptography_pki(directory)
    return directory


_CERTS = (  # name, issuing CA, subjectAltName, extended key usage
    ("server", "ca", "IP:127.0.0.1,DNS:localhost", "serverAuth"),
    ("server2", "ca", "IP:127.0.0.1", "serverAuth"),
    ("client", "client-ca", f"DNS:{SAN_CLIENT}", "clientAuth"),
    ("stranger", "client-ca", f"DNS:{SAN_STRANGER}", "clientAuth"),
)


def _openssl_pki(directory: Path) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    new_key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "client-ca"):
        openssl("req", "-x509", *new_key, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2",
                "-subj", f"/CN={ca}")  # fmt: skip
    for name, ca, san, usage in _CERTS:
        (directory / f"{name}.ext").write_text(
            f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        )
        openssl("req", *new_key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
        )  # fmt: skip


def _cryptography_pki(directory: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)
    keys, certs = {}, {}

    def issue(name: str, issuer: str | None, extensions: list) -> None:
        keys[name] = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(certs[issuer].subject if issuer else subject)
            .public_key(keys[name].public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2))
        )
        # Key identifiers too: Python 3.13's strict verification wants them.
        extensions = [
            *extensions,
            (x509.SubjectKeyIdentifier.from_public_key(keys[name].public_key()), False),
        ]
        if issuer:
            issuer_key = keys[issuer].public_key()
            extensions.append((x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), False))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        certs[name] = builder.sign(keys[issuer or name], hashes.SHA256())
        (directory / f"{name}.crt").write_bytes(certs[name].public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(
            keys[name].private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    for ca in ("ca", "client-ca"):
        issue(ca, None, [(x509.BasicConstraints(ca=True, path_length=None), True)])
    for name, ca, san, usage in _CERTS:
        kind, _, value = san.split(",")[0].partition(":")
        general = x509.IPAddress(ipaddress.ip_address(value)) if kind == "IP" else x509.DNSName(value)
        oid = ExtendedKeyUsageOID.SERVER_AUTH if usage == "serverAuth" else ExtendedKeyUsageOID.CLIENT_AUTH
        issue(
            name, ca, [(x509.SubjectAlternativeName([general]), False), (x509.ExtendedKeyUsage([oid]), False)]
        )


# -- a MetricsServer with a web config, on 127.0.0.1 ------------------------------------------------------


@contextmanager
def serving(web_config: Path) -> Iterator[MetricsServer]:
    registry = CollectorRegistry()
    Gauge("enphase_test_marker", "Proves the body is the exposition.", registry=registry).set(1)
    store = SnapshotStore()
    server = MetricsServer("127.0.0.1", 0, registry, lambda: store.current, web_config_file=web_config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def url(server: MetricsServer, path: str = "/metrics") -> str:
    return f"{server.scheme}://127.0.0.1:{server.port}{path}"


def write(path: Path, text: str) -> Path:
    """Write, and move the modification time on, so that a rewrite within one clock tick is still seen."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    moved = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(moved, moved))
    return path


def tls_section(pki: Path, **extra: str) -> str:
    lines = [f"  cert_file: {pki / 'server.crt'}", f"  key_file: {pki / 'server.key'}"]
    lines += [f"  {key}: {value}" for key, value in extra.items()]
    return "tls_server_config:\n" + "\n".join(lines) + "\n"


def users_section(**users: str) -> str:
    return "basic_auth_users:\n" + "".join(
        f"  {user}: {hashed(password)}\n" for user, password in users.items()
    )


# -- the done-when check: `serve` as a user runs it ---------------------------------------------------------


def test_serve_with_a_web_config_wants_https_and_the_password(pki, tmp_path):
    config = write(tmp_path / "web.yml", tls_section(pki) + users_section(prometheus=PASSWORD))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    env["ENPHASE_WEB_CONFIG_FILE"] = str(config)
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "serve", "--demo", "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base, ca = f"https://127.0.0.1:{port}", str(pki / "ca.crt")
    try:
        wait_for(lambda: _answers(f"{base}/healthz", ca), 20, "serve to answer /healthz")
        healthz = requests.get(f"{base}/healthz", verify=ca, timeout=5)
        assert (healthz.status_code, healthz.text) == (200, "ok\n")  # open, for container health checks

        anonymous = requests.get(f"{base}/metrics", verify=ca, timeout=5)
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
        assert "enphase_" not in anonymous.text
        wrong = requests.get(f"{base}/metrics", verify=ca, auth=("prometheus", "not-it"), timeout=5)
        assert wrong.status_code == 401
        assert requests.get(f"{base}/", verify=ca, timeout=5).status_code == 401  # the status page too

        scrape = requests.get(f"{base}/metrics", verify=ca, auth=("prometheus", PASSWORD.encode()), timeout=5)
        assert scrape.status_code == 200
        assert "enphase_exporter_build_info" in scrape.text

        plain = requests.get(
            f"http://127.0.0.1:{port}/metrics", auth=("prometheus", PASSWORD.encode()), timeout=5
        )
        assert plain.status_code == 400 and "https://" in plain.text
        assert "enphase_" not in plain.text
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(15)
    stderr = process.stderr.read()
    assert returncode == 0, stderr
    assert f"Serving https://127.0.0.1:{port}/metrics" in stderr
    assert "Traceback" not in stderr and PASSWORD not in stderr


def _answers(address: str, ca: str) -> bool:
    try:
        return requests.get(address, verify=ca, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)  # polling a condition: nothing to wait on but the next attempt


def test_a_bad_web_config_file_stops_serve_with_one_line_and_status_2(tmp_path):
    config = write(tmp_path / "web.yml", "basic_auth_users:\n  prometheus: plain-text-password\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENPHASE_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "serve",
            "--demo",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--web.config.file",
            str(config),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("enphase-exporter: error:")]
    assert len(error_lines) == 1, result.stderr
    assert str(config) in error_lines[0] and "basic_auth_users.prometheus" in error_lines[0]
    assert "Traceback" not in result.stderr
    assert "plain-text-password" not in result.stderr  # whatever was typed there is not echoed


# -- basic auth ---------------------------------------------------------------------------------------------


def test_basic_auth_without_tls(tmp_path):
    with serving(write(tmp_path / "web.yml", users_section(alice=PASSWORD))) as server:
        assert server.scheme == "http"
        missing = requests.get(url(server), timeout=5)
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Basic")
        assert requests.get(url(server), auth=("alice", "wrong"), timeout=5).status_code == 401
        assert requests.get(url(server), auth=("bob", PASSWORD.encode()), timeout=5).status_code == 401
        granted = requests.get(url(server), auth=("alice", PASSWORD.encode()), timeout=5)
        assert granted.status_code == 200 and "enphase_test_marker 1.0" in granted.text
        assert requests.get(url(server, "/healthz"), timeout=5).text == "ok\n"
        assert requests.get(url(server, "/nope"), timeout=5).status_code == 401  # nothing to probe for


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"alice-without-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b"alice:" + b"x" * 100).decode(),  # beyond bcrypt's 72 bytes
        "basic",
    ],
)
def test_malformed_credentials_are_401_not_an_error(tmp_path, header):
    with serving(write(tmp_path / "web.yml", users_section(alice=PASSWORD))) as server:
        answer = requests.get(url(server), headers={"Authorization": header}, timeout=5)
    assert answer.status_code == 401


def test_verified_pairs_are_cached_and_unknown_users_still_cost_a_bcrypt_check(monkeypatch, tmp_path):
    checks = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed_password: bytes) -> bool:
        checks.append(password)
        return real_checkpw(password, hashed_password)

    monkeypatch.setattr(web_auth.bcrypt, "checkpw", counting_checkpw)
    with serving(write(tmp_path / "web.yml", users_section(alice=PASSWORD))) as server:
        for _ in range(3):
            assert requests.get(url(server), auth=("alice", PASSWORD.encode()), timeout=5).status_code == 200
        assert len(checks) == 1  # the first scrape pays for bcrypt, the next ones do not
        assert requests.get(url(server), auth=("mallory", PASSWORD.encode()), timeout=5).status_code == 401
        assert len(checks) == 2  # an unknown user costs a check too: timing does not reveal user names
        for _ in range(2):
            assert requests.get(url(server), auth=("alice", "guess"), timeout=5).status_code == 401
        assert len(checks) == 4  # wrong passwords are never cached


def test_the_cache_tells_user_and_password_apart():
    auth = BasicAuth({"ab": hashed("c").encode()})
    assert auth.allows("Basic " + base64.b64encode(b"ab:c").decode())
    assert not auth.allows("Basic " + base64.b64encode(b"a:bc").decode())  # the same bytes, split elsewhere


def test_rate_limit_turns_requests_away_before_authentication(tmp_path):
    text = users_section(alice=PASSWORD) + "rate_limit:\n  interval: 1h\n  burst: 2\n"
    with serving(write(tmp_path / "web.yml", text)) as server:
        codes = [
            requests.get(url(server), auth=("alice", PASSWORD.encode()), timeout=5).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        assert requests.get(url(server, "/healthz"), timeout=5).status_code == 200


def test_configured_headers_are_sent(tmp_path):
    text = (
        "http_server_config:\n  http2: true\n  headers:\n"
        "    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
    )
    with serving(write(tmp_path / "web.yml", text)) as server:
        answer = requests.get(url(server), timeout=5)
    assert answer.status_code == 200  # no basic_auth_users: no authentication, as in the toolkit
    assert answer.headers["X-Frame-Options"] == "deny"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


# -- TLS ----------------------------------------------------------------------------------------------------


def test_tls_only_https_is_spoken(pki, tmp_path):
    with serving(write(tmp_path / "web.yml", tls_section(pki))) as server:
        assert server.scheme == "https"
        answer = requests.get(url(server), verify=pki / "ca.crt", timeout=5)
        assert answer.status_code == 200 and "enphase_test_marker" in answer.text
        plain = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        assert plain.status_code == 400 and "enphase_test_marker" not in plain.text
        with pytest.raises(requests.exceptions.SSLError):  # a certificate from another CA is refused
            requests.get(url(server), verify=pki / "client-ca.crt", timeout=5)


def test_min_version_refuses_older_clients(pki, tmp_path):
    with serving(write(tmp_path / "web.yml", tls_section(pki, min_version="TLS13"))) as server:
        assert _handshake(server, pki, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
        with pytest.raises(ssl.SSLError):
            _handshake(server, pki, ssl.TLSVersion.TLSv1_2)


def _handshake(server: MetricsServer, pki: Path, highest: ssl.TLSVersion) -> str | None:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.maximum_version = highest
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as secure,
    ):
        return secure.version()


def test_client_certificates_with_allowed_sans(pki, tmp_path):
    text = tls_section(
        pki,
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=str(pki / "client-ca.crt"),
        client_allowed_sans=f"[{SAN_CLIENT}]",
    )
    with serving(write(tmp_path / "web.yml", text)) as server:
        ca = pki / "ca.crt"
        good = (str(pki / "client.crt"), str(pki / "client.key"))
        assert requests.get(url(server), verify=ca, cert=good, timeout=5).status_code == 200
        for refused in (None, (str(pki / "stranger.crt"), str(pki / "stranger.key"))):
            with pytest.raises(requests.ConnectionError):  # no certificate, or one with another SAN
                requests.get(url(server), verify=ca, cert=refused, timeout=5)


# -- changes to the file apply without a restart, and never open the door ----------------------------------


def test_a_changed_file_applies_to_the_next_request(tmp_path):
    config = write(tmp_path / "web.yml", users_section(alice=PASSWORD))
    with serving(config) as server:
        assert requests.get(url(server), auth=("alice", PASSWORD.encode()), timeout=5).status_code == 200
        write(config, users_section(bob="new-password"))
        assert requests.get(url(server), auth=("alice", PASSWORD.encode()), timeout=5).status_code == 401
        assert requests.get(url(server), auth=("bob", "new-password"), timeout=5).status_code == 200


def test_a_broken_change_keeps_the_last_good_configuration(tmp_path, caplog):
    config = write(tmp_path / "web.yml", users_section(alice=PASSWORD))
    with serving(config) as server:
        write(config, "basic_auth_users: [oops\n")
        assert requests.get(url(server), timeout=5).status_code == 401
        assert requests.get(url(server), auth=("alice", PASSWORD.encode()), timeout=5).status_code == 200
        config.unlink()
        assert requests.get(url(server), timeout=5).status_code == 401
    assert "keeping the previous web configuration" in caplog.text


def test_a_renewed_certificate_is_served_without_a_restart(pki, tmp_path):
    for name in ("server.crt", "server.key"):
        shutil.copy(pki / name, tmp_path / name)
    config = write(
        tmp_path / "web.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
    )
    with serving(config) as server:
        assert _served_certificate(server) == _pem(pki / "server.crt")
        for name in ("server.crt", "server.key"):  # as a renewal tool would: new files, same names
            write(tmp_path / name, (pki / name.replace("server", "server2")).read_text())
        assert _served_certificate(server) == _pem(pki / "server2.crt")


def _served_certificate(server: MetricsServer) -> str:
    return ssl.get_server_certificate(("127.0.0.1", server.port))


def _pem(path: Path) -> str:
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(path.read_text()))


# -- bad files: one ConfigError that names the file and the problem ------------------------------------------


TLS = "tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("basic_auth_user:\n  alice: x\n", "basic_auth_user: unknown key"),
        (TLS + "  ciphers: [x]\n", "tls_server_config.ciphers: unknown key"),
        ("tls_server_config:\n  cert_file: /nonexistent/server.crt\n  key_file: {key}\n", "cannot read"),
        ("tls_server_config:\n  cert_file: {crt}\n  key_file: {other_key}\n", "cannot be used together"),
        ("tls_server_config:\n  cert_file: {crt}\n", "key_file (or key) is missing"),
        (TLS + "  min_version: TLS14\n", "tls_server_config.min_version"),
        (TLS + "  min_version: TLS13\n  max_version: TLS12\n", "min_version is higher"),
        (TLS + "  client_ca_file: {ca}\n", "client_auth_type is NoClientCert"),
        (TLS + "  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file"),
        (TLS + "  client_auth_type: RequireAnyClientCert\n", "not supported"),
        (TLS + "  cipher_suites: [TLS_NOPE]\n", "TLS_NOPE"),
        ("basic_auth_users:\n  alice: hunter2\n", "basic_auth_users.alice: is not a bcrypt hash"),
        ("basic_auth_users:\n  alice: {hash}\n  alice: {hash}\n", "'alice' appears twice"),
        ("basic_auth_users: [alice]\n", "basic_auth_users: expected user: bcrypt-hash pairs"),
        ("rate_limit:\n  interval: soon\n  burst: 1\n", "rate_limit.interval"),
        ("http_server_config:\n  headers:\n    X-Frame-Options: always\n", "X-Frame-Options"),
        ("tls_server_config: [\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_bad_files_are_one_clear_config_error(pki, tmp_path, text, expected):
    path = write(
        tmp_path / "web.yml",
        text.format(
            crt=pki / "server.crt",
            key=pki / "server.key",
            other_key=pki / "client.key",
            ca=pki / "client-ca.crt",
            hash=hashed("x"),
        ),
    )
    with pytest.raises(ConfigError) as raised:
        load(path)
    message = str(raised.value)
    assert message.startswith(f"web config file {path}: ")
    assert expected in message
    assert "hunter2" not in message and "\n" not in message


def test_an_encrypted_key_is_refused_instead_of_prompting(pki, tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl makes the encrypted key")
    subprocess.run(
        [
            "openssl",
            "pkey",
            "-in",
            pki / "server.key",
            "-aes256",
            "-passout",
            "pass:pw",
            "-out",
            tmp_path / "enc.key",
        ],
        check=True,
        capture_output=True,
    )
    path = write(
        tmp_path / "web.yml", f"tls_server_config:\n  cert_file: {pki / 'server.crt'}\n  key_file: enc.key\n"
    )
    with pytest.raises(ConfigError, match="the private key is encrypted"):
        load(path)


def test_an_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"web config file .*missing\.yml: cannot read it"):
        load(tmp_path / "missing.yml")


# -- the example in the repository --------------------------------------------------------------------


def test_the_example_file_loads_and_its_documented_password_matches(pki, tmp_path):
    example = (ROOT / "web-config.yml.example").read_text()
    for name in ("exporter.crt", "exporter.key"):  # the names the example uses, beside the file
        shutil.copy(pki / name.replace("exporter", "server"), tmp_path / name)
    config = load(write(tmp_path / "web-config.yml", example))
    assert config.tls is not None and config.auth is not None
    documented = _documented_example_password()
    assert config.auth.allows("Basic " + base64.b64encode(f"prometheus:{documented}".encode()).decode())
    assert documented in (ROOT / "README.md").read_text()  # the README tells the same password


def _documented_example_password() -> str:
    for line in (ROOT / "web-config.yml.example").read_text().splitlines():
        if "example password:" in line:
            return line.split("example password:", 1)[1].strip()
    raise AssertionError("web-config.yml.example does not say its example password")


def test_a_deeply_nested_file_is_one_clear_config_error(tmp_path):
    config = write(tmp_path / "web.yml", "[" * 5000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load(config)


def test_a_deeply_nested_change_keeps_the_last_good_configuration_and_healthz(tmp_path, caplog):
    config = write(tmp_path / "web.yml", users_section(alice=PASSWORD))
    with serving(config) as server:
        write(config, "[" * 5000)
        assert requests.get(url(server, "/healthz"), timeout=5).text == "ok\n"
        assert requests.get(url(server), timeout=5).status_code == 401
        assert requests.get(url(server), auth=("alice", PASSWORD.encode()), timeout=5).status_code == 200
    assert "nested too deeply" in caplog.text and "keeping the previous web configuration" in caplog.text


@pytest.mark.parametrize("change", ["", "basic_auth_users: {}\n", "http_server_config: {}\n"])
def test_a_change_that_would_switch_basic_auth_off_is_refused(tmp_path, caplog, change):
    config = write(tmp_path / "web.yml", users_section(alice=PASSWORD))
    with serving(config) as server:
        write(config, change)
        assert requests.get(url(server), timeout=5).status_code == 401
        assert requests.get(url(server), auth=("alice", PASSWORD.encode()), timeout=5).status_code == 200
    assert "switching basic auth off needs a restart" in caplog.text
    assert caplog.text.count("switching basic auth off") == 1  # once, not on every request


def test_failed_logins_slow_down_per_address_and_never_lock_out_the_right_password(monkeypatch, tmp_path):
    checks = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed_password: bytes) -> bool:
        checks.append(password)
        return real_checkpw(password, hashed_password)

    monkeypatch.setattr(web_auth.bcrypt, "checkpw", counting_checkpw)
    with (
        serving(write(tmp_path / "web.yml", users_section(alice=PASSWORD))) as server,
        requests.Session() as s,
    ):
        assert s.get(url(server), auth=("alice", PASSWORD.encode()), timeout=5).status_code == 200
        statuses = [
            s.get(url(server), auth=("alice", f"guess-{n}"), timeout=5).status_code for n in range(200)
        ]
        assert statuses[:5] == [401] * 5  # a few typos are free
        assert statuses.count(429) >= 180
        assert len(checks) <= 1 + 5 + 10  # was 201: a bcrypt check for every guess
        # The right credentials, from the very same address, in the middle of the flood:
        assert s.get(url(server), auth=("alice", PASSWORD.encode()), timeout=5).status_code == 200
        refused = s.get(url(server), auth=("alice", "one-more-guess"), timeout=5)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert s.get(url(server, "/healthz"), timeout=5).text == "ok\n"


def test_the_failure_throttle_is_per_address_and_recovers():
    now = [0.0]
    throttle = web_auth.FailureThrottle(free=3, interval=2.0, clock=lambda: now[0])
    auth = BasicAuth({"alice": hashed(PASSWORD).encode()})
    wrong = "Basic " + base64.b64encode(b"alice:wrong").decode()
    right = "Basic " + base64.b64encode(b"alice:" + PASSWORD.encode()).decode()
    assert [auth.check(wrong, "192.0.2.7", throttle) for _ in range(4)] == ["refused"] * 3 + ["throttled"]
    assert auth.check(right, "192.0.2.7", throttle) == "throttled"  # not verified before: waits like a guess
    assert auth.check(right, "192.0.2.8", throttle) == "allowed"  # another address is not affected
    assert auth.check(right, "192.0.2.7", throttle) == "allowed"  # and once verified, it is never throttled
    assert throttle.retry_after("192.0.2.7") == pytest.approx(2.0)
    now[0] += 2.0
    assert auth.check(wrong, "192.0.2.7", throttle) == "refused"  # one more try per interval
    assert auth.check(wrong, "192.0.2.7", throttle) == "throttled"
    for _ in range(3):  # one machine's IPv6 addresses share a /64
        auth.check(wrong, "2001:db8::1", throttle)
    assert not throttle.may_try("2001:db8::ffff") and throttle.may_try("2001:db8:1::1")
