"""What a source offers the outputs: readings, one per metric sample, which both renderers write.

A source module turns its model into readings (``readings(site_id, model)``); the Prometheus renderer writes
each as a sample, the InfluxDB renderer as a field of a point. So a new source needs no renderer code:

- ``Gauge`` and ``Counter``: a number (a bool is 1 or 0). ``None`` means absent: no sample, no field.
- ``StateSet``: an enumeration, one series per known state on /metrics, the current state as a string
  field in InfluxDB.
- ``Info``: descriptive strings, labels of one series of value 1 on /metrics, string fields in InfluxDB.

In InfluxDB the measurement is the metric's area (``enphase_inverter_normal`` → ``enphase_inverter``), the
field the rest of the name (``normal``); the labels are tags, but for an ``Info``'s details and a
``StateSet``'s state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exporter.snapshot import SiteSnapshot


@dataclass(frozen=True, slots=True)
class Gauge:
    metric: str
    help: str
    labels: Mapping[str, str]
    value: float | bool | None


@dataclass(frozen=True, slots=True)
class Counter:
    metric: str  # as exported, ending in _total
    help: str
    labels: Mapping[str, str]
    value: float | None


@dataclass(frozen=True, slots=True)
class StateSet:
    metric: str
    help: str
    labels: Mapping[str, str]
    label: str  # the label that carries the state on /metrics
    states: tuple[str, ...]  # the known states, "unknown" last
    current: str


@dataclass(frozen=True, slots=True)
class Info:
    metric: str  # ends in _info
    help: str
    labels: Mapping[str, str]  # what identifies the thing: InfluxDB tags
    # What describes it: more labels on /metrics ("" where None: every series of a family has every label),
    # string fields in InfluxDB (none where None).
    details: Mapping[str, str | None]


Reading = Gauge | Counter | StateSet | Info


def state_of(raw: str | None, states: tuple[str, ...]) -> str:
    """``raw`` as one of ``states`` (compared in lower case, ``-`` and spaces as ``_``), else ``unknown``."""
    if raw is None:
        return "unknown"
    key = raw.strip().lower().replace("-", "_").replace(" ", "_")
    return key if key in states else "unknown"


def source_readings(site: SiteSnapshot, only: str | None = None) -> Iterator[Reading]:
    """The readings of the site's further sources (those with ``readings``), or of the source ``only``."""
    from exporter.sources import REGISTRY  # the sources' modules import this one

    for source in REGISTRY:
        if source.readings is None or (only is not None and source.name != only):
            continue
        model = site.models.get(source.name)
        if model is not None:
            yield from source.readings(site, model)
