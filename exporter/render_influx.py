"""The InfluxDB renderer: points from each successful poll, in line protocol.

Measurements (tags ``site_id``, and ``serial`` for a charger); fields are named like the metrics without their
``enphase_<area>_`` prefix, in the same units (see ``exporter.catalog``)::

    enphase_ev_charger,serial=EV01,site_id=1234567 charging=1.0,connector_status="charging" <server time>
    enphase_battery,site_id=1234567 state_of_charge_ratio=0.62,charge_today_joules=3.6e+06,… <last report>
    enphase_site,site_id=1234567 production_power_watts=560.0,production_joules_total=6.3e+10,… <last report>
    enphase_site_interval,site_id=1234567 production_joules=504000.0,state_of_charge_ratio=0.61 <bucket start>
    enphase_site_daily,site_id=1234567 production_joules=5.472e+07,charge_joules=1.1e+07 <local midnight>

Every point carries the upstream's own time, so writing a reading again overwrites it: provisional buckets are
corrected, never duplicated. Numbers are always floats (InfluxDB refuses a field that changes type); a value
that is absent upstream is absent here, and NaN or infinity is never written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from exporter.catalog import (
    CHARGER_STATUS_GAUGES,
    CHARGER_SUMMARY_GAUGES,
    TODAY_GAUGES,
    Model,
    Row,
    channel_metric,
)
from exporter.poller import Polled, lifetime_metric_name
from exporter.readings import Counter, Gauge, Reading, StateSet, source_readings
from exporter.snapshot import SiteSnapshot
from exporter.sources.energy_day import EnergyDay
from exporter.sources.ev_status import ChargerStatus
from exporter.sources.ev_summary import ChargerSummary
from exporter.sources.today import Today

FieldValue = float | bool | str
# Longest first: enphase_battery_unit_cycles_total is the battery unit's, not the battery's.
AREAS = (
    "enphase_battery_unit",
    "enphase_ev_charger",
    "enphase_inverter",
    "enphase_battery",
    "enphase_device",
    "enphase_site",
)
INTERVAL = "enphase_site_interval"
DAILY = "enphase_site_daily"


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: tuple[tuple[str, str], ...]  # sorted by key, as InfluxDB stores them
    fields: Mapping[str, FieldValue]
    time_ns: int

    def line(self) -> str:
        tags = "".join(f",{_escape_key(key)}={_escape_key(value)}" for key, value in self.tags if value)
        fields = ",".join(f"{_escape_key(key)}={_field_value(value)}" for key, value in self.fields.items())
        return f"{_escape_measurement(self.measurement)}{tags} {fields} {self.time_ns}"


def field_name(metric: str) -> tuple[str, str]:
    """``enphase_battery_charge_today_joules`` → (``enphase_battery``, ``charge_today_joules``)."""
    for area in AREAS:
        if metric.startswith(area + "_"):
            return area, metric[len(area) + 1 :]
    raise ValueError(f"{metric} belongs to no measurement")


def points(polled: Polled) -> list[Point]:
    """The points one successful poll produced."""
    site = polled.site
    if polled.source == "ev_status" and site.ev_status is not None:
        when = site.ev_status.server_timestamp or polled.observed_at
        return [_charger_status(site.site_id, charger, when) for charger in site.ev_status.chargers]
    if polled.source == "ev_summary" and site.ev_summary is not None:
        return [_charger_summary(site.site_id, c, polled.observed_at) for c in site.ev_summary.chargers]
    if polled.source == "today" and site.today is not None:
        latest = _latest_today(site, site.today, polled.observed_at)
        if site.today.day is None:
            return latest
        cutoff = site.today.last_report_timestamp or polled.observed_at
        return latest + list(history_points(site.site_id, (site.today.day,), cutoff))
    if polled.source in ("daily_energy", "lifetime_energy"):
        history = polled.history.days if polled.history is not None else ()
        points = list(history_points(site.site_id, history, polled.observed_at))
        if site.today is None:
            return points
        # The lifetime counters moved: write the latest battery and site readings again, with them.
        return points + _latest_today(site, site.today, polled.observed_at)
    return reading_points(source_readings(site, only=polled.source), polled.observed_at)


def reading_points(readings: Iterable[Reading], when: float) -> list[Point]:
    """A further source's readings (exporter.readings) as points: one per measurement and tag set."""
    grouped: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, FieldValue]] = {}
    for reading in readings:
        area, field = field_name(reading.metric)
        fields = grouped.setdefault((area, tuple(sorted(reading.labels.items()))), {})
        if isinstance(reading, Gauge | Counter):
            _put(fields, field, reading.value)
        elif isinstance(reading, StateSet):
            fields[field] = reading.current
        else:
            fields.update((name, text) for name, text in reading.details.items() if text)
    return [Point(area, tags, fields, _ns(when)) for (area, tags), fields in grouped.items() if fields]


def history_points(site_id: str, days: Iterable[EnergyDay], cutoff: float) -> Iterator[Point]:
    """One point per bucket that had begun before ``cutoff`` and one per day: future buckets of a partial day
    come back as 0 or null, and a 0 written for the future would be a lie."""
    tags = (("site_id", site_id),)
    for day in days:
        if day.start_timestamp >= cutoff:
            continue
        for index in range(_bucket_count(day)):
            start = day.interval_start(index)
            if start >= cutoff:
                break
            fields = _energy_fields(day, index)
            if fields:
                yield Point(INTERVAL, tags, fields, _ns(start))
        totals = _day_totals(day)
        if totals:
            yield Point(DAILY, tags, totals, _ns(day.start_timestamp))


# -- one function per kind of reading ----------------------------------------------------------------------


