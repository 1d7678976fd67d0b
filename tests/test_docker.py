"""The Dockerfile, .dockerignore and docker-compose.yml, checked without a Docker daemon.

tests/test_docker_smoke.py builds the image and runs it and the stack on a real engine. The checks here
are the quick ones, and those an engine run cannot make: every file the Dockerfile copies and the compose
file mounts exists (and is in the build context), ports and paths agree with the exporter's settings, the
README and the Grafana provisioning, the health check is Python that really passes against a running
exporter (and fails without one or on a wrong answer), the configuration files the stack mounts pass
promtool and amtool, and `docker compose config` (or a docker-compose binary) parses the compose file.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
import yaml
from stack import DemoExporter
from support import free_port

from exporter import config

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
README = ROOT / "README.md"
PROVISIONING = ROOT / "grafana" / "provisioning"
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"

SETTING_ENVS = {spec.env for spec in config.SETTINGS}
STATE_DIR = "/var/lib/enphase-exporter"

# service: (container port, what the README's Docker section calls it)
SERVICE_PORTS = {
    "exporter": config.DEFAULT_PORT,
    "prometheus": 9090,
    "alertmanager": 9093,
    "grafana": 3000,
    "influxdb": 8086,
}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: run the README's test command (scripts/test.sh)")
        pytest.skip(f"{name} is not installed")
    return path


# ---------------------------------------------------------------------------------------------------
# Dockerfile


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of every instruction, continuation lines joined, comments dropped."""
    joined, pending = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    result = []
    for text in joined:
        keyword, _, arguments = text.strip().partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def only(stage: list[tuple[str, str]], keyword: str) -> str:
    found = [arguments for key, arguments in stage if key == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {found}"
    return found[0]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, arguments in stage:
        if keyword == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", arguments):
                values[key] = value
    return values


def healthcheck_code() -> str:
    arguments = only(final_stage(), "HEALTHCHECK")
    options, _, command = arguments.partition("CMD ")
    assert "--timeout=" in options and "--interval=" in options
    argv = json.loads(command)  # exec form: no shell in the way, and a JSON array
    assert argv[:2] == ["python", "-c"], argv
    return argv[2]


def test_the_build_is_multi_stage_from_pinned_slim_images() -> None:
    steps = instructions()
    args = dict(
        re.fullmatch(r"(\w+)=(\S+)", arguments).groups() for keyword, arguments in steps if keyword == "ARG"
    )
    images = []
    for keyword, arguments in steps:
        if keyword == "FROM":
            image = arguments.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda match: args[match[1]], image))
    assert len(images) >= 2, "a build stage and a runtime stage"
    for image in images:
        tag = image.partition(":")[2]
        assert tag and tag != "latest" and "slim" in tag, image


