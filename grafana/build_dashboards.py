"""Write the Grafana dashboards in grafana/dashboards/ from the panel tables in this file.

    python grafana/build_dashboards.py          # rewrite the JSON files
    python grafana/build_dashboards.py --check  # exit 1 if a committed file differs from its table

The JSON files are generated; edit this script, run it, and commit both. Only the standard library is
used, so the script runs wherever the tests run.

Each dashboard is described once, for both data sources: a panel has one description (title, type, unit,
layout, options) and a query per dialect, PromQL for the Prometheus version (grafana/dashboards/*.json) and
InfluxQL for the InfluxDB version (grafana/dashboards/influxdb/*.json). A panel without a query in a
dialect is left out of that version; a setting that differs between the versions is a `Dialects` value.

Conventions every panel follows (tests/test_alert_rules.py checks them):
- the data source is the `datasource` template variable, never a fixed uid;
- every panel sets a unit; energy is converted from joules to kWh in the query (`KWH`), timestamps are
  turned into milliseconds (`MS`) for Grafana's `dateTimeFromNow`;
- queries use only metric names the exporter documents.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
SCHEMA_VERSION = 39

# ---------------------------------------------------------------------------------------------------
# Two dialects, one description

Dialect = Literal["prometheus", "influxdb"]
T = TypeVar("T")


@dataclass(frozen=True)
class Dialects(Generic[T]):
    """A setting that differs between the Prometheus and the InfluxDB version of a dashboard; chosen
    when a version is written (`resolve`)."""

    prometheus: T
    influxdb: T


class _Omit:
    """A dict entry whose value resolves to OMIT is left out of that version."""


OMIT: Any = _Omit()


def each(value: Any, function: Callable[[Any], Any]) -> Any:
    """`function` applied to a setting, or to both of a `Dialects` setting's values."""
    if isinstance(value, Dialects):
        return Dialects(function(value.prometheus), function(value.influxdb))
    return function(value)


def resolve(node: Any, dialect: Dialect) -> Any:
    """The JSON of one dialect's version: every `Dialects` value replaced by that dialect's."""
    if isinstance(node, Dialects):
        return resolve(getattr(node, dialect), dialect)
    if isinstance(node, dict):
        resolved = {key: resolve(value, dialect) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not OMIT}
    if isinstance(node, list):
        return [value for value in (resolve(value, dialect) for value in node) if value is not OMIT]
    return node


DS = {"type": "prometheus", "uid": "${datasource}"}
DS_INFLUX = {"type": "influxdb", "uid": "${datasource}"}
DATASOURCE = Dialects(DS, DS_INFLUX)

# ---------------------------------------------------------------------------------------------------
# PromQL vocabulary

SITE = 'site_id=~"$site_id"'
EV = 'site_id=~"$site_id", serial=~"$serial"'
KWH = " / 3600000"  # joules to kWh: 1 kWh = 3 600 000 J (the same text in both dialects)
MS = " * 1000"  # Unix seconds to the milliseconds Grafana's time units expect
RATE = "[$__rate_interval]"
# Daily bars: Grafana evaluates a 1d-step query at midnights of the dashboard's time zone (it rounds the
# range down to whole steps). A plain [1d] window at midnight M would put the day before M on the bar
# labelled M and never show today; `offset -1d` makes the bar at M the day that starts at M, today so far
# included.
PER_DAY = "[1d] offset -1d"


def q(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> dict:
    """One Prometheus query; `refId` is filled in by the panel."""
    target: dict[str, Any] = {"datasource": DS, "editorMode": "code", "expr": expr, "legendFormat": legend}
    if instant or table:
        target.update(instant=True, range=False)
    else:
        target.update(instant=False, range=True)
    if table:
        target["format"] = "table"
    return target


# ---------------------------------------------------------------------------------------------------
# InfluxQL vocabulary
#
# The InfluxDB versions read what the exporter's InfluxDB output writes (exporter/render_influx.py): the
# latest readings in enphase_site, enphase_battery and enphase_ev_charger, and the cloud's own history in
# enphase_site_interval (15-minute buckets) and enphase_site_daily (one point per local day). The history
# lets these dashboards show whole days, even from before the exporter ran.

IN_SITE = '"site_id" =~ /^$site_id$/ AND $timeFilter'
IN_EV = '"site_id" =~ /^$site_id$/ AND "serial" =~ /^$serial$/ AND $timeFilter'
BUCKET_SECONDS = 900  # the length of an enphase_site_interval bucket


def iq(query: str, alias: str = "", *, table: bool = False) -> dict:
    """One InfluxQL query; `refId` is filled in by the panel."""
    target: dict[str, Any] = {
        "datasource": DS_INFLUX,
        "query": query,
        "rawQuery": True,
        "resultFormat": "table" if table else "time_series",
    }
    if alias:
        target["alias"] = alias
    return target


def latest(measurement: str, fields: list[tuple[str, str]], where: str = IN_SITE, scale: str = "") -> str:
    """The newest value of each (field, alias) in the time range."""
    columns = ", ".join(f'last("{field}"){scale} AS "{alias}"' for field, alias in fields)
    return f'SELECT {columns} FROM "{measurement}" WHERE {where}'


# ---------------------------------------------------------------------------------------------------
# Panel building blocks

Targets = list[dict] | dict | None


def numbered(targets: Targets) -> list[dict] | None:
    if targets is None:
        return None
    if isinstance(targets, dict):
        targets = [targets]
    return [dict(target, refId=chr(ord("A") + i)) for i, target in enumerate(targets)]


def only(dialect: Dialect, item: dict) -> dict:
    """A panel placed in one version only: where the two versions lay it out differently."""
    targets: Dialects = item["targets"]
    return {
        **item,
        "targets": Dialects(
            targets.prometheus if dialect == "prometheus" else None,
            targets.influxdb if dialect == "influxdb" else None,
        ),
    }


def value_mappings(mapping: dict[int, tuple[str, str]] | dict[str, tuple[str, str]]) -> list[dict]:
    options = {
        str(value): {"text": text, "color": color, "index": index}
        for index, (value, (text, color)) in enumerate(mapping.items())
    }
    return [{"type": "value", "options": options}]


def thresholds(*steps: tuple[float | None, str]) -> dict:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


GREEN = thresholds((None, "green"))
YES_NO = {0: ("no", "transparent"), 1: ("yes", "green")}
UP_DOWN = {0: ("down", "red"), 1: ("up", "green")}


def override(ref_id: str, **properties: Any) -> dict:
    """Field overrides for the series of one query, e.g. override("B", **DASHED)."""
    return {
        "matcher": {"id": "byFrameRefID", "options": ref_id},
        "properties": [{"id": key.replace("__", "."), "value": value} for key, value in properties.items()],
    }


def fixed(color: str) -> dict:
    return {"mode": "fixed", "fixedColor": color}


def colored(field: str, color: str) -> dict:
    """The colour of the field named `field` (an InfluxQL alias)."""
    return {
        "matcher": {"id": "byName", "options": field},
        "properties": [{"id": "color", "value": fixed(color)}],
    }


DASHED = {"custom__lineStyle": {"fill": "dash", "dash": [10, 10]}, "custom__fillOpacity": 0}
DOTTED = {"custom__lineStyle": {"fill": "dot", "dash": [0, 10]}, "custom__fillOpacity": 0}
Mappings = dict[int, tuple[str, str]] | dict[str, tuple[str, str]]


def panel(
    kind: str,
    title: str,
    unit: str,
    prom: Targets,
    influx: Targets,
    *,
    w: int | Dialects[int],
    h: int | Dialects[int],
    description: str | Dialects[str] = "",
    options: dict | None = None,
    custom: dict | None = None,
    defaults: dict | None = None,
    overrides: list[dict] | Dialects[list[dict]] | None = None,
    **extra: Any,
) -> dict:
    """One panel of both versions: `prom` and `influx` are its queries in each dialect, None where the
    panel is not in that version."""
    field_defaults = {"unit": unit, "mappings": [], "thresholds": GREEN, "color": {"mode": "thresholds"}}
    if custom is not None:
        field_defaults["custom"] = custom
    field_defaults.update(defaults or {})
    result = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
        "fieldConfig": {"defaults": field_defaults, "overrides": overrides or []},
        "options": options or {},
        "targets": Dialects(numbered(prom), numbered(influx)),
    }
    result.update(extra)
    return result


LEGEND = {"showLegend": True, "displayMode": "list", "placement": "bottom", "calcs": []}
LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}


def timeseries(
    title: str,
    unit: str,
    prom: Targets,
    *,
    influx: Targets = None,
    w: int | Dialects[int] = 12,
    h: int | Dialects[int] = 8,
    step: bool = False,
    bars: bool = False,
    stack: bool = False,
    fill: int = 10,
    min_max: tuple[float, float] | None = None,
    palette: bool = True,
    **kwargs: Any,
) -> dict:
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineInterpolation": "stepAfter" if step else "linear",
        "lineWidth": 1,
        "fillOpacity": 80 if bars else fill,
        "showPoints": "never",
        "spanNulls": False,
        "axisPlacement": "auto",
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    defaults = kwargs.pop("defaults", {})
    if palette:
        defaults.setdefault("color", {"mode": "palette-classic"})
    if min_max is not None:
        defaults.update(min=min_max[0], max=min_max[1])
    options = {"legend": LEGEND, "tooltip": {"mode": "multi", "sort": "none"}}
    return panel(
        "timeseries",
        title,
        unit,
        prom,
        influx,
        w=w,
        h=h,
        options=options,
        custom=custom,
        defaults=defaults,
        **kwargs,
    )


