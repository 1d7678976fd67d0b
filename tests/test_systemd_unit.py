"""contrib/enphase-exporter.service: systemd's own checker reads it, and its settings are the exporter's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from exporter.config import SETTINGS

UNIT = Path(__file__).parent.parent / "contrib" / "enphase-exporter.service"
EXPOSURE_GOAL = 2.0  # systemd's scale: 0 (locked down) to 10 (exposed); "OK" is below 4.5


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_systemd_reads_the_unit_without_complaint_and_rates_it_locked_down(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing: the unit file would go unchecked")
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    # An offline root holding the unit and the program it starts, as installed by the README's steps.
    program = tmp_path / "opt" / "enphase-exporter" / "bin" / "enphase-exporter"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    units = tmp_path / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    shutil.copy(UNIT, units)
    result = subprocess.run(
        [analyze, "security", "--offline=yes", f"--root={tmp_path}", "--no-pager", UNIT.name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stderr == "", result.stderr  # an unknown key or a bad value is reported here
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert exposure is not None, result.stdout[-2000:]
    assert float(exposure.group(1)) <= EXPOSURE_GOAL, result.stdout[-3000:]


def test_the_unit_is_hardened_as_the_readme_says() -> None:
    found = directives(UNIT.read_text())
    for key, value in {
        "DynamicUser": "yes",
        "StateDirectory": "enphase-exporter",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "EnvironmentFile": "/etc/enphase-exporter.env",
    }.items():
        assert found.get(key) == [value], key


def test_the_unit_sets_only_real_settings_and_runs_a_real_command() -> None:
    found = directives(UNIT.read_text())
    known = {spec.env for spec in SETTINGS}
    for assignment in found["Environment"]:
        name = assignment.partition("=")[0]
        assert name in known or name == "PYTHONUNBUFFERED", name
    assert found["ExecStart"] == ["/opt/enphase-exporter/bin/enphase-exporter serve"]
