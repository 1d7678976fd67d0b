"""The /metrics body: prometheus_client's exposition, byte for byte, written faster for plain families.

Why not ``generate_latest``? At 100 sites (10,600 series) a scrape took 82 ms, 83 % of it in
``generate_latest`` formatting each sample: sorting and escaping every label of every line, and in
OpenMetrics passing every sample name through a character-by-character escape (cProfile, via
``benchmarks/scrape_cost.py``). The site series are all gauges and counters with plain names, so they take
a short path here: label order worked out once per label set, each distinct label value escaped once, each
distinct value formatted once. Anything else (histograms, ``_created`` samples, units, timestamps, names
that need escaping, the ``dots`` and ``values`` escapings) goes through prometheus_client itself, family by
family. prometheus_client also still chooses the format from the Accept header. Tests compare the two
writers on the same registry for every format, including generated families with awkward text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

PLAIN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # needs no escaping in any format this module writes
OPENMETRICS_EOF = "# EOF\n"


@dataclass(frozen=True, slots=True)
class Format:
    openmetrics: bool
    escaping: str
    version: str

    @classmethod
    def from_content_type(cls, content_type: str) -> Format:
        """The format prometheus_client chose, read back from the Content-Type it answered with."""
        parameters = dict(part.strip().split("=", 1) for part in content_type.split(";")[1:] if "=" in part)
        return cls(
            content_type.startswith("application/openmetrics-text"),
            parameters.get("escaping", openmetrics.UNDERSCORES),
            parameters.get("version", "1.0.0"),
        )


def render(registry: Collector, accept: str = "") -> tuple[bytes, str]:
    """The body and Content-Type of a scrape that sent ``accept``."""
    _, content_type = choose_encoder(accept)
    return write(registry.collect(), Format.from_content_type(content_type)), content_type


def write(families: Iterable[Metric], form: Format) -> bytes:
    writer = _Writer(form)
    for family in families:
        if form.escaping in (openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8) and _plain(family):
            writer.plain(family)
        else:
            writer.out.append(_by_prometheus_client(family, form))
    if form.openmetrics:
        writer.out.append(OPENMETRICS_EOF)
    # Cloud text is made safe where it is parsed (exporter.values.safe_text); should anything unencodable
    # still get through, it becomes "?" here rather than a failed scrape.
    return "".join(writer.out).encode(errors="replace")


def _plain(family: Metric) -> bool:
    """A gauge or counter whose every line can be written without escaping names."""
    if family.type not in ("gauge", "counter") or family.unit or not PLAIN_NAME.fullmatch(family.name):
        return False
    expected = family.name + "_total" if family.type == "counter" else family.name
    return all(
        sample.name == expected
        and sample.value is not None
        and sample.timestamp is None
        and sample.exemplar is None
        and sample.native_histogram is None
        for sample in family.samples
    )


class _Writer:
    def __init__(self, form: Format) -> None:
        self.form = form
        self.out: list[str] = []
        self._label_orders: dict[tuple[str, ...], tuple[str, ...] | None] = {}  # None: a name needs escaping
        self._escaped: dict[str, str] = {}
        self._values: dict[float | str, str] = {}

    def plain(self, family: Metric) -> None:
        samples = family.samples
        orders = [self._label_order(tuple(sample.labels)) for sample in samples]
        if any(order is None for order in orders):
            self.out.append(_by_prometheus_client(family, self.form))
            return
        # The text format names a counter's family after its sample (name_total); OpenMetrics after the
        # counter, and escapes double quotes in HELP as well.
        if self.form.openmetrics:
            name, help_text = family.name, _escape(family.documentation)
        else:
            name = family.name + "_total" if family.type == "counter" else family.name
            help_text = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        out = self.out
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {family.type}\n")
        for sample, order in zip(samples, orders, strict=True):
            assert order is not None  # families with a label order that is None went to prometheus_client
            out.append(f"{sample.name}{self._labels(sample.labels, order)} {self._value(sample.value)}\n")

    def _label_order(self, names: tuple[str, ...]) -> tuple[str, ...] | None:
        order = self._label_orders.get(names, ())
        if order == ():
            plain = all(PLAIN_NAME.fullmatch(name) and not name.startswith("__") for name in names)
            order = self._label_orders[names] = tuple(sorted(names)) if plain else None
        return order

    def _labels(self, labels: Mapping[str, str], order: tuple[str, ...]) -> str:
        if not order:
            return ""
        escaped = self._escaped
        parts = []
        for name in order:
            value = labels[name]
            text = escaped.get(value)
            if text is None:
                text = escaped[value] = _escape(value)
            parts.append(f'{name}="{text}"')
        return "{" + ",".join(parts) + "}"

    def _value(self, value: float) -> str:
        # 0.0 and -0.0 are one dict key but two lines; NaN never finds itself in a dict.
        key: float | str = value if value else repr(float(value))
        text = self._values.get(key)
        if text is None:
            text = floatToGoString(value)
            if value == value:
                self._values[key] = text
        return text


def _escape(text: str) -> str:
    """Label values (both formats) and OpenMetrics HELP: backslash, newline and double quote."""
    if "\\" in text or "\n" in text or '"' in text:
        return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return text


class _One:
    def __init__(self, family: Metric) -> None:
        self._family = family

    def collect(self) -> list[Metric]:
        return [self._family]


def _by_prometheus_client(family: Metric, form: Format) -> str:
    try:
        return _generate(family, form)
    except UnicodeEncodeError:  # a lone surrogate: prometheus_client encodes strictly; see write()
        return _generate(_encodable(family), form)


def _generate(family: Metric, form: Format) -> str:
    if form.openmetrics:
        body = openmetrics.generate_latest(_One(family), escaping=form.escaping, version=form.version)
        return body.decode().removesuffix(OPENMETRICS_EOF)
    return generate_latest(_One(family), escaping=form.escaping).decode()


def _encodable(family: Metric) -> Metric:
    def fix(text: str) -> str:
        return text.encode(errors="replace").decode()

    copy = Metric(fix(family.name), fix(family.documentation), family.type, family.unit)
    copy.samples = [
        sample._replace(name=fix(sample.name), labels={fix(k): fix(v) for k, v in sample.labels.items()})
        for sample in family.samples
    ]
    return copy