def stat(
    title: str,
    unit: str,
    prom: Targets,
    *,
    influx: Targets = None,
    w: int | Dialects[int] = 4,
    h: int | Dialects[int] = 4,
    mappings: Mappings | Dialects[Mappings] | None = None,
    color: str | None = None,
    text_mode: str | Dialects[str] = "auto",
    graph: bool = False,
    no_value: str | Dialects[str] | None = None,
    decimals: int | None = None,
    fields: str | Dialects[str] = "",
    **kwargs: Any,
) -> dict:
    """`fields`: a regular expression of the fields to show; empty means every numeric field, so a text
    field (an InfluxDB string) needs its name here."""
    defaults = kwargs.pop("defaults", {})
    if mappings is not None:
        defaults["mappings"] = each(mappings, value_mappings)
    if color is not None:
        defaults["color"] = fixed(color)
    if no_value is not None:
        defaults["noValue"] = no_value
    if decimals is not None:
        defaults["decimals"] = decimals
    options = {
        "reduceOptions": dict(LAST, fields=fields),
        "orientation": "auto",
        "textMode": text_mode,
        "colorMode": "value" if (mappings or color or "thresholds" in defaults) else "none",
        "graphMode": "area" if graph else "none",
        "justifyMode": "auto",
        "wideLayout": True,
        "showPercentChange": False,
        "percentChangeColorMode": "standard",
    }
    return panel("stat", title, unit, prom, influx, w=w, h=h, options=options, defaults=defaults, **kwargs)


def state_timeline(
    title: str,
    prom: Targets,
    mappings: Mappings | Dialects[Mappings],
    *,
    influx: Targets = None,
    w: int | Dialects[int] = 24,
    h: int | Dialects[int] = 6,
    **kwargs: Any,
) -> dict:
    options = {
        "mergeValues": True,
        "showValue": "auto",
        "alignValue": "left",
        "rowHeight": 0.9,
        "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom", "calcs": []},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    defaults = {"mappings": each(mappings, value_mappings), "color": {"mode": "thresholds"}}
    defaults.update(kwargs.pop("defaults", {}))
    custom = {"fillOpacity": 80, "lineWidth": 0}
    return panel(
        "state-timeline",
        title,
        kwargs.pop("unit", "none"),
        prom,
        influx,
        w=w,
        h=h,
        options=options,
        custom=custom,
        defaults=defaults,
        **kwargs,
    )


def bargauge(
    title: str,
    unit: str,
    prom: Targets,
    *,
    influx: Targets = None,
    w: int | Dialects[int] = 6,
    h: int | Dialects[int] = 8,
    **kwargs: Any,
) -> dict:
    options = {
        "reduceOptions": LAST,
        "orientation": "horizontal",
        "displayMode": "gradient",
        "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom", "calcs": []},
        "valueMode": "color",
        "namePlacement": "auto",
        "showUnfilled": True,
        "sizing": "auto",
        "minVizHeight": 16,
        "minVizWidth": 8,
        "maxVizHeight": 300,
    }
    kwargs.setdefault("defaults", {"color": {"mode": "continuous-GrYlRd"}})
    return panel("bargauge", title, unit, prom, influx, w=w, h=h, options=options, **kwargs)


def gauge(
    title: str,
    unit: str,
    prom: Targets,
    *,
    influx: Targets = None,
    w: int | Dialects[int] = 4,
    h: int | Dialects[int] = 5,
    **kwargs: Any,
) -> dict:
    options = {
        "reduceOptions": LAST,
        "orientation": "auto",
        "showThresholdLabels": False,
        "showThresholdMarkers": True,
        "sizing": "auto",
        "minVizHeight": 75,
        "minVizWidth": 75,
        # Grafana 12.4 requires the options of its redrawn gauge (tests/test_grafana_schema.py). These are
        # its defaults, which draw the classic gauge; older Grafana versions ignore them.
        "shape": "gauge",
        "barShape": "flat",
        "barWidthFactor": 0.5,
        "segmentCount": 1,
        "segmentSpacing": 0.3,
        "effects": {},
    }
    return panel("gauge", title, unit, prom, influx, w=w, h=h, options=options, **kwargs)


def info_table(
    title: str,
    prom: Targets,
    columns: list[str] | Dialects[list[str]],
    *,
    influx: Targets = None,
    w: int | Dialects[int] = 12,
    h: int | Dialects[int] = 6,
    **kwargs: Any,
) -> dict:
    """A table of the labels of an `_info` metric (or the text fields of a measurement), one row per
    series, showing `columns` in order."""
    options = {"showHeader": True, "cellHeight": "sm", "frameIndex": 0}
    transformations = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {
                    "Time": True,
                    "Value": True,
                    "__name__": True,
                    "job": True,
                    "instance": True,
                },
                "indexByName": each(columns, lambda names: {column: i for i, column in enumerate(names)}),
                "renameByName": {},
            },
        },
    ]
    return panel(
        "table",
        title,
        "none",
        prom,
        influx,
        w=w,
        h=h,
        options=options,
        transformations=transformations,
        **kwargs,
    )


# ---------------------------------------------------------------------------------------------------
# Dashboard frame


def datasource_variable(kind: str) -> dict:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": kind,
        "regex": "",
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "skipUrlSync": False,
    }


DATASOURCE_VARIABLE = Dialects(datasource_variable("prometheus"), datasource_variable("influxdb"))


def query_variable(name: str, label: str, query: str, *, multi: bool) -> dict:
    variable = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        # No `definition`: Grafana's dashboard schema has no such field (the editor fills it in for its
        # own display); the query itself is `query.query`.
        "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "regex": "",
        "hide": 0,
        "includeAll": multi,
        "multi": multi,
        "options": [],
        "refresh": 2,
        "skipUrlSync": False,
        "sort": 1,
    }
    if multi:
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def influx_variable(name: str, label: str, query: str, *, multi: bool) -> dict:
    variable = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS_INFLUX,
        "query": query,
        "regex": "",
        "hide": 0,
        "includeAll": multi,
        "multi": multi,
        "options": [],
        "refresh": 1,
        "skipUrlSync": False,
        "sort": 1,
    }
    if multi:
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


SITE_VARIABLE = Dialects(
    query_variable("site_id", "Site", "label_values(enphase_up, site_id)", multi=False),
    influx_variable(
        "site_id", "Site", 'SHOW TAG VALUES FROM "enphase_site" WITH KEY = "site_id"', multi=False
    ),
)


def layout(rows: list[list[dict]]) -> list[dict]:
    """Place panels left to right, row after row; each row is as tall as its tallest panel."""
    placed, y, panel_id = [], 0, 1
    for row in rows:
        x = 0
        for item in row:
            grid = item["gridPos"]
            if x + grid["w"] > 24:
                raise ValueError(f"row too wide at panel {item['title']!r}")
            placed.append({"id": panel_id, **item, "gridPos": dict(grid, x=x, y=y)})
            x += grid["w"]
            panel_id += 1
        y += max(item["gridPos"]["h"] for item in row)
    return placed


@dataclass(frozen=True)
class Dashboard:
    """A dashboard of both versions; `rows` of panels, each panel in the versions it has queries for."""

    uid: str | Dialects[str]
    title: str | Dialects[str]
    description: str | Dialects[str]
    variables: list[dict | Dialects[dict]]
    rows: list[list[dict]]

    def version(self, dialect: Dialect) -> dict:
        rows = [[resolve(item, dialect) for item in row] for row in self.rows]
        rows = [[item for item in row if item["targets"] is not None] for row in rows]
        return resolve(
            {
                "uid": self.uid,
                "title": self.title,
                "description": self.description,
                "tags": ["enphase"] if dialect == "prometheus" else ["enphase", "influxdb"],
                "id": None,
                "version": 1,
                "schemaVersion": SCHEMA_VERSION,
                "editable": True,
                "graphTooltip": 1,
                "liveNow": False,
                "fiscalYearStartMonth": 0,
                "weekStart": "",
                "timezone": "browser",
                "refresh": "1m",
                "time": {"from": "now-24h", "to": "now"},
                "timepicker": {},
                # Grafana adds its built-in annotation query itself.
                "annotations": {"list": []},
                "links": [
                    {
                        "type": "dashboards",
                        "title": "Enphase dashboards",
                        "tags": ["enphase"],
                        "asDropdown": True,
                        "includeVars": True,
                        "keepTime": True,
                        "icon": "external link",
                        "targetBlank": False,
                        "tooltip": "",
                        "url": "",
                    }
                ],
                "templating": {"list": self.variables},
                "panels": layout([row for row in rows if row]),
            },
            dialect,
        )


# ---------------------------------------------------------------------------------------------------
# Site overview

# (title, metric stem, InfluxDB measurement of the latest readings, its field stem, colour)
SITE_FLOWS = [
    ("Solar production", "site_production", "enphase_site", "production", "yellow"),
    ("Consumption", "site_consumption", "enphase_site", "consumption", "blue"),
    ("Grid import", "site_grid_import", "enphase_site", "grid_import", "red"),
    ("Grid export", "site_grid_export", "enphase_site", "grid_export", "green"),
    ("Battery charge", "battery_charge", "enphase_battery", "charge", "purple"),
    ("Battery discharge", "battery_discharge", "enphase_battery", "discharge", "orange"),
]
# Flows and loads the cloud can report; a site shows the ones it measures (InfluxDB fields; the
# Prometheus versions are labels of one metric).
FLOW_FIELDS = [
    ("solar", "home"),
    ("solar", "battery"),
    ("solar", "grid"),
    ("battery", "home"),
    ("battery", "grid"),
    ("grid", "battery"),
    ("grid", "home"),
]
LOADS = ["evse", "heatpump", "water_heater"]


