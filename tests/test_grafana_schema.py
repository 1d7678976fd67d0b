"""The dashboards in grafana/dashboards/ against Grafana's own types.

grafana/schema/ pins @grafana/schema (the types Grafana publishes for its dashboard JSON and its panel
plugins) at the version docker-compose.yml runs. scripts/test.sh installs it with `npm ci` and turns the
types into JSON Schemas (`npm run generate`, written to grafana/schema/build/schemas.json). Without that
file the tests are skipped locally and fail when the CI environment variable is set.

The dashboard type leaves a panel's `options` and `fieldConfig.defaults.custom` open, so each panel is
also checked against the options and field config of its own panel type, and every field override
against the property it overrides.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "grafana" / "schema"
SCHEMAS = SCHEMA_DIR / "build" / "schemas.json"
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
COMPOSE = ROOT / "docker-compose.yml"

Schema = dict[str, Any]


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    if not SCHEMAS.exists():
        message = (
            f"{SCHEMAS.relative_to(ROOT)} is missing: run `npm ci && npm run generate` in grafana/schema "
            "(scripts/test.sh does)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    generated = json.loads(SCHEMAS.read_text(encoding="utf-8"))
    # A schema left over from before a version bump would check against the wrong Grafana.
    assert generated["grafana"] == pinned_version(), "schemas.json is stale: run `npm run generate` again"
    return generated


def pinned_version() -> str:
    return json.loads((SCHEMA_DIR / "package.json").read_text(encoding="utf-8"))["devDependencies"][
        "@grafana/schema"
    ]


def at(schema: Schema, pointer: str) -> Schema:
    """The part of a generated schema at a JSON pointer into its definitions, with the definitions."""
    return {"$ref": f"#/definitions/{pointer}", "definitions": schema["definitions"]}


def errors(schema: Schema, instance: Any, where: str) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [describe(error, where) for error in validator.iter_errors(instance)]


def describe(error: jsonschema.ValidationError, where: str) -> str:
    # A panel is "Panel or RowPanel": name what is wrong in the branch that got furthest into the panel
    # rather than only "is not valid under any of the given schemas".
    while error.context:
        error = max(error.context, key=lambda inner: len(inner.absolute_path))
    return f"{where}/{'/'.join(map(str, error.absolute_path))}: {error.message}"


def all_panels(board: dict) -> Iterator[dict]:
    for item in board.get("panels", []):
        yield item
        yield from item.get("panels", [])  # collapsed rows keep their panels inside


def definition_name(schema: Schema) -> str:
    return schema["$ref"].rsplit("/", 1)[1]


def problems(board: dict, generated: dict[str, Any]) -> list[str]:
    """Every way `board` differs from Grafana's types; empty when it conforms."""
    found = errors(generated["dashboard"], board, "")
    dashboard_schema = generated["dashboard"]
    for item in all_panels(board):
        if item.get("type") == "row":
            continue
        where = f"panel {item.get('title')!r}"
        plugin = generated["panels"].get(item.get("type"))
        if plugin is None:
            found.append(f"{where}: panel type {item.get('type')!r} is not one the schemas cover")
            continue
        found += errors(plugin["options"], item.get("options", {}), f"{where} options")
        field_config = item.get("fieldConfig", {})
        custom = field_config.get("defaults", {}).get("custom")
        custom_schema = plugin["fieldConfig"]
        if custom_schema is None:
            if custom:
                found.append(f"{where}: {item['type']} panels have no custom field options")
        elif custom is not None:
            found += errors(custom_schema, custom, f"{where} fieldConfig/defaults/custom")
        for number, rule in enumerate(field_config.get("overrides", [])):
            for prop in rule.get("properties", []):
                found += override_problems(
                    prop, dashboard_schema, custom_schema, f"{where} override {number}"
                )
    return found


def override_problems(
    prop: dict, dashboard_schema: Schema, custom_schema: Schema | None, where: str
) -> list[str]:
    """An override property `custom.x` must fit the panel's field config `x`; any other id the
    dashboard-wide field config property of that name."""
    prop_id = prop.get("id", "")
    if prop_id.startswith("custom."):
        name, schema = prop_id.removeprefix("custom."), custom_schema
    else:
        name, schema = prop_id, dashboard_schema
    if schema is None:
        return [f"{where}: {prop_id!r} overrides a panel type without custom field options"]
    owner = "FieldConfig" if schema is dashboard_schema else definition_name(schema)
    if name not in schema["definitions"][owner]["properties"]:
        return [f"{where}: {prop_id!r} is not a field config property"]
    return errors(at(schema, f"{owner}/properties/{name}"), prop.get("value"), f"{where} {prop_id}")


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.rglob("*.json"))


