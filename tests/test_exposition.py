"""The fast /metrics writer must say exactly what prometheus_client would, in every format it is asked for."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from exporter import exposition
from exporter.app import build
from exporter.config import load
from exporter.demo.server import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SITE_ID, DemoCloud
from exporter.sources import DEFAULTS as SOURCES

ACCEPTS = [
    "",  # curl, and Prometheus 2 by default: text 0.0.4
    "text/plain;version=1.0.0;escaping=allow-utf-8",
    "text/plain;version=1.0.0",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=0.0.4;q=0.3",
    "application/openmetrics-text",
    "application/openmetrics-text;version=1.0.0;escaping=underscores",
    "application/openmetrics-text;version=1.0.0;escaping=dots",  # prometheus_client's own path
    "text/plain;version=1.0.0;escaping=values",
]


def reference(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


class Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


@pytest.fixture(scope="module")
def demo_registry(tmp_path_factory: pytest.TempPathFactory) -> CollectorRegistry:
    """The exporter's whole registry (site series, histograms, process metrics) after polling the demo."""
    with DemoCloud() as cloud:
        environ = {
            "ENPHASE_BASE_URL": cloud.base_url,
            "ENPHASE_EMAIL": DEMO_EMAIL,
            "ENPHASE_PASSWORD": DEMO_PASSWORD,
            "ENPHASE_SESSION_FILE": str(tmp_path_factory.mktemp("session") / "session.json"),
            "ENPHASE_SITE_ID": DEMO_SITE_ID,
            "ENPHASE_HISTORY_START": "2026-01-01",
        }
        exporter = build(load({}, environ))
        for source in ("today", *(source for source in SOURCES if source != "today")):
            assert exporter.poller.poll(DEMO_SITE_ID, source)
    return exporter.registry


@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_exporters_registry_reads_the_same_in_every_format(demo_registry, accept):
    ours, content_type = exposition.render(demo_registry, accept)
    # The process collector reads /proc at each collection: compare after one collection for both writers.
    families = list(demo_registry.collect())
    theirs, their_type = reference(Families(families), accept)
    assert content_type == their_type
    assert exposition.write(families, exposition.Format.from_content_type(content_type)) == theirs
    assert b"charging" in ours and b"bucket" in ours  # (names differ under the dots and values escapings)
    assert ours.endswith(b"# EOF\n") == content_type.startswith("application/openmetrics-text")


def test_families_it_does_not_write_itself_still_come_out_right():
    registry = CollectorRegistry()  # _created samples, a histogram, a unit, a timestamp, a name with a colon
    Counter("with_created", "A counter that says when it was created.", ["a"], registry=registry).labels(
        "x"
    ).inc()
    Histogram("latency_seconds", "Latency.", registry=registry).observe(0.3)
    timed = GaugeMetricFamily("timed", "A gauge with a timestamp.", labels=["a"])
    timed.add_metric(["x"], 1.5, timestamp=1_700_000_000.25)
    unit = GaugeMetricFamily("length_meters", "A gauge with a unit.", unit="meters")
    unit.add_metric([], 3.0)
    colon = GaugeMetricFamily("rule:level", "A recording-rule style name.")
    colon.add_metric([], 2.0)
    families = [*registry.collect(), timed, unit, colon]
    for accept in ACCEPTS:
        theirs, content_type = reference(Families(families), accept)
        assert exposition.write(families, exposition.Format.from_content_type(content_type)) == theirs, accept


TEXT = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ['a"b', "c\\d", "e\nf", "\\n", ""]
)
# Names that need escaping in some format (left to prometheus_client), and reserved-looking ones:
ODD_NAMES = st.sampled_from(["a-b", "ü", "a:b", "x.y", "_", "__reserved", "le"])
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
VALUES = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, 1.0, 1e6, 123456789.0, 1e-7, 3.6e9, 2**53 + 1.0])
    | st.integers(-(10**12), 10**12)
)