# ---------------------------------------------------------------------------------------------------
# Live power, PromQL: the live stream (a frame a second), with the 15-minute bucket power as the fallback
#
# A live query reads a site's live series while its stream delivers frames (enphase_live_stream_up == 1)
# and the bucket power otherwise: where the stream is off, refused or broken. The test is the stream's
# state rather than whether the live series exist, so the fallback works whether the exporter drops the
# live series of a stopped stream or keeps their last values (enphase_site_live_last_frame_timestamp_seconds
# tells how old they are). Both sides are aggregated `by (site_id)`: the live series carry a `meter` or
# `flow` label that the bucket series lack, and with unequal label sets `or` would keep both.

LIVE_UP = f"enphase_live_stream_up{{{SITE}}} == 1"


def live_meter(meter: str) -> str:
    """The latest frame's power of one meter: grid > 0 imports, storage > 0 discharges."""
    return f'sum by (site_id) (enphase_site_live_power_watts{{{SITE}, meter="{meter}"}})'


def live_flow_power(flow: str) -> str:
    """Mean power of one energy flow of the stream over the rate window, exact at any scrape interval."""
    return f'sum by (site_id) (rate(enphase_site_live_energy_joules_total{{{SITE}, flow="{flow}"}}{RATE}))'


def live_flow_energy(flow: str) -> str:
    counter = f'enphase_site_live_energy_joules_total{{{SITE}, flow="{flow}"}}'
    return f"sum by (site_id) (increase({counter}[$__range]))"


def bucket_power(stem: str) -> str:
    return f"sum by (site_id) (enphase_{stem}_power_watts{{{SITE}}})"


def live_or_bucket(live: str, bucket: str) -> str:
    return f"{live}\n  and on (site_id) {LIVE_UP}\nor on (site_id)\n  {bucket}"


def positive_part(expr: str) -> str:
    return f"clamp_min({expr}, 0)"


def negative_part(expr: str) -> str:
    """The size of the negative part: export from grid power, charge from storage power."""
    return f"clamp_min(-{expr}, 0)"


def smaller(a: str, b: str) -> str:
    """The smaller of two series of the same labels, element by element."""
    return f"({a} + {b} - abs({a} - {b})) / 2"


def self_sufficiency(grid_import: str, load: str) -> str:
    """Share of the home's consumption met by solar and battery: 1 - grid import / consumption, within
    0..1 (grid power that charges the battery counts as import, so a battery charged from the grid can
    take the share below 0). A range without consumption has no share (0 / 0), so `or` passes on."""
    return f"clamp(\n  1 - {grid_import}\n    / ({load} > 0),\n  0, 1\n)"


SELF_SUFFICIENCY = (
    self_sufficiency(live_flow_energy("grid_import"), live_flow_energy("load_consumption"))
    + "\nor on (site_id)\n"
    + self_sufficiency(
        f"sum by (site_id) (increase(enphase_site_grid_import_joules_total{{{SITE}}}[$__range]))",
        f"sum by (site_id) (increase(enphase_site_consumption_joules_total{{{SITE}}}[$__range]))",
    )
)


def state_code(metric: str, selector: str, label: str, states: list[tuple[str, str]], by: str) -> str:
    """A state set as one series per `by` whose value is the number of its current state (1, 2, ...): a
    state timeline needs a value, and the weighted state set sums to the current state's number."""
    weighted = "\n  or ".join(
        f'{code} * {metric}{{{selector}, {label}="{state}"}}'
        for code, (state, _) in enumerate(states, start=1)
    )
    return f"sum by ({by}) (\n  {weighted}\n)"


def state_mappings(states: list[tuple[str, str]], none: str) -> Dialects[Mappings]:
    """Value mappings of a state set: numbers (`state_code`) in PromQL, the state's text in InfluxDB."""
    numbered_states = {code: (state, color) for code, (state, color) in enumerate(states, start=1)}
    return Dialects(
        {0: (none, "text"), **numbered_states}, {state: (state, color) for state, color in states}
    )


# enphase_site_relay_state is a state set; the state timeline gets one number per relay.
RELAY_STATES = [
    ("closed", "green"),
    ("open", "red"),
    ("offgrid_ac_grid_present", "orange"),
    ("offgrid_ready_for_resync", "yellow"),
    ("waiting_to_initialize_on_grid", "light-yellow"),
    ("generator_open", "light-blue"),
    ("generator_closed", "blue"),
    ("generator_startup", "light-purple"),
    ("generator_sync_ready", "purple"),
    ("generator_ac_stable", "dark-blue"),
    ("generator_ac_unstable", "dark-orange"),
    ("unknown", "text"),
]
RELAY_STATE_CODE = state_code("enphase_site_relay_state", SITE, "state", RELAY_STATES, "site_id, relay")

# ---------------------------------------------------------------------------------------------------
# Live power, InfluxQL
#
# The live stream's points in InfluxDB (exporter/live/influx.py): measurement enphase_site_live, tag site_id,
# one point per window of ENPHASE_LIVE_INFLUX_RESOLUTION (the mean power of its frames per meter, the latest
# of the rest), fields named like the metrics without their `enphase_site_` prefix, the label value first:
# pv_power_watts for enphase_site_live_power_watts{meter="pv"}, signed as the stream signs them (grid > 0
# imports, storage > 0 discharges). The names the dashboards read, in one table: a field renamed by the
# exporter is renamed here only.
LIVE_MEASUREMENT = "enphase_site_live"
LIVE_FIELDS = {
    # power per meter, W
    "pv": "pv_power_watts",
    "storage": "storage_power_watts",
    "grid": "grid_power_watts",
    "load": "load_power_watts",
    "generator": "generator_power_watts",
    "state_of_charge": "state_of_charge_ratio",
    "backup_reserve": "backup_reserve_ratio",
    # energy per flow since the exporter started, J, integrated from every frame
    "pv_production": "pv_production_energy_joules_total",
    "load_consumption": "load_consumption_energy_joules_total",
    "grid_import": "grid_import_energy_joules_total",
    "grid_export": "grid_export_energy_joules_total",
    "battery_charge": "battery_charge_energy_joules_total",
    "battery_discharge": "battery_discharge_energy_joules_total",
    "generator_production": "generator_production_energy_joules_total",
    # relay states, text: RELAY_STATES
    "grid_relay": "grid_relay",
    "generator_relay": "generator_relay",
}


def live_field(key: str) -> str:
    return f'"{LIVE_FIELDS[key]}"'


# InfluxQL has no clamp or min of two fields; abs() gives both, point by point.
def influx_positive_part(expr: str) -> str:
    return f"(({expr}) + abs({expr})) / 2"


def influx_negative_part(expr: str) -> str:
    return f"(abs({expr}) - ({expr})) / 2"


def influx_smaller(a: str, b: str) -> str:
    return f"(({a}) + ({b}) - abs(({a}) - ({b}))) / 2"


def newest(alias: str, live: str, measurement: str, bucket: str) -> str:
    """The newest of a live reading and its 15-minute fallback. A site's points in enphase_site and
    enphase_battery carry the time of its last report, older than the live points while the stream runs;
    once it stops, the next report's point is newer than the last live one and takes over."""
    return (
        f'SELECT last("{alias}") AS "{alias}" FROM '
        f'(SELECT {live} AS "{alias}" FROM "{LIVE_MEASUREMENT}" WHERE {IN_SITE}), '
        f'(SELECT {bucket} AS "{alias}" FROM "{measurement}" WHERE {IN_SITE}) '
        "WHERE $timeFilter"
    )


# 1 - grid import / consumption over the range, from the energy fields: the differences between
# consecutive points skip a counter's restart from 0, and (v + abs(v)) / 2 keeps the share at 0 or above.
_SHARE = 'sum("imported") / sum("consumed")'
INFLUX_SELF_SUFFICIENCY = (
    f'SELECT (1 - {_SHARE} + abs(1 - {_SHARE})) / 2 AS "Self-sufficiency" FROM ('
    f'SELECT non_negative_difference({live_field("grid_import")}) AS "imported", '
    f'non_negative_difference({live_field("load_consumption")}) AS "consumed" '
    f'FROM "{LIVE_MEASUREMENT}" WHERE {IN_SITE}'
    ") WHERE $timeFilter"
)

# ---------------------------------------------------------------------------------------------------
# Power now, in both dialects


@dataclass(frozen=True)
class Power:
    """A power value now: PromQL from the live stream or else the 15-minute bucket power (`live_or_bucket`),
    InfluxQL from the newer of the live point and the latest report (`newest`)."""

    title: str
    color: str
    live: str
    bucket: str
    influx_live: str
    influx_measurement: str
    influx_bucket: str
    description: str = ""

    def prom(self, legend: str = "") -> dict:
        return q(live_or_bucket(self.live, self.bucket), legend)

    def influx(self, alias: str | None = None) -> dict:
        alias = self.title if alias is None else alias
        return iq(newest(alias, self.influx_live, self.influx_measurement, self.influx_bucket), alias)


