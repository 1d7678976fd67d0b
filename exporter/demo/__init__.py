"""A simulated Enlighten cloud for ``enphase-exporter serve --demo`` and the tests (see server.py)."""

from .server import DEMO_CHARGER_SERIAL, DEMO_EMAIL, DEMO_PASSWORD, DEMO_SITE_ID, DemoCloud

__all__ = ["DEMO_CHARGER_SERIAL", "DEMO_EMAIL", "DEMO_PASSWORD", "DEMO_SITE_ID", "DemoCloud"]
