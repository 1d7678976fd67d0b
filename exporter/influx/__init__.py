"""The InfluxDB output: ``render_influx`` makes the points, ``queue`` keeps them, ``writers`` send them,
``output`` ties the three together behind the poller.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from exporter.config import InfluxSettings
from exporter.influx.output import InfluxOutput
from exporter.influx.queue import open_queue
from exporter.influx.writers import writer_for


def build_output(settings: InfluxSettings, registry: CollectorRegistry) -> InfluxOutput:
    """Never fails for the queue's sake: /metrics matters more than a queue that cannot be opened."""
    queue, _ = open_queue(settings.queue_dir, settings.queue_max_bytes)
    return InfluxOutput(writer_for(settings), queue, registry)