PV, LOAD, GRID, STORAGE = (live_meter(meter) for meter in ("pv", "load", "grid", "storage"))
PV_F, LOAD_F, GRID_F, STORAGE_F = (live_field(meter) for meter in ("pv", "load", "grid", "storage"))
LIVE_POWER = [
    Power(
        "Solar",
        "yellow",
        PV,
        bucket_power("site_production"),
        PV_F,
        "enphase_site",
        '"production_power_watts"',
        "Solar production.",
    ),
    Power(
        "Home",
        "blue",
        LOAD,
        bucket_power("site_consumption"),
        LOAD_F,
        "enphase_site",
        '"consumption_power_watts"',
        "Home consumption, EV charging included.",
    ),
    Power(
        "Grid",
        "red",
        GRID,
        f"{bucket_power('site_grid_import')} - {bucket_power('site_grid_export')}",
        GRID_F,
        "enphase_site",
        '"grid_import_power_watts" - "grid_export_power_watts"',
        "Positive: importing from the grid; negative: exporting to it.",
    ),
    Power(
        "Battery",
        "purple",
        STORAGE,
        f"{bucket_power('battery_discharge')} - {bucket_power('battery_charge')}",
        STORAGE_F,
        "enphase_battery",
        '"discharge_power_watts" - "charge_power_watts"',
        "Positive: the battery discharges; negative: it charges.",
    ),
]
# The power flow: the signed meters split into flows that are never negative. Solar → home is the
# solar power the home uses directly (the smaller of production and consumption).
POWER_FLOWS = [
    Power(
        "Solar → home",
        "yellow",
        smaller(positive_part(PV), LOAD),
        smaller(bucket_power("site_production"), bucket_power("site_consumption")),
        influx_smaller(influx_positive_part(PV_F), LOAD_F),
        "enphase_site",
        influx_smaller('"production_power_watts"', '"consumption_power_watts"'),
    ),
    Power(
        "Grid import",
        "red",
        positive_part(GRID),
        bucket_power("site_grid_import"),
        influx_positive_part(GRID_F),
        "enphase_site",
        '"grid_import_power_watts"',
    ),
    Power(
        "Grid export",
        "green",
        negative_part(GRID),
        bucket_power("site_grid_export"),
        influx_negative_part(GRID_F),
        "enphase_site",
        '"grid_export_power_watts"',
    ),
    Power(
        "Battery discharge",
        "orange",
        positive_part(STORAGE),
        bucket_power("battery_discharge"),
        influx_positive_part(STORAGE_F),
        "enphase_battery",
        '"discharge_power_watts"',
    ),
    Power(
        "Battery charge",
        "purple",
        negative_part(STORAGE),
        bucket_power("battery_charge"),
        influx_negative_part(STORAGE_F),
        "enphase_battery",
        '"charge_power_watts"',
    ),
]
# Power over time in PromQL from the stream's energy counters: the true mean power of each window.
LIVE_MEAN_POWER = {
    "Solar": live_flow_power("pv_production"),
    "Home": live_flow_power("load_consumption"),
    "Grid": f"{live_flow_power('grid_import')} - {live_flow_power('grid_export')}",
    "Battery": f"{live_flow_power('battery_discharge')} - {live_flow_power('battery_charge')}",
}
LIVE_NOTE = Dialects(
    "Power now from the live stream (a frame a second, as Prometheus last scraped it) while the site's "
    "stream runs; where it does not, the mean of the latest settled 15-minute interval from the cloud, 15 to "
    "30 minutes old (see Latest live frame).",
    "The newest reading: from the live stream (the mean of each few seconds) while the site streams, else "
    "the mean of the latest settled 15-minute interval from the cloud, 15 to 30 minutes old.",
)


# ---------------------------------------------------------------------------------------------------
# Devices, batteries and inverters (both dialects)
#
# The InfluxDB output writes them as: enphase_device (tags site_id, type, serial; fields normal,
# last_report_timestamp_seconds, name, model, firmware_version), enphase_battery_unit (tags site_id,
# serial; state_of_charge_ratio, health_ratio, cycles_total, capacity_joules, available_energy_joules,
# rated_power_watts, normal, sleeping), enphase_inverter (tags site_id, serial; normal,
# last_report_timestamp_seconds, production_today_joules, model, array), the battery settings in
# enphase_battery (storm_guard_enabled, charge_from_grid_schedule_enabled, settings_pending) and the site's
# status as text in enphase_site (status).

# enphase_site_status is a state set; in InfluxDB the status is text.
SITE_STATUSES = [
    ("normal", "green"),
    ("comm", "orange"),
    ("warning", "yellow"),
    ("error", "red"),
    ("unknown", "text"),
]
SITE_STATUS = state_code("enphase_site_status", SITE, "status", SITE_STATUSES, "site_id")
NORMAL = {0: ("not normal", "red"), 1: ("normal", "green")}
ON_OFF = {0: ("off", "text"), 1: ("on", "blue")}


def by_device(measurement: str, field: str, tags: tuple[str, ...], scale: str = "") -> dict:
    """InfluxQL: the newest value of `field` of each device (one series per `tags`)."""
    group = ", ".join(f'"{tag}"' for tag in tags)
    alias = " ".join(f"$tag_{tag}" for tag in tags)
    return iq(f"{latest(measurement, [(field, field)], scale=scale)} GROUP BY {group}", alias)


def device_over_time(measurement: str, select: str, tags: tuple[str, ...]) -> dict:
    """InfluxQL: `select` (of aggregates) per $__interval, one series per `tags`."""
    group = ", ".join(f'"{tag}"' for tag in tags)
    alias = " ".join(f"$tag_{tag}" for tag in tags)
    return iq(
        f'SELECT {select} FROM "{measurement}" WHERE {IN_SITE} '
        f"GROUP BY time($__interval), {group} fill(previous)",
        alias,
    )


DEVICE = ("type", "serial")
UNIT = ("serial",)


def device_panels() -> list[list[dict]]:
    """The rows of devices, batteries and inverters at the end of the site overview."""
    settings = [
        stat(
            title,
            "none",
            q(f"enphase_battery_{name}{{{SITE}}}"),
            influx=iq(latest("enphase_battery", [(name, title)])),
            w=6,
            mappings=mappings,
            description=description,
        )
        for title, name, mappings, description in (
            (
                "Storm Guard",
                "storm_guard_enabled",
                ON_OFF,
                "Battery setting: charge fully before a storm warning.",
            ),
            (
                "Charge-from-grid schedule",
                "charge_from_grid_schedule_enabled",
                ON_OFF,
                "Battery setting: charging from the grid only in the scheduled hours.",
            ),
            (
                "Settings change",
                "settings_pending",
                {0: ("applied", "green"), 1: ("pending", "orange")},
                "Pending while a battery settings change waits for the gateway to pick it up (alert "
                "EnphaseBatterySettingsPending after an hour).",
            ),
        )
    ]
    per_battery = [
        bargauge(
            title,
            unit,
            q(f"enphase_battery_unit_{name}{{{SITE}}}", "{{serial}}", instant=True),
            influx=by_device("enphase_battery_unit", name, UNIT),
            w=8,
            defaults=defaults,
            description=description,
        )
        for title, unit, name, defaults, description in (
            (
                "State of charge, per battery",
                "percentunit",
                "state_of_charge_ratio",
                {
                    "min": 0,
                    "max": 1,
                    "thresholds": thresholds((None, "red"), (0.2, "orange"), (0.4, "green")),
                },
                "Each battery's own state of charge.",
            ),
            (
                "Battery health",
                "percentunit",
                "health_ratio",
                {
                    "min": 0,
                    "max": 1,
                    "thresholds": thresholds((None, "red"), (0.7, "orange"), (0.8, "green")),
                },
                "State of health: the capacity left compared with a new battery.",
            ),
            (
                "Charge cycles",
                "none",
                "cycles_total",
                {"color": {"mode": "continuous-GrYlRd"}, "decimals": 0},
                "Full charge cycles so far, per battery.",
            ),
        )
    ]
    return [
        [
            stat(
                "Site status",
                "none",
                q(SITE_STATUS),
                influx=iq(latest("enphase_site", [("status", "status")])),
                w=6,
                mappings=state_mappings(SITE_STATUSES, "no status"),
                fields=Dialects("", "/^status$/"),
                description="The site's status in the Enphase cloud: comm when the gateway or a device "
                "stopped communicating, warning or error when a device reports a problem (alert "
                "EnphaseSiteStatusNotNormal).",
            ),
            *settings,
        ],
        [
            state_timeline(
                "Device status",
                q(f"enphase_device_normal{{{SITE}}}", "{{type}} {{serial}}"),
                NORMAL,
                influx=device_over_time("enphase_device", 'last("normal")', DEVICE),
                w=16,
                h=8,
                description="Each device of the site (gateway, meters, batteries, relays...) by type and "
                "serial number: normal, or not (alert EnphaseDeviceNotNormal).",
            ),
            stat(
                "Devices last reported",
                "dateTimeFromNow",
                q(f"enphase_device_last_report_timestamp_seconds{{{SITE}}}{MS}", "{{type}} {{serial}}"),
                influx=by_device("enphase_device", "last_report_timestamp_seconds", DEVICE, scale=MS),
                w=8,
                h=8,
                text_mode="value_and_name",
                description="When each device last reported to the Enphase cloud. Microinverters do not "
                "report at night; any other device silent for 2 hours raises EnphaseDeviceNotReporting.",
            ),
        ],
        per_battery,
        [
            state_timeline(
                "Battery status",
                q(
                    f"enphase_battery_unit_normal{{{SITE}}} + 2 * enphase_battery_unit_sleeping{{{SITE}}}",
                    "{{serial}}",
                ),
                {**NORMAL, 2: ("sleeping", "blue")},
                influx=device_over_time(
                    "enphase_battery_unit", 'last("normal") + 2 * last("sleeping")', UNIT
                ),
                h=5,
                description="Each battery: normal, sleeping (healthy, resting at its limit or when not "
                "needed) or not normal (alert EnphaseBatteryNotNormal).",
            ),
        ],
        [
            bargauge(
                "Production today, per microinverter",
                "kwatth",
                q(f"enphase_inverter_production_today_joules{{{SITE}}}{KWH}", "{{serial}}", instant=True),
                influx=by_device("enphase_inverter", "production_today_joules", UNIT, scale=KWH),
                w=24,
                h=10,
                defaults={"color": {"mode": "continuous-YlRd"}, "min": 0},
                description="Energy each microinverter produced today. One far below its neighbours on the "
                "same array is shaded, dirty or failing.",
            ),
        ],
    ]


