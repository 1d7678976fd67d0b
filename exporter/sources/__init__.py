"""One module per Enlighten endpoint: its path and a pure ``parse`` into frozen dataclasses.

``NAMES`` are the sources the exporter can poll, as they appear in the ``source`` label.
"""

NAMES = ("ev_status", "ev_summary", "today", "lifetime_energy", "daily_energy")
