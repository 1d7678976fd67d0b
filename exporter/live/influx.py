"""Live frames as InfluxDB points: measurement ``enphase_site_live``, at ``ENPHASE_LIVE_INFLUX_RESOLUTION``.

With a resolution of N seconds (default 10), each window of N seconds of a site gives one point at the
window's start: the mean of its frames' power per meter, the latest state of charge, reserve, modes and
energy counters. With 1 s, every frame is a point at its arrival time. The points go through the same
durable queue as the polled ones (``InfluxOutput.put``)::

    enphase_site_live,site_id=1234567 pv_power_watts=3200.5,grid_power_watts=-412.5,frames=10,
        grid_export_energy_joules_total=1.2e+06,grid_relay="closed" 1774675080000000000

A window is written when a frame of a later window arrives, or by ``tick`` once the window has ended and
``LATE`` seconds passed without a frame (the stream stopped).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from exporter.live.state import LiveSite
from exporter.render_influx import FieldValue, Point

MEASUREMENT = "enphase_site_live"
LATE = 2.0


@dataclass(slots=True)
class _Window:
    start: float
    frames: int = 0
    watts: dict[str, float] = field(default_factory=dict)  # meter -> sum over the frames that carry it
    voltamperes: dict[str, float] = field(default_factory=dict)
    carried: dict[str, int] = field(default_factory=dict)  # meter -> how many frames carry it
    latest: LiveSite | None = None


class LiveInfluxWindows:
    def __init__(self, put: Callable[[Iterable[Point]], None], resolution: float) -> None:
        self._put = put
        self._resolution = resolution
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def __call__(self, site: LiveSite) -> None:
        """``LiveStore`` listener: one frame of ``site``."""
        if site.frame is None or site.arrived_at is None:
            return
        if self._resolution <= 1:
            self._put([_point(site, _Window(site.arrived_at, 1), every_frame=True)])
            return
        start = math.floor(site.arrived_at / self._resolution) * self._resolution
        finished = None
        with self._lock:
            window = self._windows.get(site.site_id)
            if window is not None and window.start != start:
                finished, window = window, None
            if window is None:
                window = self._windows[site.site_id] = _Window(start)
            window.frames += 1
            for meter, reading in site.frame.meters.items():
                window.watts[meter] = window.watts.get(meter, 0.0) + reading.watts
                window.voltamperes[meter] = window.voltamperes.get(meter, 0.0) + reading.voltamperes
                window.carried[meter] = window.carried.get(meter, 0) + 1
            window.latest = site
        if finished is not None:
            self._put([_point(finished.latest, finished)])  # type: ignore[arg-type]

    def tick(self, now: float) -> None:
        """Write the windows whose time is over (the stream stopped in them)."""
        with self._lock:
            over = [
                site_id
                for site_id, window in self._windows.items()
                if now >= window.start + self._resolution + LATE
            ]
            finished = [self._windows.pop(site_id) for site_id in over]
        if finished:
            self._put([_point(window.latest, window) for window in finished if window.latest is not None])


def _point(site: LiveSite, window: _Window, *, every_frame: bool = False) -> Point:
    frame = site.frame
    assert frame is not None
    fields: dict[str, FieldValue] = {"frames": float(window.frames)}
    if every_frame:
        for meter, reading in frame.meters.items():
            fields[f"{meter}_power_watts"] = reading.watts
            fields[f"{meter}_apparent_power_voltamperes"] = reading.voltamperes
    for meter, carried in window.carried.items():
        fields[f"{meter}_power_watts"] = window.watts[meter] / carried
        fields[f"{meter}_apparent_power_voltamperes"] = window.voltamperes[meter] / carried
    for name, value in (
        ("state_of_charge_ratio", frame.state_of_charge_ratio),
        ("backup_reserve_ratio", frame.backup_reserve_ratio),
    ):
        if value is not None:
            fields[name] = value
    for flow, joules in site.energy_joules.items():
        fields[f"{flow}_energy_joules_total"] = joules
    for name, text in (
        ("battery_mode", frame.battery_mode),
        ("grid_relay", frame.grid_relay),
        ("generator_relay", frame.generator_relay),
    ):
        if text is not None:
            fields[name] = text
    when = site.arrived_at if every_frame else window.start
    assert when is not None
    return Point(MEASUREMENT, (("site_id", site.site_id),), fields, round(when * 1_000_000) * 1000)