def site_overview() -> Dashboard:
    live_power = [
        stat(
            f"{power.title} now",
            "watt",
            power.prom(power.title),
            influx=power.influx(),
            w=5,
            color=power.color,
            graph=True,
            description=each(LIVE_NOTE, f"{power.description} {{}}".format),
        )
        for power in LIVE_POWER
    ]
    latest_frame = stat(
        "Latest live frame",
        "dateTimeFromNow",
        q(f"enphase_site_live_last_frame_timestamp_seconds{{{SITE}}}{MS}"),
        no_value="no live stream",
        description="When the site's live stream last delivered a frame. While the stream is down, the "
        "power panels show the cloud's 15-minute intervals.",
    )
    live_stream = stat(
        "Live stream",
        "none",
        None,
        influx=iq(
            f'SELECT count({LOAD_F}) AS "Live points" FROM "{LIVE_MEASUREMENT}" '
            f"WHERE {IN_SITE} AND time > now() - 5m"
        ),
        no_value="off",
        defaults={
            "mappings": [
                {
                    "type": "range",
                    "options": {
                        "from": 1,
                        "to": None,
                        "result": {"text": "on", "color": "green", "index": 0},
                    },
                }
            ],
            "color": {"mode": "thresholds"},
            "thresholds": thresholds((None, "text")),
        },
        description="On when live-stream points arrived in the last 5 minutes; off means the power panels "
        "show the cloud's 15-minute intervals.",
    )
    power_flow = [
        stat(
            power.title,
            "watt",
            power.prom(power.title),
            influx=power.influx(),
            color=power.color,
            description="The power flow now, from the live stream where the site has one, else from the "
            "latest settled 15-minute interval.",
        )
        for power in POWER_FLOWS
    ]
    sufficiency = stat(
        "Self-sufficiency",
        "percentunit",
        q(SELF_SUFFICIENCY, instant=True),
        influx=iq(INFLUX_SELF_SUFFICIENCY),
        decimals=0,
        no_value=Dialects(OMIT, "no live stream"),
        defaults={
            "min": 0,
            "max": 1,
            "thresholds": thresholds((None, "orange"), (0.5, "yellow"), (0.8, "green")),
        },
        description=Dialects(
            "Share of the home's consumption met by solar and battery over the dashboard's time range: "
            "1 - grid import / consumption, from the live stream's energy counters (over the part of the "
            "range the stream ran), else from the cloud's lifetime counters. Grid power that charges the "
            "battery counts as import.",
            "Share of the home's consumption met by solar and battery over the dashboard's time range (the "
            "part of it the live stream ran): 1 - grid import / consumption, from the live stream's energy "
            "fields. Grid power that charges the battery counts as import.",
        ),
    )
    influx_mean_power = ", ".join(f'mean({power.influx_live}) AS "{power.title}"' for power in LIVE_POWER)
    live_power_over_time = timeseries(
        "Power",
        "watt",
        [q(live_or_bucket(LIVE_MEAN_POWER[power.title], power.bucket), power.title) for power in LIVE_POWER],
        influx=iq(
            f'SELECT {influx_mean_power} FROM "{LIVE_MEASUREMENT}" WHERE {IN_SITE} '
            "GROUP BY time($__interval) fill(none)"
        ),
        w=Dialects(16, 24),
        h=Dialects(9, 8),
        fill=0,
        description=Dialects(
            "Mean power from the live stream's energy counters while the stream runs, else the cloud's "
            "15-minute intervals. Grid: positive imports; battery: positive discharges.",
            "Mean power from the live stream. Grid: positive imports; battery: positive discharges. Empty "
            "where the site has no live stream: the 15-minute intervals are below.",
        ),
        overrides=Dialects(
            [override(chr(ord("A") + i), color=fixed(power.color)) for i, power in enumerate(LIVE_POWER)],
            [colored(power.title, power.color) for power in LIVE_POWER],
        ),
    )
    flow_colors = Dialects(
        [override(chr(ord("A") + i), color=fixed(color)) for i, (*_, color) in enumerate(SITE_FLOWS)],
        [colored(title, color) for title, *_, color in SITE_FLOWS],
    )
    per_bucket = ", ".join(
        f'mean("{stem}_joules") / {BUCKET_SECONDS} AS "{title}"' for title, _, _, stem, _ in SITE_FLOWS
    )
    power_over_time = timeseries(
        "Power per 15-minute interval",
        "watt",
        [q(f"enphase_{stem}_power_watts{{{SITE}}}", title) for title, stem, *_ in SITE_FLOWS],
        influx=iq(
            f'SELECT {per_bucket} FROM "enphase_site_interval" WHERE {IN_SITE} '
            "GROUP BY time($__interval) fill(none)"
        ),
        w=Dialects(24, 16),
        h=Dialects(8, 9),
        step=True,
        fill=0,
        interval=Dialects(OMIT, "15m"),
        description=Dialects(
            "Mean power of the latest settled 15-minute interval reported by the Enphase cloud, so it lags "
            "real time by 15 to 30 minutes.",
            "Mean power of each 15-minute interval of the cloud's history, the whole day including the hours "
            "before the exporter started. The newest interval grows for a few minutes.",
        ),
        overrides=flow_colors,
    )
    state_of_charge = timeseries(
        "Battery state of charge",
        "percentunit",
        [
            q(f"enphase_battery_state_of_charge_ratio{{{SITE}}}", "State of charge"),
            q(f"enphase_battery_backup_reserve_ratio{{{SITE}}}", "Backup reserve"),
            q(f"enphase_battery_very_low_soc_ratio{{{SITE}}}", "Very low limit"),
        ],
        influx=[
            iq(
                'SELECT mean("state_of_charge_ratio") AS "State of charge" FROM "enphase_site_interval" '
                f"WHERE {IN_SITE} GROUP BY time($__interval) fill(none)"
            ),
            iq(
                'SELECT last("backup_reserve_ratio") AS "Backup reserve" FROM "enphase_battery" '
                f"WHERE {IN_SITE} GROUP BY time($__interval) fill(previous)"
            ),
        ],
        w=8,
        h=9,
        step=True,
        fill=20,
        min_max=(0, 1),
        interval=Dialects(OMIT, "15m"),
        description=Dialects(
            "The dashed line is the backup reserve kept for power cuts; the dotted line the very-low limit "
            "below which the battery stops discharging.",
            "State of charge at the end of each 15-minute interval; dashed: the backup reserve.",
        ),
        overrides=[
            override("A", color=fixed("green")),
            override("B", color=fixed("red"), **DASHED),
            Dialects(override("C", color=fixed("dark-red"), **DOTTED), OMIT),
        ],
    )
    relay_state = state_timeline(
        "Grid relay",
        q(RELAY_STATE_CODE, "{{relay}} relay"),
        state_mappings(RELAY_STATES, "no state"),
        influx=iq(
            f'SELECT last({live_field("grid_relay")}) AS "grid relay" FROM "{LIVE_MEASUREMENT}" '
            f"WHERE {IN_SITE} GROUP BY time($__interval) fill(none)"
        ),
        h=5,
        description=Dialects(
            "The system controller's grid relay (and generator relay, where there is one) from the live "
            "stream: closed is on the grid; open or an off-grid state is a grid outage (alert "
            "EnphaseGridOutage).",
            "The system controller's grid relay from the live stream: closed is on the grid; open or an "
            "off-grid state is a grid outage.",
        ),
    )
    soc_now = gauge(
        "State of charge",
        "percentunit",
        q(
            live_or_bucket(
                f"max by (site_id) (enphase_site_live_state_of_charge_ratio{{{SITE}}})",
                f"max by (site_id) (enphase_battery_state_of_charge_ratio{{{SITE}}})",
            )
        ),
        influx=iq(
            newest(
                "State of charge", live_field("state_of_charge"), "enphase_battery", '"state_of_charge_ratio"'
            )
        ),
        description=Dialects(
            "From the live stream while it runs, else from the cloud's latest report.",
            "The newest reading: from the live stream while it runs, else from the cloud's latest report.",
        ),
        defaults={
            "min": 0,
            "max": 1,
            "thresholds": thresholds((None, "red"), (0.2, "orange"), (0.4, "green")),
        },
    )
    reserve_now = stat(
        "Backup reserve",
        "percentunit",
        q(
            live_or_bucket(
                f"max by (site_id) (enphase_site_live_backup_reserve_ratio{{{SITE}}})",
                f"max by (site_id) (enphase_battery_backup_reserve_ratio{{{SITE}}})",
            )
        ),
        influx=iq(
            newest(
                "Backup reserve", live_field("backup_reserve"), "enphase_battery", '"backup_reserve_ratio"'
            )
        ),
        h=5,
        color="red",
        description=Dialects(
            "Share of the battery kept for power cuts; from the live stream while it runs, else from the "
            "battery settings.",
            "Share of the battery kept for power cuts; the newest reading, from the live stream while it "
            "runs, else from the battery settings.",
        ),
    )
    today = Dialects(
        [q(f"enphase_{stem}_today_joules{{{SITE}}}{KWH}", title) for title, stem, *_ in SITE_FLOWS],
        [
            iq(latest(measurement, [(f"{stem}_today_joules", title)], scale=KWH), title)
            for title, _, measurement, stem, _ in SITE_FLOWS
        ],
    )
    lifetime = stat(
        "Lifetime energy",
        "kwatth",
        [q(f"enphase_{stem}_joules_total{{{SITE}}}{KWH}", title) for title, stem, *_ in SITE_FLOWS],
        influx=[
            iq(latest(measurement, [(f"{stem}_joules_total", title)], scale=KWH), title)
            for title, _, measurement, stem, _ in SITE_FLOWS
        ],
        w=Dialects(12, 8),
        h=8,
        text_mode="value_and_name",
        decimals=1,
        color="text",
        overrides=flow_colors,
        description="Lifetime counters: settled days plus today so far.",
    )
    influx_per_day = ", ".join(
        f'"{stem}_joules"{KWH} AS "{title}"' for title, _, _, stem, _ in SITE_FLOWS[:4]
    )
    per_day = timeseries(
        "Energy per day",
        "kwatth",
        [
            q(f"increase(enphase_{stem}_joules_total{{{SITE}}}{PER_DAY}){KWH}", title)
            for title, stem, *_ in SITE_FLOWS[:4]
        ],
        influx=iq(f'SELECT {influx_per_day} FROM "enphase_site_daily" WHERE {IN_SITE}'),
        w=Dialects(24, 16),
        bars=True,
        overrides=flow_colors,
        interval=Dialects("1d", OMIT),
        timeFrom=Dialects("14d", "30d"),
        description=Dialects(
            "Increase of the lifetime counters per day, over the last 14 days; today's bar grows through the "
            "day. Days start at midnight in the browser's time zone.",
            "The cloud's total of each day, from local midnight at the site, over the last 30 days (history "
            "from before the exporter started included).",
        ),
    )
    flows = [
        (f"energy_flow_{source}_{sink}_today_joules", f"{source} → {sink}") for source, sink in FLOW_FIELDS
    ]
    loads = [(f"load_{load}_today_joules", load) for load in LOADS]
    rows = [
        [*live_power, latest_frame, live_stream],
        [*power_flow, sufficiency],
        [
            soc_now,
            reserve_now,
            stat(
                "Battery profile",
                "none",
                q(f"enphase_battery_profile{{{SITE}}} == 1", "{{profile}}"),
                influx=iq(latest("enphase_battery", [("profile", "profile")]), "profile"),
                h=5,
                text_mode=Dialects("name", "auto"),
                color="blue",
                fields=Dialects("", "/^profile$/"),
            ),
            stat(
                "Charge from grid",
                "none",
                q(f"enphase_battery_charge_from_grid_enabled{{{SITE}}}"),
                influx=iq(latest("enphase_battery", [("charge_from_grid_enabled", "Charge from grid")])),
                h=5,
                mappings={0: ("not allowed", "text"), 1: ("allowed", "blue")},
            ),
            stat(
                "Site last reported",
                "dateTimeFromNow",
                q(f"enphase_site_last_report_timestamp_seconds{{{SITE}}}{MS}"),
                influx=iq(
                    latest("enphase_site", [("last_report_timestamp_seconds", "Last report")], scale=MS)
                ),
                h=5,
                description="When the site's IQ Gateway last reported to the Enphase cloud.",
            ),
            stat(
                "Exporter data",
                "none",
                q(f"enphase_up{{{SITE}}}"),
                h=5,
                mappings={0: ("failing", "red"), 1: ("OK", "green")},
                description="Whether every source of this site succeeded at its latest fetch. Details on "
                "the Enphase exporter health dashboard.",
            ),
            stat(
                "Latest interval ends",
                "dateTimeFromNow",
                None,
                influx=iq(
                    latest(
                        "enphase_site", [("power_interval_end_timestamp_seconds", "Interval end")], scale=MS
                    )
                ),
                h=5,
                description="End of the settled 15-minute interval that the power values above average.",
            ),
        ],
        [live_power_over_time, only("prometheus", state_of_charge)],
        [relay_state],
        [power_over_time, only("influxdb", state_of_charge)],
        [
            stat(
                "Energy today",
                "kwatth",
                today.prometheus,
                influx=today.influxdb,
                w=12,
                h=8,
                text_mode="value_and_name",
                decimals=1,
                color="text",
                overrides=flow_colors,
                description="Since local midnight at the site.",
            ),
            bargauge(
                "Energy flows today",
                "kwatth",
                q(
                    f"enphase_site_energy_flow_today_joules{{{SITE}}}{KWH}",
                    "{{source}} → {{sink}}",
                    instant=True,
                ),
                influx=iq(latest("enphase_site", flows, scale=KWH)),
                description="Where today's energy came from and went to; only the flows the site measures.",
            ),
            bargauge(
                "Measured loads today",
                "kwatth",
                q(f"enphase_site_load_today_joules{{{SITE}}}{KWH}", "{{load}}", instant=True),
                influx=iq(latest("enphase_site", loads, scale=KWH)),
                description="Loads the site measures separately (EV charger, heat pump, water heater).",
            ),
        ],
        [
            timeseries(
                "Energy today, running totals",
                "kwatth",
                today.prometheus,
                step=True,
                fill=0,
                overrides=flow_colors,
                description="Each line climbs through the day and drops back to zero at local midnight.",
            ),
            only("prometheus", lifetime),
        ],
        [per_day, only("influxdb", lifetime)],
        *device_panels(),
    ]
    return Dashboard(
        Dialects("enphase-site-overview", "enphase-influxdb-site-overview"),
        Dialects("Enphase site overview", "Enphase site overview (InfluxDB)"),
        Dialects(
            "Solar, battery, grid and home of one Enphase site, from the Enphase exporter.",
            "Solar, battery, grid and home of one Enphase site, from the Enphase exporter's InfluxDB output.",
        ),
        [DATASOURCE_VARIABLE, SITE_VARIABLE],
        rows,
    )