@pytest.mark.parametrize(
    "path", dashboard_files(), ids=lambda path: path.relative_to(DASHBOARD_DIR).as_posix()
)
def test_dashboard_matches_grafanas_types(path: Path, schemas: dict[str, Any]) -> None:
    board = json.loads(path.read_text(encoding="utf-8"))
    assert problems(board, schemas) == []


def test_every_panel_type_in_use_is_covered(schemas: dict[str, Any]) -> None:
    used = {
        item["type"]
        for path in dashboard_files()
        for item in all_panels(json.loads(path.read_text(encoding="utf-8")))
        if item["type"] != "row"
    }
    assert used <= set(schemas["panels"])


# Each mutation of a real dashboard breaks one rule of Grafana's types; the check must name it.
def first(board: dict, kind: str) -> dict:
    return next(item for item in all_panels(board) if item["type"] == kind)


def add_top_level_field(board: dict) -> None:
    board["refreshInterval"] = "1m"


def schema_version_as_text(board: dict) -> None:
    board["schemaVersion"] = str(board["schemaVersion"])


def variable_with_definition(board: dict) -> None:
    board["templating"]["list"][-1]["definition"] = "label_values(enphase_up, site_id)"


def gauge_without_shape(board: dict) -> None:
    del first(board, "gauge")["options"]["shape"]


def unknown_draw_style(board: dict) -> None:
    first(board, "timeseries")["fieldConfig"]["defaults"]["custom"]["drawStyle"] = "dots"


def unknown_stat_option(board: dict) -> None:
    first(board, "stat")["options"]["sparkline"] = True


def bad_line_style_override(board: dict) -> None:
    panel = first(board, "timeseries")
    panel["fieldConfig"]["overrides"] = [
        {
            "matcher": {"id": "byFrameRefID", "options": "A"},
            "properties": [{"id": "custom.lineStyle", "value": {"fill": "zigzag"}}],
        }
    ]


def bad_color_override(board: dict) -> None:
    panel = first(board, "timeseries")
    panel["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byFrameRefID", "options": "A"}, "properties": [{"id": "color", "value": "red"}]}
    ]


def panel_type_not_covered(board: dict) -> None:
    first(board, "stat")["type"] = "piechart"


def threshold_without_color(board: dict) -> None:
    del first(board, "gauge")["fieldConfig"]["defaults"]["thresholds"]["steps"][0]["color"]


BREAKAGES: dict[str, tuple[Callable[[dict], None], str]] = {
    # name: (mutation, text the report must contain)
    "unknown dashboard field": (add_top_level_field, "'refreshInterval' was unexpected"),
    "schemaVersion as text": (schema_version_as_text, "/schemaVersion: "),
    "variable definition": (variable_with_definition, "'definition' was unexpected"),
    "gauge without shape": (gauge_without_shape, "'shape' is a required property"),
    "unknown draw style": (unknown_draw_style, "drawStyle: 'dots' is not one of"),
    "unknown stat option": (unknown_stat_option, "'sparkline' was unexpected"),
    "bad custom override": (bad_line_style_override, "custom.lineStyle"),
    "bad color override": (bad_color_override, "override 0 color"),
    "uncovered panel type": (panel_type_not_covered, "'piechart' is not one the schemas cover"),
    "threshold without color": (threshold_without_color, "'color' is a required property"),
}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_a_broken_dashboard_is_rejected(name: str, schemas: dict[str, Any]) -> None:
    board = json.loads((DASHBOARD_DIR / "site-overview.json").read_text(encoding="utf-8"))
    assert problems(board, schemas) == [], "the unbroken dashboard must pass for this test to mean anything"
    broken = copy.deepcopy(board)
    mutate, expected = BREAKAGES[name]
    mutate(broken)
    found = problems(broken, schemas)
    assert any(expected in problem for problem in found), found


def test_the_schema_is_the_one_of_the_grafana_compose_runs() -> None:
    images = [
        service["image"]
        for service in yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"].values()
    ]
    grafana = [image for image in images if re.match(r"grafana/grafana(-oss)?:", image)]
    assert grafana == [f"grafana/grafana:{pinned_version()}"]


def test_the_lock_file_pins_what_package_json_asks_for() -> None:
    package = json.loads((SCHEMA_DIR / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((SCHEMA_DIR / "package-lock.json").read_text(encoding="utf-8"))
    wanted = package["devDependencies"]
    assert lock["packages"][""]["devDependencies"] == wanted
    for name, version in wanted.items():
        # Exact versions only: a range would let `npm ci` on another day check against other types.
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name}: {version!r} is not an exact version"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