def test_the_exporter_runs_as_an_unprivileged_user() -> None:
    stage = final_stage()
    user = only(stage, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, f"USER {user}: numeric and not root, so runAsNonRoot can check it"
    created = " ".join(arguments for keyword, arguments in stage if keyword == "RUN")
    assert f"--uid {uid}" in created, "the user is created in the image"
    assert f"--owner enphase --group enphase --mode 0700 {STATE_DIR}" in created


def test_port_entrypoint_and_command() -> None:
    stage = final_stage()
    assert only(stage, "EXPOSE") == str(config.DEFAULT_PORT)
    assert json.loads(only(stage, "ENTRYPOINT")) == ["enphase-exporter"]
    assert json.loads(only(stage, "CMD")) == ["serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert "enphase-exporter" in scripts
    # The default command is a real subcommand of that entry point.
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "usage: enphase-exporter serve" in result.stdout, result.stderr


def test_the_image_is_configured_by_environment_with_its_state_in_one_directory() -> None:
    env = env_of(final_stage())
    settings = {key: value for key, value in env.items() if key.startswith("ENPHASE_")}
    assert set(settings) <= SETTING_ENVS, f"not settings: {sorted(set(settings) - SETTING_ENVS)}"
    assert settings["ENPHASE_LISTEN"] == f":{config.DEFAULT_PORT}"
    assert settings["ENPHASE_SESSION_FILE"].startswith(STATE_DIR + "/")
    assert settings["ENPHASE_INFLUX_QUEUE_DIR"].startswith(STATE_DIR + "/")
    assert only(final_stage(), "WORKDIR") == STATE_DIR
    # Each value is one the exporter accepts.
    loaded = config.load({}, {**settings, "ENPHASE_DEMO": "1"})
    assert loaded.listen_port == config.DEFAULT_PORT
    assert str(loaded.session_file) == settings["ENPHASE_SESSION_FILE"]


def test_the_healthcheck_is_valid_python() -> None:
    compile(healthcheck_code(), "HEALTHCHECK", "exec")


def run_healthcheck(listen: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ENPHASE_")}
    return subprocess.run(
        [sys.executable, "-c", healthcheck_code()],
        env={**env, "ENPHASE_LISTEN": listen},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_healthcheck_passes_against_a_running_exporter(tmp_path: Path) -> None:
    exporter = DemoExporter(tmp_path / "exporter")
    exporter.start()
    try:
        # Every form ENPHASE_LISTEN takes: HOST:PORT, :PORT and PORT.
        for listen in (exporter.address, f":{exporter.port}", str(exporter.port)):
            result = run_healthcheck(listen)
            assert result.returncode == 0, (listen, result.stderr)
    finally:
        exporter.stop()


def test_the_healthcheck_fails_when_nothing_answers() -> None:
    result = run_healthcheck(f"127.0.0.1:{free_port()}")
    assert result.returncode != 0


class _NotTheExporter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"starting\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_healthcheck_fails_on_a_wrong_answer() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotTheExporter)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert run_healthcheck(f"127.0.0.1:{server.server_address[1]}").returncode == 1
    finally:
        server.shutdown()
        server.server_close()


def test_the_healthcheck_passes_against_an_exporter_speaking_https(tmp_path: Path) -> None:
    openssl = require_tool("openssl")
    subprocess.run(
        [
            *(
                openssl,
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=exporter",
            ),
            *("-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt")),
        ],
        check=True,
        capture_output=True,
    )
    web_config = tmp_path / "web.yml"
    web_config.write_text("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n", encoding="utf-8")
    exporter = DemoExporter(tmp_path / "exporter", "--web.config.file", str(web_config), tls=True)
    exporter.start()
    try:
        result = run_healthcheck(exporter.address)
        assert result.returncode == 0, result.stderr + exporter.log_tail()
    finally:
        exporter.stop()


# ---------------------------------------------------------------------------------------------------
# Build context


def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule for the subset of .dockerignore syntax the file uses: the last pattern that matches
    the path or one of its parent directories decides; `!` takes back in; `**/` matches any depth."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        globs = [glob, glob[3:]] if glob.startswith("**/") else [glob]
        if any(fnmatch.fnmatchcase(candidate, g) for candidate in candidates for g in globs):
            result = not negated
    return result


def context_files() -> Iterator[str]:
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT).as_posix()
        if path.is_file() and not relative.startswith((".git/", "grafana/schema/node_modules/")):
            yield relative


def test_the_ignore_rules_behave_as_intended() -> None:
    patterns = ignore_patterns()
    assert not ignored("exporter/cli.py", patterns)
    assert not ignored("exporter/demo/server.py", patterns)
    assert ignored("exporter/__pycache__/cli.cpython-311.pyc", patterns)
    assert ignored("tests/test_docker.py", patterns)
    assert ignored(".env", patterns)
    assert ignored(".git/config", patterns)


def copied_sources() -> list[str]:
    sources = []
    for keyword, arguments in instructions():
        if keyword in ("COPY", "ADD") and "--from=" not in arguments:
            *paths, _destination = arguments.split()
            sources += [path.rstrip("/") for path in paths]
    return sources


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    patterns = ignore_patterns()
    sources = copied_sources()
    assert sources, "the Dockerfile copies nothing"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_the_build_context_is_what_pip_install_needs_and_nothing_else() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    sources = set(copied_sources())
    assert {"pyproject.toml", project["readme"], "exporter"} <= sources
    patterns = ignore_patterns()
    context = {path for path in context_files() if not ignored(path, patterns)}
    package = {path for path in context_files() if path.startswith("exporter/") and path.endswith(".py")}
    assert package <= context, f"left out: {sorted(package - context)}"
    assert context <= package | {"pyproject.toml", project["readme"]}, sorted(context - package)


# ---------------------------------------------------------------------------------------------------
# docker-compose.yml


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def interpolate(text: str, environ: dict[str, str] | None = None) -> str:
    """Compose's `${NAME:-default}` and `${NAME}`, with `environ` standing for the shell and .env."""
    environ = environ or {}

    def value(match: re.Match[str]) -> str:
        return environ.get(match["name"]) or (match["default"] or "")

    return re.sub(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}", value, text)


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def bind_mounts(name: str) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (named volumes left out)."""
    mounts = {}
    for volume in service(name).get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = (ROOT / source).resolve()
    return mounts


def test_the_stack_has_its_services() -> None:
    assert set(compose()["services"]) == set(SERVICE_PORTS)


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_published_ports_match_the_readme(name: str) -> None:
    published = [interpolate(port) for port in service(name)["ports"]]
    container_port = SERVICE_PORTS[name]
    assert published == [f"127.0.0.1:{container_port}:{container_port}"]
    assert f"http://localhost:{container_port}" in README.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(SERVICE_PORTS))
def test_every_mounted_file_exists(name: str) -> None:
    for target, source in bind_mounts(name).items():
        assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
        assert source.is_relative_to(ROOT)


def test_images_are_pinned() -> None:
    for name, definition in compose()["services"].items():
        if "build" in definition:
            continue
        image = definition["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+(\.\d+)?", image), f"{name}: {image} is not pinned"


def test_the_exporter_runs_the_demo_by_default_and_writes_to_influxdb() -> None:
    exporter = service("exporter")
    assert exporter["build"] == "."
    env = {key: interpolate(str(value)) for key, value in exporter["environment"].items()}
    assert set(env) <= SETTING_ENVS, f"not settings: {sorted(set(env) - SETTING_ENVS)}"
    assert env["ENPHASE_DEMO"] == "1"
    assert env["ENPHASE_INFLUX_URL"] == f"http://influxdb:{SERVICE_PORTS['influxdb']}"
    assert env["ENPHASE_INFLUX_DATABASE"] == service("influxdb")["environment"]["INFLUXDB_DB"] == "enphase"
    # The defaults load as they are: the demo, with the InfluxDB output on.
    settings = config.load({}, env)
    assert settings.demo and settings.influx is not None and settings.influx.database == "enphase"
    # ... and a real account is the same file with .env filled in.
    account = {"ENPHASE_DEMO": "0", "ENPHASE_EMAIL": "you@example.com", "ENPHASE_PASSWORD": "secret"}
    real = config.load(
        {}, {key: interpolate(str(value), account) for key, value in exporter["environment"].items()}
    )
    assert not real.demo and real.email == "you@example.com"
    # The state directory of the image is a volume, so sessions and queued points survive a restart.
    volumes = [volume.split(":") for volume in exporter["volumes"]]
    assert [source for source, target in volumes if target == STATE_DIR] == ["exporter-state"]
    assert "exporter-state" in compose()["volumes"]


def reconstruct(name: str, root: Path) -> Path:
    """The service's bind mounts copied to where the container sees them, under `root`."""
    for target, source in bind_mounts(name).items():
        destination = root / target.lstrip("/")
        if source.is_dir():
            shutil.copytree(source, destination)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, destination)
    return root


def flag(command: list[str], name: str) -> str:
    (value,) = [item.split("=", 1)[1] for item in command if item.startswith(f"--{name}=")]
    return value


def test_prometheus_config_scrapes_the_exporter_and_loads_the_rules(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    prometheus = service("prometheus")
    root = reconstruct("prometheus", tmp_path)
    config_file = root / flag(prometheus["command"], "config.file").lstrip("/")
    result = subprocess.run([promtool, "check", "config", str(config_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in loaded["scrape_configs"]}
    targets = [target for group in jobs["enphase"]["static_configs"] for target in group["targets"]]
    assert targets == [f"exporter:{SERVICE_PORTS['exporter']}"]
    (rules,) = loaded["rule_files"]
    assert (config_file.parent / rules).read_bytes() == (ROOT / "prometheus" / "alerts.yml").read_bytes()
    managers = loaded["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert managers == [f"alertmanager:{SERVICE_PORTS['alertmanager']}"]
    # Grafana's $__rate_interval assumes the scrape interval the data source names.
    (prometheus_source,) = [s for s in provisioned_datasources() if s["type"] == "prometheus"]
    assert loaded["global"]["scrape_interval"] == prometheus_source["jsonData"]["timeInterval"]


def test_alertmanager_config_is_valid(tmp_path: Path) -> None:
    amtool = require_tool("amtool")
    alertmanager = service("alertmanager")
    root = reconstruct("alertmanager", tmp_path)
    config_file = root / flag(alertmanager["command"], "config.file").lstrip("/")
    result = subprocess.run([amtool, "check-config", str(config_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def provisioned_datasources() -> list[dict[str, Any]]:
    path = PROVISIONING / "datasources" / "datasources.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]


def test_grafana_gets_the_provisioning_and_the_dashboards() -> None:
    mounts = bind_mounts("grafana")
    assert mounts["/etc/grafana/provisioning/datasources"] == PROVISIONING / "datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == PROVISIONING / "dashboards"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text(encoding="utf-8"))
    for provider in providers["providers"]:
        assert mounts[provider["options"]["path"]] == DASHBOARD_DIR
    home = service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARD_DIR / Path(home).name).exists() and Path(home).parent.as_posix() in mounts


def test_the_data_sources_point_at_the_stack() -> None:
    for source in provisioned_datasources():
        match = re.fullmatch(r"http://(\w+):(\d+)", source["url"])
        assert match, source["url"]
        assert int(match[2]) == SERVICE_PORTS[match[1]], source["url"]
    influx = next(source for source in provisioned_datasources() if source["type"] == "influxdb")
    assert influx["jsonData"]["dbName"] == service("influxdb")["environment"]["INFLUXDB_DB"]


def dashboard_datasource_needs() -> Iterator[tuple[str, str, str]]:
    """(dashboard, kind, value): the plugin type each `datasource` variable lists, and any fixed uid."""
    for path in sorted(DASHBOARD_DIR.rglob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for variable in board["templating"]["list"]:
            if variable["type"] == "datasource":
                yield path.name, "type", variable["query"]
        for uid in fixed_datasource_uids(board):
            yield path.name, "uid", uid


def fixed_datasource_uids(node: Any) -> Iterator[str]:
    """Uids of `datasource` references that name a data source rather than a variable."""
    if isinstance(node, dict):
        reference = node.get("datasource")
        if isinstance(reference, dict) and not str(reference.get("uid", "$")).startswith("$"):
            yield reference["uid"]
        for value in node.values():
            yield from fixed_datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from fixed_datasource_uids(value)


def test_every_dashboard_finds_its_data_source() -> None:
    sources = provisioned_datasources()
    needs = list(dashboard_datasource_needs())
    assert any(kind == "type" for _, kind, _ in needs)
    for name, kind, value in needs:
        assert any(source[kind] == value for source in sources), (
            f"{name}: no provisioned data source {kind} {value}"
        )


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return [require_tool("docker-compose")]


def compose_config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("ENPHASE_", "PUBLISH_"))}
    return subprocess.run(
        [*compose_command(), "--file", str(path), "config"],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=120,
    )


def test_docker_compose_parses_the_file() -> None:
    result = compose_config(COMPOSE)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    exporter = resolved["services"]["exporter"]
    assert str(exporter["environment"]["ENPHASE_DEMO"]) == "1"
    for volume in resolved["services"]["grafana"]["volumes"]:
        source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
        if source.startswith("/"):
            assert Path(source).exists(), source


def test_docker_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = compose()
    broken["services"]["grafana"]["ports"] = {"3000": "3000"}  # a mapping where a list belongs
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = compose_config(path)
    assert result.returncode != 0
    assert "ports" in result.stderr