# ---------------------------------------------------------------------------------------------------
# EV charger

# The charger reports a setpoint only while charging. A charger known to be idle shows 0 A instead of
# nothing, so the panels tell "idle" from "no data"; a charger charging without a setpoint stays absent.
SETPOINT = (
    f"enphase_ev_charger_charging_current_setpoint_amperes{{{EV}}}"
    f"\n  or enphase_ev_charger_charging{{{EV}}} == 0"
)
# The same in InfluxQL: the idle points contribute `charging * 0` instead.
INFLUX_SETPOINT = (
    '(SELECT "charging_current_setpoint_amperes" AS "setpoint" FROM "enphase_ev_charger" '
    f'WHERE {IN_EV} GROUP BY "serial"), '
    '(SELECT "charging" * 0 AS "setpoint" FROM "enphase_ev_charger" '
    f'WHERE "charging" = 0 AND {IN_EV} GROUP BY "serial")'
)

# enphase_ev_charger_connector_status is a state set (value 1 on the current status only); the InfluxDB
# output writes the status as text.
CONNECTOR_STATUSES = [
    ("available", "green"),
    ("preparing", "light-blue"),
    ("charging", "blue"),
    ("finishing", "light-purple"),
    ("suspended", "yellow"),
    ("suspended_ev", "light-yellow"),
    ("suspended_evse", "orange"),
    ("faulted", "red"),
    ("unavailable", "dark-red"),
    ("reserved", "purple"),
    ("unknown", "text"),
]
CONNECTOR_STATUS = state_code(
    "enphase_ev_charger_connector_status", EV, "status", CONNECTOR_STATUSES, "site_id, serial, connector"
)


def ev_metric(name: str, legend: str = "{{serial}}", scale: str = "") -> dict:
    """The PromQL query of one per-charger metric."""
    return q(f"enphase_ev_charger_{name}{{{EV}}}{scale}", legend)


# enphase_ev_charger_charge_mode is a state set; in InfluxDB the mode is text.
CHARGE_MODES = [
    ("manual", "blue"),
    ("scheduled", "purple"),
    ("green", "green"),
    ("smart", "light-blue"),
    ("unknown", "text"),
]
CHARGE_MODE = state_code("enphase_ev_charger_charge_mode", EV, "mode", CHARGE_MODES, "site_id, serial")
CHARGE_MODE_NOTE = (
    "The charger's charging mode in the Enphase app: manual (charge now), scheduled (in the scheduled "
    "hours), green (from surplus solar only) or smart (the app's plan)."
)


def ev_latest(field: str, alias: str, scale: str = "") -> dict:
    """The InfluxQL query of the newest value of one per-charger field."""
    return iq(
        latest("enphase_ev_charger", [(field, alias)], IN_EV, scale) + ' GROUP BY "serial"', "$tag_serial"
    )


def ev_over_time(field: str, alias: str = "$tag_serial", scale: str = "", fill: str = "previous") -> dict:
    return iq(
        f'SELECT last("{field}"){scale} FROM "enphase_ev_charger" WHERE {IN_EV} '
        f'GROUP BY time($__interval), "serial" fill({fill})',
        alias,
    )


