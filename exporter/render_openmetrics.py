"""History as an OpenMetrics file, for ``promtool tsdb create-blocks-from openmetrics``.

The series are the ones the exporter serves live, sampled at the end of every 15-minute bucket, so that
dashboards and alert rules read backfilled history and live data alike::

    enphase_site_production_today_joules{site_id="1234567"} 5.472e+07 1774700100
    enphase_site_production_joules_total{site_id="1234567"} 6.3e+10 1774700100
    enphase_site_production_power_watts{site_id="1234567"} 560.0 1774700100
    enphase_battery_state_of_charge_ratio{site_id="1234567"} 0.61 1774700100

Lifetime counters start from what the site produced before the backfilled range (``base``), as the live
counters do, so the two join without a reset. OpenMetrics wants each family in one block and each series in
time order: the writer walks the days once per family rather than holding every line in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from exporter.catalog import CHANNEL_MEANING, channel_metric
from exporter.sources.energy_day import CHANNELS, EnergyDay, Series


@dataclass(frozen=True, slots=True)
class SiteHistory:
    site_id: str
    days: Sequence[EnergyDay]  # sorted by start
    base_joules: Mapping[str, float] = field(default_factory=dict)  # channel -> lifetime before the first day


Samples = Iterator[tuple[int, float]]  # (Unix seconds, value), in time order
Get = Callable[[EnergyDay], Series | None]  # one day's bucket values of a series; None: not measured
# A family: (name, type, help, the series of a site as (extra labels, samples)).
Family = tuple[str, str, str, Callable[[SiteHistory, float], list[tuple[dict[str, str], Samples]]]]


def write(out: TextIO, sites: Sequence[SiteHistory], cutoff: float) -> int:
    """Write every family; only buckets that ended by ``cutoff`` count. Returns the number of samples."""
    count = 0
    for name, kind, help_text, series_of in _families():
        sample_name = name + "_total" if kind == "counter" else name
        header = f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
        for site in sites:
            for labels, samples in series_of(site, cutoff):
                label_text = _labels({"site_id": site.site_id, **labels})
                for timestamp, value in samples:
                    out.write(f"{header}{sample_name}{label_text} {value!r} {timestamp}\n")
                    header = ""
                    count += 1
    out.write("# EOF\n")
    return count


def _families() -> Iterator[Family]:
    for channel in CHANNELS.values():
        yield from _channel_families(channel)
    yield (
        "enphase_battery_state_of_charge_ratio",
        "gauge",
        "Aggregate battery state of charge (0-1).",
        _state_of_charge,
    )
    yield (
        "enphase_site_energy_flow_today_joules",
        "gauge",
        "Energy flow since local midnight, in joules.",
        _flows,
    )
    yield (
        "enphase_site_load_today_joules",
        "gauge",
        "Energy used by a measured load since local midnight, in joules.",
        _loads,
    )


def _channel_families(channel: str) -> Iterator[Family]:
    meaning = CHANNEL_MEANING[channel]

    def get(day: EnergyDay) -> Series | None:
        return day.channels.get(channel)

    def today(site: SiteHistory, cutoff: float) -> list[tuple[dict[str, str], Samples]]:
        return [({}, _day_totals(site.days, get, cutoff))]

    def lifetime(site: SiteHistory, cutoff: float) -> list[tuple[dict[str, str], Samples]]:
        return [({}, _lifetime(site.days, get, cutoff, site.base_joules.get(channel, 0.0)))]

    def power(site: SiteHistory, cutoff: float) -> list[tuple[dict[str, str], Samples]]:
        return [({}, _power(site.days, get, cutoff))]

    yield (
        channel_metric(channel, "today_joules"),
        "gauge",
        f"Energy {meaning} since local midnight, in joules.",
        today,
    )
    yield channel_metric(channel, "joules"), "counter", f"Lifetime energy {meaning}, in joules.", lifetime
    yield (
        channel_metric(channel, "power_watts"),
        "gauge",
        f"Mean power {meaning} over the bucket, in watts.",
        power,
    )


def _state_of_charge(site: SiteHistory, cutoff: float) -> list[tuple[dict[str, str], Samples]]:
    return [({}, _levels(site.days, lambda day: day.state_of_charge, cutoff))]


def _flows(site: SiteHistory, cutoff: float) -> list[tuple[dict[str, str], Samples]]:
    def flow(pair: tuple[str, str]) -> Get:
        return lambda day: day.flows.get(pair)

    pairs = _present(site.days, lambda day: day.flows)
    return [
        ({"source": source, "sink": sink}, _day_totals(site.days, flow((source, sink)), cutoff))
        for source, sink in pairs
    ]


def _loads(site: SiteHistory, cutoff: float) -> list[tuple[dict[str, str], Samples]]:
    def load(name: str) -> Get:
        return lambda day: day.loads.get(name)

    names = _present(site.days, lambda day: day.loads)
    return [({"load": name}, _day_totals(site.days, load(name), cutoff)) for name in names]


# -- samples of one series: each walks the buckets that ended by the cutoff --------------------------------


def _buckets(days: Sequence[EnergyDay], get: Get, cutoff: float) -> Iterator[tuple[int, int, float | None]]:
    """(bucket index in its day, end time, value) for every bucket that has ended by ``cutoff``."""
    for day in days:
        for index, value in enumerate(get(day) or ()):
            end = day.interval_start(index + 1)
            if end > cutoff:
                return
            yield index, int(end), value


def _day_totals(days: Sequence[EnergyDay], get: Get, cutoff: float) -> Samples:
    total = 0.0
    for index, end, value in _buckets(days, get, cutoff):
        total = 0.0 if index == 0 else total
        if value is not None:
            total += value
            yield end, total


def _lifetime(days: Sequence[EnergyDay], get: Get, cutoff: float, base: float) -> Samples:
    total = base
    for _, end, value in _buckets(days, get, cutoff):
        if value is not None:
            total += value
            yield end, total


def _power(days: Sequence[EnergyDay], get: Get, cutoff: float) -> Samples:
    for day in days:
        for _, end, value in _buckets((day,), get, cutoff):
            if value is not None:
                yield end, value / day.interval_seconds


def _levels(days: Sequence[EnergyDay], get: Get, cutoff: float) -> Samples:
    for _, end, value in _buckets(days, get, cutoff):
        if value is not None:
            yield end, value


def _present(days: Sequence[EnergyDay], of: Callable[[EnergyDay], Mapping[Any, Series]]) -> list[Any]:
    """The keys (flows, loads) that some day measures, in first-seen order."""
    found: dict[Any, None] = {}
    for day in days:
        found.update(dict.fromkeys(of(day)))
    return list(found)


def _labels(labels: Mapping[str, str]) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{key}="{escape(value)}"' for key, value in labels.items()) + "}"
