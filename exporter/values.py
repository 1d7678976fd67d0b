"""Reading vendor values once, at the boundary.

The Enlighten cloud sends numbers as strings, booleans as 0/1, and times in three forms (ISO strings with a
``[UTC]`` suffix, epoch seconds, epoch milliseconds). Every field's unit is declared by the parser that reads
it — never guessed from the size of the value. A value that cannot be read becomes ``None`` (absent) and is
recorded as a problem, so the caller can count it in ``enphase_parse_errors_total``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")

WH_TO_JOULES = 3600.0
PERCENT_TO_RATIO = 0.01

# Timestamps outside this window are not misread units we could repair; they are broken values.
_EARLIEST_PLAUSIBLE = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
_LATEST_PLAUSIBLE = datetime(2100, 1, 1, tzinfo=UTC).timestamp()

EpochUnit = Literal["s", "ms"]
NOT_AVAILABLE = ("", "n/a", "na", "none", "null", "-")  # how the cloud writes "no value" in a string field

# Cloud strings become label values and InfluxDB tags. A lone surrogate cannot be encoded as UTF-8 at all (it
# took every scrape down), control characters break log lines and terminals, and a megabyte-long "name"
# multiplies into every series that carries it. Such text is made safe here, once, where it enters a model.
TEXT_LIMIT = 256
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class PayloadError(Exception):
    """The payload as a whole cannot be understood (not JSON, not an object, its main list missing)."""


@dataclass(frozen=True, slots=True)
class Parsed(Generic[T]):
    """A parser's result: the model, plus what could not be read (each counts as one parse error)."""

    value: T
    problems: tuple[str, ...] = ()


