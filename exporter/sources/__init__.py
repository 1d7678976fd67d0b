"""One module per Enlighten endpoint: its path, a pure ``parse`` into frozen dataclasses, and its ``SOURCE``.

``REGISTRY`` lists every source the exporter can poll; the scheduler, ``once``, the settings, the status page,
the renderers and the README's tables read it.
Adding a source: a module with a ``SOURCE`` (see ``exporter.sources.source``), and its line here.
"""

from exporter.sources import (
    battery_settings,
    battery_status,
    charge_mode,
    daily_energy,
    devices,
    ev_status,
    ev_summary,
    inverters,
    latest_power,
    lifetime_energy,
    site_status,
    today,
)
from exporter.sources.source import Source

REGISTRY: tuple[Source, ...] = (
    ev_status.SOURCE,
    ev_summary.SOURCE,
    today.SOURCE,
    lifetime_energy.SOURCE,
    daily_energy.SOURCE,
    site_status.SOURCE,
    latest_power.SOURCE,
    devices.SOURCE,
    battery_status.SOURCE,
    battery_settings.SOURCE,
    charge_mode.SOURCE,
    inverters.SOURCE,
)

BY_NAME: dict[str, Source] = {source.name: source for source in REGISTRY}
NAMES = tuple(BY_NAME)
DEFAULTS = tuple(source.name for source in REGISTRY if source.enabled_by_default)
