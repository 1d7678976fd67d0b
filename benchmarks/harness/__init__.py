"""The demo cloud's test harness, shared by the benchmarks, the tests and scripts/demo_chart.py; not shipped.

- ``timelapse``: the real exporter against the demo cloud on a fake clock (days of polling in seconds);
- ``referee``: the rules a client must keep, checked request by request from the demo cloud's journal.

The benchmarks import it as ``harness`` (``python3 benchmarks/x.py`` puts benchmarks/ first on sys.path, as
for ``tables``); tests/conftest.py and scripts/demo_chart.py put benchmarks/ on sys.path themselves.
"""
