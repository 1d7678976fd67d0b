"""Enphase cloud exporter: Enlighten EV charger and battery data as Prometheus metrics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("enphase-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
