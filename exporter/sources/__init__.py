"""One module per Enlighten endpoint: its path, a pure ``parse`` into frozen dataclasses, and its ``SOURCE``.

``REGISTRY`` lists every source the exporter can poll; the scheduler, ``once``, the settings, the status page,
the renderers and the README's tables read it.
Adding a source: a module with a ``SOURCE`` (see ``exporter.sources.source``), and its line here.
"""

from exporter.sources import (
    daily_energy,
    ev_status,
    ev_summary,
    latest_power,
    lifetime_energy,
    today,
)
from exporter.sources.source import Source

REGISTRY: tuple[Source, ...] = (
    ev_status.SOURCE,
    ev_summary.SOURCE,
    today.SOURCE,
    lifetime_energy.SOURCE,
    daily_energy.SOURCE,
    latest_power.SOURCE,
)

BY_NAME: dict[str, Source] = {source.name: source for source in REGISTRY}
NAMES = tuple(BY_NAME)
DEFAULTS = tuple(source.name for source in REGISTRY if source.enabled_by_default)