def ev_charger() -> Dashboard:
    status_mappings = state_mappings(CONNECTOR_STATUSES, "no status")
    rows = [
        [
            stat(
                "Connector status",
                "none",
                q(CONNECTOR_STATUS, "{{serial}} #{{connector}}"),
                influx=ev_latest("connector_status", "status"),
                mappings=status_mappings,
                fields=Dialects("", "/.*/"),
            ),
            stat(
                "Cloud connection",
                "none",
                ev_metric("connected"),
                influx=ev_latest("connected", "connected"),
                mappings={0: ("offline", "red"), 1: ("online", "green")},
            ),
            stat(
                "Fault",
                "none",
                ev_metric("faulted"),
                influx=ev_latest("faulted", "faulted"),
                mappings={0: ("none", "green"), 1: ("FAULT", "red")},
            ),
            stat(
                "Session energy",
                "kwatth",
                ev_metric("session_energy_joules", scale=KWH),
                influx=ev_latest("session_energy_joules", "energy", scale=KWH),
                color="blue",
                decimals=2,
                description="Energy of the current or last session.",
            ),
            stat(
                "Current setpoint",
                "amp",
                q(SETPOINT, "{{serial}}"),
                influx=iq(
                    f'SELECT last("setpoint") FROM {INFLUX_SETPOINT} WHERE $timeFilter GROUP BY "serial"',
                    "$tag_serial",
                ),
                color="blue",
                mappings={0: ("not charging", "text")},
            ),
            stat(
                "Last report",
                "dateTimeFromNow",
                ev_metric("last_report_timestamp_seconds", scale=MS),
                influx=ev_latest("last_report_timestamp_seconds", "last report", scale=MS),
                description="When the charger last reported to the Enphase cloud.",
            ),
        ],
        [
            state_timeline(
                "Connector status",
                q(CONNECTOR_STATUS, "{{serial}} connector {{connector}}"),
                status_mappings,
                influx=ev_over_time("connector_status", fill="none"),
            ),
        ],
        [
            stat(
                "Charge mode",
                "none",
                q(CHARGE_MODE, "{{serial}}"),
                influx=ev_latest("charge_mode", "mode"),
                h=5,
                mappings=state_mappings(CHARGE_MODES, "no mode"),
                fields=Dialects("", "/.*/"),
                description=CHARGE_MODE_NOTE,
            ),
            state_timeline(
                "Charge mode",
                q(CHARGE_MODE, "{{serial}}"),
                state_mappings(CHARGE_MODES, "no mode"),
                influx=ev_over_time("charge_mode", fill="none"),
                w=20,
                h=5,
                description=CHARGE_MODE_NOTE,
            ),
        ],
        [
            state_timeline(
                "Plugged in, charging, connected, faulted",
                [
                    ev_metric("plugged_in", "{{serial}} plugged in"),
                    ev_metric("charging", "{{serial}} charging"),
                    ev_metric("connected", "{{serial}} connected to the cloud"),
                    ev_metric("faulted", "{{serial}} faulted"),
                ],
                YES_NO,
                influx=[
                    ev_over_time("plugged_in", "$tag_serial plugged in"),
                    ev_over_time("charging", "$tag_serial charging"),
                    ev_over_time("connected", "$tag_serial connected to the cloud"),
                    ev_over_time("faulted", "$tag_serial faulted"),
                ],
                h=8,
                overrides=[
                    override(
                        "A",
                        mappings=value_mappings({0: ("unplugged", "transparent"), 1: ("plugged in", "blue")}),
                    ),
                    override(
                        "B", mappings=value_mappings({0: ("idle", "transparent"), 1: ("charging", "green")})
                    ),
                    override(
                        "C", mappings=value_mappings({0: ("offline", "red"), 1: ("online", "transparent")})
                    ),
                    override(
                        "D", mappings=value_mappings({0: ("no fault", "transparent"), 1: ("fault", "red")})
                    ),
                ],
            ),
        ],
        [
            timeseries(
                "Session energy",
                "kwatth",
                ev_metric("session_energy_joules", scale=KWH),
                influx=ev_over_time("session_energy_joules", scale=KWH, fill="none"),
                step=True,
                description="Energy of the current or last session.",
            ),
            timeseries(
                "Charging current against the charge levels",
                "amp",
                [
                    q(SETPOINT, "{{serial}} setpoint"),
                    ev_metric("charge_level_min_amperes", "{{serial}} lowest settable"),
                    ev_metric("charge_level_max_amperes", "{{serial}} highest settable"),
                    ev_metric("max_current_amperes", "{{serial}} hardware maximum"),
                ],
                influx=[
                    iq(
                        f'SELECT last("setpoint") FROM {INFLUX_SETPOINT} '
                        'WHERE $timeFilter GROUP BY time($__interval), "serial" fill(none)',
                        "$tag_serial setpoint",
                    ),
                    ev_over_time("charge_level_min_amperes", "$tag_serial lowest settable"),
                    ev_over_time("charge_level_max_amperes", "$tag_serial highest settable"),
                    ev_over_time("max_current_amperes", "$tag_serial hardware maximum"),
                ],
                step=True,
                fill=0,
                defaults={"min": 0},
                description="The setpoint while charging, 0 while idle. Dashed: the range the charger "
                "accepts; dotted: the hardware maximum.",
                overrides=[override("B", **DASHED), override("C", **DASHED), override("D", **DOTTED)],
            ),
        ],
        [
            stat(
                "Vehicle plugged in",
                "dateTimeFromNow",
                ev_metric("session_plugged_in_timestamp_seconds", scale=MS),
                influx=ev_latest("session_plugged_in_timestamp_seconds", "plugged in", scale=MS),
                w=6,
                description="Plug-in time of the current or last session.",
            ),
            stat(
                "Charging started",
                "dateTimeFromNow",
                ev_metric("session_start_timestamp_seconds", scale=MS),
                influx=ev_latest("session_start_timestamp_seconds", "started", scale=MS),
                w=6,
                description="When charging of the current or last session started.",
            ),
            stat(
                "Session cost",
                "none",
                ev_metric("session_cost"),
                influx=ev_latest("session_cost", "cost"),
                w=6,
                decimals=2,
                description="Cost of the current or last session, in the site's currency.",
            ),
            stat(
                "Energy delivered, lifetime",
                "kwatth",
                ev_metric("energy_delivered_joules_total", scale=KWH),
                influx=ev_latest("energy_delivered_joules_total", "lifetime", scale=KWH),
                w=6,
                decimals=1,
            ),
        ],
        [
            # The exporter's lifetime counter in Prometheus; in InfluxDB the cloud's daily history, which
            # reaches back before the exporter started.
            timeseries(
                "Energy delivered per day",
                "kwatth",
                q(
                    f"increase(enphase_ev_charger_energy_delivered_joules_total{{{EV}}}{PER_DAY}){KWH}",
                    "{{serial}}",
                ),
                bars=True,
                interval="1d",
                timeFrom="14d",
                description="Increase of the lifetime counter per day, over the last 14 days; today's "
                "bar grows through the day. Days start at midnight in the browser's time zone.",
            ),
            timeseries(
                "EV charging energy per day",
                "kwatth",
                None,
                influx=iq(
                    f'SELECT "load_evse_joules"{KWH} AS "EV charging" FROM "enphase_site_daily" '
                    f"WHERE {IN_SITE}"
                ),
                bars=True,
                timeFrom="30d",
                description="The site's measured EV charger load per day, from local midnight, over the last "
                "30 days; all chargers of the site together.",
            ),
            info_table(
                "Chargers",
                q(f"enphase_ev_charger_info{{{EV}}}", table=True),
                Dialects(
                    ["site_id", "serial", "name", "model", "firmware_version"],
                    ["serial", "name", "model", "firmware_version"],
                ),
                influx=iq(
                    latest(
                        "enphase_ev_charger",
                        [("name", "name"), ("model", "model"), ("firmware_version", "firmware_version")],
                        IN_EV,
                    )
                    + ' GROUP BY "serial"',
                    table=True,
                ),
                h=8,
            ),
        ],
        [
            stat(
                "Operating voltage",
                "volt",
                ev_metric("operating_voltage_volts"),
                influx=ev_latest("operating_voltage_volts", "voltage"),
                w=8,
            ),
            stat("Phases", "none", ev_metric("phases"), influx=ev_latest("phases", "phases"), w=8),
            stat(
                "Hardware maximum current",
                "amp",
                ev_metric("max_current_amperes"),
                influx=ev_latest("max_current_amperes", "maximum"),
                w=8,
            ),
        ],
    ]
    return Dashboard(
        Dialects("enphase-ev-charger", "enphase-influxdb-ev-charger"),
        Dialects("Enphase EV charger", "Enphase EV charger (InfluxDB)"),
        Dialects(
            "Status, sessions and energy of Enphase IQ EV Chargers, from the Enphase exporter.",
            "Status, sessions and energy of Enphase IQ EV Chargers, from the Enphase exporter's InfluxDB "
            "output.",
        ),
        [
            DATASOURCE_VARIABLE,
            SITE_VARIABLE,
            Dialects(
                query_variable(
                    "serial",
                    "Charger",
                    'label_values(enphase_ev_charger_info{site_id=~"$site_id"}, serial)',
                    multi=True,
                ),
                influx_variable(
                    "serial",
                    "Charger",
                    'SHOW TAG VALUES FROM "enphase_ev_charger" WITH KEY = "serial" '
                    'WHERE "site_id" =~ /^$site_id$/',
                    multi=True,
                ),
            ),
        ],
        rows,
    )


# ---------------------------------------------------------------------------------------------------
# Exporter health

# Process metrics of the exporter only, whatever its job is called.
EXPORTER = " and on (job, instance) enphase_exporter_build_info"


def rate_limited(window: str, by: str = "") -> str:
    """Responses with status 429 per `window`, summed by `by`, and 0 for every group that made requests.

    The series of status 429 appears only with the first 429, so a healthy exporter would otherwise show
    an empty panel, which looks like missing data.
    """
    total = f"sum by ({by}) " if by else "sum"
    return (
        f'{total}(increase(enphase_api_requests_total{{code="429"}}{window}))\n'
        f"  or {total}(increase(enphase_api_requests_total{window})) * 0"
    )