@dataclass(slots=True)
class Reader:
    """Reads typed fields from vendor dicts and keeps a list of what went wrong.

    ``required=True`` marks keys that every known shape of the payload carries: their absence is schema
    drift and is counted. Optional keys (those some firmware or shape lacks) are silently absent.
    """

    problems: list[str] = field(default_factory=list)

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def _get(self, obj: Mapping[str, Any], key: str, where: str, required: bool) -> Any:
        if key not in obj:
            if required:
                self.problem(f"{where}.{key}", "missing")
            return None
        return obj[key]

    def number(
        self,
        obj: Mapping[str, Any],
        key: str,
        where: str,
        *,
        scale: float = 1.0,
        required: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float | None:
        """A finite number, from a JSON number or a numeric string, multiplied by ``scale``; see
        ``coerce_number`` for the range."""
        raw = self._get(obj, key, where, required)
        return None if raw is None else self.coerce_number(raw, f"{where}.{key}", scale, minimum, maximum)

    def coerce_number(
        self,
        raw: Any,
        where: str,
        scale: float = 1.0,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float | None:
        """``minimum`` and ``maximum`` bound the value in base units (after ``scale``), from what the field
        means: a value outside them is broken, recorded as a problem and left out, never exported."""
        value = self._finite(raw, where, scale)
        if value is None:
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.problem(where, f"out of range: {_short(raw)}")
            return None
        return value

    def _finite(self, raw: Any, where: str, scale: float) -> float | None:
        if raw is None:
            return None
        if isinstance(raw, bool):
            self.problem(where, f"expected a number, got {raw!r}")
            return None
        if isinstance(raw, int | float):
            try:
                value = float(raw)
            except OverflowError:  # an integer with hundreds of digits
                self.problem(where, "number too large")
                return None
        elif isinstance(raw, str):
            try:
                value = float(raw.strip())
            except (ValueError, OverflowError):
                self.problem(where, f"expected a number, got {_short(raw)}")
                return None
        else:
            self.problem(where, f"expected a number, got {type(raw).__name__}")
            return None
        if not math.isfinite(value):
            self.problem(where, f"not a finite number: {raw!r}")
            return None
        if not math.isfinite(value * scale):  # 1e308 Wh is a finite float, but not in joules
            self.problem(where, f"number too large: {_short(raw)}")
            return None
        return value * scale

    def percent(
        self, obj: Mapping[str, Any], key: str, where: str, *, required: bool = False
    ) -> float | None:
        """A percentage as a ratio 0-1, from 48, "48" or "48%"; "N/A" (or "") is absent, not a problem."""
        raw = self._get(obj, key, where, required)
        if isinstance(raw, str):
            raw = raw.strip().removesuffix("%").strip()
            if raw.lower() in NOT_AVAILABLE:
                return None
        return self.coerce_number(raw, f"{where}.{key}", PERCENT_TO_RATIO, minimum=0.0, maximum=1.0)

    def word(self, obj: Mapping[str, Any], key: str, where: str) -> str | None:
        """A state word as sent (``status``, ``stormGuardState``): stripped and in lower case; None when
        absent or written as "N/A"; a value that is not text is a problem."""
        raw = obj.get(key)
        if raw is None:
            return None
        if not isinstance(raw, str):
            self.problem(f"{where}.{key}", f"expected a string, got {type(raw).__name__}")
            return None
        word = raw.strip().lower()
        return None if word in NOT_AVAILABLE else word

    def flag(self, obj: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> bool | None:
        """A boolean from true/false, 0/1 or "true"/"false"."""
        raw = self._get(obj, key, where, required)
        if raw is None:
            return None
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int | float) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false", "0", "1"):
            return raw.strip().lower() in ("true", "1")
        self.problem(f"{where}.{key}", f"expected a boolean, got {_short(raw)}")
        return None

    def text(self, obj: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
        raw = self._get(obj, key, where, required)
        if raw is None:
            return None
        if isinstance(raw, str):
            return self.safe_text(raw, f"{where}.{key}")
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return str(raw)  # ids are sometimes sent as numbers
        self.problem(f"{where}.{key}", f"expected a string, got {type(raw).__name__}")
        return None

    def safe_text(self, raw: str, where: str) -> str:
        """``raw`` with unencodable and control characters replaced by U+FFFD and cut to ``TEXT_LIMIT``.

        Either change is recorded as a problem: the cloud sent something no device name should hold."""
        text, changed = safe_text(raw)
        if changed:
            self.problem(where, f"unsafe text made safe: {_short(raw)}")
        return text

    def timestamp(
        self, obj: Mapping[str, Any], key: str, where: str, *, epoch_unit: EpochUnit, required: bool = False
    ) -> float | None:
        """Unix seconds from an ISO string or from an epoch number in this field's declared unit."""
        raw = self._get(obj, key, where, required)
        if raw is None:
            return None
        here = f"{where}.{key}"
        if isinstance(raw, str) and not _is_number_text(raw):
            seconds = parse_iso_timestamp(raw)
            if seconds is None:
                self.problem(here, f"not a timestamp: {_short(raw)}")
                return None
        else:
            number = self.coerce_number(raw, here)
            if number is None:
                return None
            seconds = number / 1000.0 if epoch_unit == "ms" else number
        if not _EARLIEST_PLAUSIBLE <= seconds < _LATEST_PLAUSIBLE:
            self.problem(here, f"timestamp out of range: {_short(raw)}")
            return None
        return seconds

    def mapping(
        self, obj: Mapping[str, Any], key: str, where: str, *, required: bool = False
    ) -> Mapping[str, Any]:
        """A nested object, or an empty one (with a problem recorded) when it is something else."""
        raw = self._get(obj, key, where, required)
        if raw is None:
            return {}
        if isinstance(raw, Mapping):
            return raw
        self.problem(f"{where}.{key}", f"expected an object, got {type(raw).__name__}")
        return {}

    def objects(
        self, obj: Mapping[str, Any], key: str, where: str, *, required: bool = False
    ) -> list[Mapping]:
        """A list of objects; entries that are not objects are dropped and counted."""
        raw = self._get(obj, key, where, required)
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problem(f"{where}.{key}", f"expected a list, got {type(raw).__name__}")
            return []
        items = []
        for index, item in enumerate(raw):
            if isinstance(item, Mapping):
                items.append(item)
            else:
                self.problem(f"{where}.{key}[{index}]", f"expected an object, got {type(item).__name__}")
        return items


def safe_text(raw: str) -> tuple[str, bool]:
    """``raw`` made safe to encode, log and use as a label (see ``TEXT_LIMIT``), and whether it changed."""
    text = _UNSAFE_CHARACTERS.sub(REPLACEMENT, raw)
    if len(text) > TEXT_LIMIT:
        text = text[: TEXT_LIMIT - 1] + "\u2026"
    return text, text != raw


def parse_iso_timestamp(text: str) -> float | None:
    """Unix seconds from ``2026-03-28T04:54:34.360Z[UTC]`` and its variants, or None.

    The live service appends a Java zone id in brackets and sometimes sends nanoseconds; a time without
    any offset is UTC (every capture of this service is in UTC).
    """
    cleaned = text.strip()
    if cleaned.endswith("]") and "[" in cleaned:
        cleaned = cleaned[: cleaned.index("[")]
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def require_object(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise PayloadError(f"{what}: expected a JSON object, got {type(payload).__name__}")
    return payload


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _short(raw: Any) -> str:
    """A value for an error message, cut short: payload values are data, never secrets, but can be long."""
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."