def _charger_status(site_id: str, charger: ChargerStatus, when: float) -> Point:
    fields = _from_table(CHARGER_STATUS_GAUGES, charger)
    if charger.connectors:
        # The tags are fixed at site_id and serial; the IQ EV Charger has one connector, whose status this is.
        fields["connector_status"] = charger.connectors[0].status
    return Point("enphase_ev_charger", _charger_tags(site_id, charger.serial), fields, _ns(when))


def _charger_summary(site_id: str, charger: ChargerSummary, observed_at: float) -> Point:
    fields = _from_table(CHARGER_SUMMARY_GAUGES, charger)
    _put(fields, "energy_delivered_joules_total", charger.energy_delivered_joules)
    for name in ("name", "model", "firmware_version"):
        if getattr(charger, name):
            fields[name] = getattr(charger, name)
    when = charger.last_report_timestamp or observed_at
    return Point("enphase_ev_charger", _charger_tags(site_id, charger.serial), fields, _ns(when))


def _latest_today(site: SiteSnapshot, today: Today, observed_at: float) -> list[Point]:
    by_area: dict[str, dict[str, FieldValue]] = {"enphase_battery": {}, "enphase_site": {}}
    for metric, _, getter in TODAY_GAUGES:
        area, field = field_name(metric)
        _put(by_area[area], field, getter(today))
    if today.profile is not None:
        by_area["enphase_battery"]["profile"] = today.profile
    for channel, watts in today.power_watts.items():
        _put_metric(by_area, channel_metric(channel, "power_watts"), watts)
    if today.day is not None:
        for channel, joules in today.day.channel_totals.items():
            _put_metric(by_area, channel_metric(channel, "today_joules"), joules)
        for (source, sink), series in today.day.flows.items():
            _put(by_area["enphase_site"], f"energy_flow_{source}_{sink}_today_joules", _sum(series))
        for load, series in today.day.loads.items():
            _put(by_area["enphase_site"], f"load_{load}_today_joules", _sum(series))
    for channel, joules in site.lifetime_joules.items():
        _put_metric(by_area, lifetime_metric_name(channel), joules)
    when = today.last_report_timestamp or observed_at
    tags = (("site_id", site.site_id),)
    return [Point(area, tags, fields, _ns(when)) for area, fields in by_area.items() if fields]


def _energy_fields(day: EnergyDay, index: int) -> dict[str, FieldValue]:
    fields: dict[str, FieldValue] = {}
    for channel, series in day.channels.items():
        _put(fields, _day_field(channel), _at(series, index))
    _put(fields, "state_of_charge_ratio", _at(day.state_of_charge, index))
    for (source, sink), series in day.flows.items():
        _put(fields, f"energy_flow_{source}_{sink}_joules", _at(series, index))
    for load, series in day.loads.items():
        _put(fields, f"load_{load}_joules", _at(series, index))
    return fields


def _day_totals(day: EnergyDay) -> dict[str, FieldValue]:
    fields: dict[str, FieldValue] = {}
    for channel, joules in day.channel_totals.items():
        _put(fields, _day_field(channel), joules)
    for (source, sink), series in day.flows.items():
        _put(fields, f"energy_flow_{source}_{sink}_joules", _sum(series))
    for load, series in day.loads.items():
        _put(fields, f"load_{load}_joules", _sum(series))
    return fields


# -- helpers -----------------------------------------------------------------------------------------------


def _day_field(channel: str) -> str:
    """``battery_charge`` → ``charge_joules`` (as ``enphase_battery_charge_today_joules`` without the area
    and the day); ``grid_import`` → ``grid_import_joules``."""
    return field_name(channel_metric(channel, "joules"))[1]


def _from_table(table: Iterable[Row[Model]], model: Model) -> dict[str, FieldValue]:
    fields: dict[str, FieldValue] = {}
    for metric, _, getter in table:
        _put(fields, field_name(metric)[1], getter(model))
    return fields


def _put_metric(by_area: dict[str, dict[str, FieldValue]], metric: str, value: float | None) -> None:
    area, field = field_name(metric)
    _put(by_area[area], field, value)


def _put(fields: dict[str, FieldValue], name: str, value: float | bool | None) -> None:
    if value is None or (not isinstance(value, bool) and not math.isfinite(value)):
        return
    fields[name] = float(value)


def _charger_tags(site_id: str, serial: str) -> tuple[tuple[str, str], ...]:
    return (("serial", serial), ("site_id", site_id))


def _bucket_count(day: EnergyDay) -> int:
    series = (*day.channels.values(), *day.flows.values(), *day.loads.values(), day.state_of_charge)
    return max((len(s) for s in series), default=0)


def _at(series: tuple[float | None, ...], index: int) -> float | None:
    return series[index] if index < len(series) else None


def _sum(series: tuple[float | None, ...]) -> float:
    return sum(value for value in series if value is not None)


def _ns(seconds: float) -> int:
    """Nanoseconds, rounded to the microsecond: a float of Unix seconds holds no more than that, and the same
    upstream time must always give the same point time, or a rewrite would duplicate instead of replace."""
    return round(seconds * 1_000_000) * 1000


# Line protocol escaping: measurement names escape commas and spaces; keys and tag values also escape "=";
# string field values are double-quoted with backslash and quote escaped.
_CONTROL_ESCAPES = {"\n": r"\n", "\t": r"\t", "\r": r"\r"}
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", **_CONTROL_ESCAPES})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", **_CONTROL_ESCAPES})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": " "})


def _escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT_ESCAPES)


def _escape_key(key: str) -> str:
    return key.translate(_KEY_ESCAPES)


def _field_value(value: FieldValue) -> str:
    if isinstance(value, str):
        return '"' + value.translate(_STRING_ESCAPES) + '"'
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text  # "3" is a float in line protocol too, and shorter