def exporter_health() -> Dashboard:
    rows = [
        [
            stat(
                "Prometheus scrape",
                "none",
                [q('up{job="enphase"}', "{{instance}}")],
                mappings=UP_DOWN,
                description="`up` of the scrape job `enphase`.",
            ),
            stat(
                "Sites",
                "none",
                [q(f"enphase_up{{{SITE}}}", "{{site_id}}")],
                mappings={0: ("failing", "red"), 1: ("OK", "green")},
                description="1 when every source of the site succeeded at its latest fetch.",
            ),
            stat(
                "Cloud session",
                "none",
                [q("enphase_auth_ok", "{{instance}}")],
                mappings={0: ("no session", "red"), 1: ("valid", "green")},
            ),
            stat(
                "Session expires",
                "dateTimeFromNow",
                [q(f"enphase_auth_session_expiry_timestamp_seconds{MS}")],
                no_value="unknown",
            ),
            stat(
                "Logins paused for",
                "s",
                # The blocked-until gauge exists only during a pause; 0 otherwise, so "not paused" is
                # told apart from an exporter that is not scraped.
                [
                    q(
                        "clamp_min(enphase_auth_login_blocked_until_timestamp_seconds - time(), 0)"
                        "\n  or enphase_auth_ok * 0"
                    )
                ],
                mappings={0: ("not paused", "green")},
                defaults={"thresholds": thresholds((None, "green"), (1, "red"))},
                description='Time left before the exporter logs in again, after Enphase answered "Too many '
                'active sessions", rejected the credentials or asked for a one-time code.',
            ),
            stat(
                "Exporter version",
                "none",
                [q("enphase_exporter_build_info", "{{version}}")],
                text_mode="name",
                color="text",
            ),
        ],
        [
            state_timeline("Site up", [q(f"enphase_up{{{SITE}}}", "{{site_id}}")], UP_DOWN, w=12, h=8),
            state_timeline(
                "Source up", [q(f"enphase_source_up{{{SITE}}}", "{{site_id}} {{source}}")], UP_DOWN, w=12, h=8
            ),
        ],
        [
            stat(
                "Live stream",
                "none",
                [q(f"enphase_live_stream_up{{{SITE}}}", "{{site_id}}")],
                h=8,
                mappings=UP_DOWN,
                no_value="no live stream",
                description="Up while the site's live stream delivers frames (about a frame a second); down "
                "while it is refused or broken, or where the site has none. Nothing with "
                "ENPHASE_LIVE_STREAM=off.",
            ),
            stat(
                "Latest live frame",
                "s",
                [q(f"time() - enphase_site_live_last_frame_timestamp_seconds{{{SITE}}}", "{{site_id}}")],
                h=8,
                defaults={"thresholds": thresholds((None, "green"), (30, "yellow"), (300, "red"))},
                description="Age of each site's latest live-stream frame. Renewing the stream every 15 "
                "minutes leaves gaps of a few seconds.",
            ),
            timeseries(
                "Live frames per second",
                "cps",
                [q(f"rate(enphase_live_stream_frames_total{{{SITE}}}{RATE})", "{{site_id}} frames")],
                w=8,
                description="About 1 per site while its stream runs. Bad frames (ones that could not be "
                "decoded) are counted on the right.",
            ),
            timeseries(
                "Live stream sessions and bad frames",
                "short",
                [
                    q(
                        "sum by (site_id, outcome) "
                        f"(increase(enphase_live_stream_sessions_total{{{SITE}}}{RATE}))",
                        "{{site_id}} session {{outcome}}",
                    ),
                    # The bad-frame counter of a healthy stream may stay at 0 or not exist yet: 0 then.
                    q(
                        f"increase(enphase_live_stream_bad_frames_total{{{SITE}}}{RATE})"
                        f"\n  or on (site_id) enphase_live_stream_up{{{SITE}}} * 0",
                        "{{site_id}} bad frames",
                    ),
                ],
                w=8,
                bars=True,
                description="Stream sessions started, by outcome: ok, refused (the cloud declined the "
                "credentials; the exporter then waits a long, growing pause) or failed (no connection, or "
                "it broke). A session is renewed about every 15 minutes.",
            ),
        ],
        [
            bargauge(
                "Age of data",
                "s",
                [
                    q(
                        f"time() - enphase_source_last_success_timestamp_seconds{{{SITE}}}",
                        "{{site_id}} {{source}}",
                        instant=True,
                    )
                ],
                w=12,
                defaults={
                    "color": {"mode": "thresholds"},
                    "thresholds": thresholds((None, "green"), (900, "yellow"), (3 * 3600, "red")),
                },
                description="Time since each source last succeeded. Normal refresh intervals: ev_status "
                "1 min, today 5 min, ev_summary 15 min, daily_energy 1 h.",
            ),
            timeseries(
                "Age of data over time",
                "s",
                [
                    q(
                        f"time() - enphase_source_last_success_timestamp_seconds{{{SITE}}}",
                        "{{site_id}} {{source}}",
                    )
                ],
                fill=0,
            ),
        ],
        [
            timeseries(
                "Upstream requests by endpoint",
                "reqps",
                [q(f"sum by (endpoint) (rate(enphase_api_requests_total{RATE}))", "{{endpoint}}")],
                stack=True,
            ),
            timeseries(
                "Upstream latency by endpoint",
                "s",
                [
                    q(
                        "histogram_quantile(0.5, sum by (endpoint, le) "
                        f"(rate(enphase_api_request_duration_seconds_bucket{RATE})))",
                        "{{endpoint}} median",
                    ),
                    q(
                        "histogram_quantile(0.95, sum by (endpoint, le) "
                        f"(rate(enphase_api_request_duration_seconds_bucket{RATE})))",
                        "{{endpoint}} 95th percentile",
                    ),
                ],
                fill=0,
                overrides=[override("B", **DASHED)],
            ),
        ],
        [
            timeseries(
                "Responses by status code",
                "reqps",
                [q(f"sum by (code) (rate(enphase_api_requests_total{RATE}))", "{{code}}")],
                stack=True,
                description="`timeout` and `error` are requests that got no HTTP status back.",
            ),
            timeseries(
                "Rate-limited responses (429) by endpoint",
                "short",
                [q(rate_limited(RATE, "endpoint"), "{{endpoint}}")],
                w=8,
                bars=True,
                description="0 for an endpoint that was called and never rate-limited.",
            ),
            stat(
                "429s in the time range",
                "short",
                [q(rate_limited("[$__range]"), instant=True)],
                h=8,
                defaults={"thresholds": thresholds((None, "green"), (1, "red"))},
            ),
        ],
        [
            timeseries(
                "Parse errors by source",
                "short",
                [q(f"sum by (source) (increase(enphase_parse_errors_total{RATE}))", "{{source}}")],
                bars=True,
                description="Payloads or fields the exporter could not understand.",
            ),
            timeseries(
                "Counter regressions",
                "short",
                # A regression series appears with the first regression; until then each site shows 0.
                [
                    q(
                        f"increase(enphase_counter_regressions_total{{{SITE}}}{RATE})"
                        f"\n  or on (site_id) enphase_up{{{SITE}}} * 0",
                        "{{site_id}} {{metric}}",
                    )
                ],
                bars=True,
                description="Times the cloud revised a lifetime value downward; the counter held its "
                "value instead.",
            ),
        ],
        [
            timeseries(
                "InfluxDB points written",
                "cps",
                [q(f"sum(rate(enphase_influxdb_points_written_total{RATE}))", "written")],
                w=6,
                description="Empty when the InfluxDB output is off.",
            ),
            timeseries(
                "InfluxDB write failures",
                "short",
                [q(f"sum(increase(enphase_influxdb_write_failures_total{RATE}))", "failures")],
                w=6,
                bars=True,
            ),
            timeseries(
                "InfluxDB queue",
                "short",
                [q("sum(enphase_influxdb_queue_points)", "queued points")],
                w=6,
                description="Points waiting to be written.",
            ),
            timeseries(
                "InfluxDB points dropped",
                "short",
                [q(f"sum(increase(enphase_influxdb_points_dropped_total{RATE}))", "dropped")],
                w=6,
                bars=True,
                description="Points lost because the queue was full.",
            ),
        ],
        [
            timeseries(
                "Exporter memory",
                "bytes",
                [q(f"process_resident_memory_bytes{EXPORTER}", "{{instance}} resident")],
                w=8,
            ),
            timeseries(
                "Exporter CPU",
                "percentunit",
                [q(f"rate(process_cpu_seconds_total{RATE}){EXPORTER}", "{{instance}}")],
                w=8,
            ),
            stat(
                "Exporter started",
                "dateTimeFromNow",
                [q(f"process_start_time_seconds{EXPORTER}{MS}", "{{instance}}")],
                w=8,
                h=8,
            ),
        ],
    ]
    return Dashboard(
        "enphase-exporter-health",
        "Enphase exporter health",
        "Whether the Enphase exporter is fetching data: per-source success and age, upstream requests, "
        "authentication, the InfluxDB output and the process itself.",
        [
            DATASOURCE_VARIABLE,
            query_variable("site_id", "Site", "label_values(enphase_up, site_id)", multi=True),
        ],
        rows,
    )


# ---------------------------------------------------------------------------------------------------

# File name: (dashboard, version). The InfluxDB versions have a folder of their own: the Prometheus
# dashboards' tests take every JSON file at the top level.
DASHBOARDS: dict[str, tuple[Callable[[], Dashboard], Dialect]] = {
    "site-overview.json": (site_overview, "prometheus"),
    "ev-charger.json": (ev_charger, "prometheus"),
    "exporter-health.json": (exporter_health, "prometheus"),
    "influxdb/site-overview.json": (site_overview, "influxdb"),
    "influxdb/ev-charger.json": (ev_charger, "influxdb"),
}


def render() -> dict[str, str]:
    """File name to JSON text for every dashboard."""
    return {
        name: json.dumps(build().version(dialect), indent=2, ensure_ascii=False) + "\n"
        for name, (build, dialect) in DASHBOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing them")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = OUT_DIR / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date, run {Path(__file__).name}: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