@st.composite
def families(draw: st.DrawFn) -> list[Metric]:
    found: list[Metric] = []
    for name in draw(st.lists(NAMES | ODD_NAMES, min_size=1, max_size=4, unique=True)):
        labels = draw(st.lists(NAMES | ODD_NAMES, max_size=3, unique=True))
        kind = draw(st.sampled_from([GaugeMetricFamily, CounterMetricFamily]))
        family = kind(name, draw(TEXT), labels=labels)
        for _ in range(draw(st.integers(0, 4))):
            values = dict(
                zip(labels, draw(st.lists(TEXT, min_size=len(labels), max_size=len(labels))), strict=True)
            )
            shuffled = dict(draw(st.permutations(list(values.items()))))  # label order must not matter
            sample_name = name + "_total" if kind is CounterMetricFamily else name
            family.samples.append(Sample(sample_name, shuffled, draw(VALUES)))
        found.append(family)
    return found


@settings(max_examples=300, deadline=None)
@given(families(), st.sampled_from(ACCEPTS))
def test_any_gauges_and_counters_read_the_same(found: list[Metric], accept: str) -> None:
    try:
        theirs, content_type = reference(Families(found), accept)
    except (ValueError, TypeError, OverflowError):
        return  # prometheus_client refuses the family itself: nothing to compare
    assert exposition.write(found, exposition.Format.from_content_type(content_type)) == theirs


def test_minus_zero_and_zero_are_two_values_even_from_the_value_cache():
    family = GaugeMetricFamily("g", "Zeros.", labels=["n"])
    for n, value in enumerate([0.0, -0.0, 0, math.nan, math.nan, 1, 1.0, True]):
        family.samples.append(Sample("g", {"n": str(n)}, value))
    body = exposition.write([family], exposition.Format(False, "underscores", "0.0.4")).decode()
    lines = [line.split(" ")[1] for line in body.splitlines() if not line.startswith("#")]
    assert lines == ["0.0", "-0.0", "0.0", "NaN", "NaN", "1.0", "1.0", "1.0"]


def test_a_label_that_cannot_be_encoded_does_not_fail_the_scrape_in_any_format():
    plain = GaugeMetricFamily("charger_up", "Up.", labels=["name"])
    plain.add_metric(["\ud800"], 1.0)
    escaped = GaugeMetricFamily("odd", "Needs prometheus_client.", labels=["a-b"])  # not the fast path
    escaped.add_metric(["\udfff"], 2.0)
    for accept in ACCEPTS:
        _, content_type = choose_encoder(accept)
        body = exposition.write([plain, escaped], exposition.Format.from_content_type(content_type))
        assert b'="?"' in body, accept


def test_hostile_strings_in_every_cloud_string_field_never_fail_a_scrape(tmp_path):
    with DemoCloud() as cloud:
        cloud.faults.inject("hostile_strings", count=None)
        environ = {
            "ENPHASE_BASE_URL": cloud.base_url,
            "ENPHASE_EMAIL": DEMO_EMAIL,
            "ENPHASE_PASSWORD": DEMO_PASSWORD,
            "ENPHASE_SESSION_FILE": str(tmp_path / "session.json"),
            "ENPHASE_SITE_ID": DEMO_SITE_ID,
            "ENPHASE_HISTORY_START": "2026-01-01",
        }
        exporter = build(load({}, environ))
        for source in SOURCES:
            exporter.poller.poll(DEMO_SITE_ID, source)
    for accept in ACCEPTS:
        body, content_type = exposition.render(exporter.registry, accept)
        text = body.decode("utf-8")
        assert "\ufffd" in text, accept  # the hostile names did reach the labels, made safe
        assert not any(line.startswith("injected_metric") for line in text.splitlines()), accept
        if content_type.startswith("text/plain; version=0.0.4"):
            names = {family.name for family in text_string_to_metric_families(text)}
            assert "enphase_ev_charger_info" in names
