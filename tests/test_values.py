import pytest

from exporter.values import TEXT_LIMIT, Reader, parse_iso_timestamp

# 2026-03-28T04:54:34.360Z in Unix seconds
MOMENT = 1774673674.36


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-28T04:54:34.360Z[UTC]",
        "2026-03-28T04:54:34.360Z",
        "2026-03-28T04:54:34.360+00:00",
        "2026-03-28T05:54:34.360+01:00[Europe/Amsterdam]",
        "2026-03-28T04:54:34.360000000Z[UTC]",
    ],
)
def test_iso_forms_with_fractions(text):
    assert parse_iso_timestamp(text) == pytest.approx(MOMENT)


def test_iso_without_fraction_and_without_offset_is_utc():
    assert parse_iso_timestamp("2026-03-28T04:54:34Z[UTC]") == pytest.approx(1774673674)
    assert parse_iso_timestamp("2026-03-28T04:54:34") == pytest.approx(1774673674)


def test_iso_nanoseconds():
    assert parse_iso_timestamp("2025-08-11T10:02:03.805264449Z[UTC]") == pytest.approx(1754906523.805264)


def test_epoch_seconds_and_milliseconds_follow_the_declared_unit():
    reader = Reader()
    assert reader.timestamp({"t": 1774673674}, "t", "x", epoch_unit="s") == 1774673674
    assert reader.timestamp({"t": 1774673674360}, "t", "x", epoch_unit="ms") == pytest.approx(MOMENT)
    assert reader.timestamp({"t": "1774673674360"}, "t", "x", epoch_unit="ms") == pytest.approx(MOMENT)
    assert reader.problems == []


def test_a_timestamp_in_the_wrong_unit_is_absent_and_counted_not_repaired():
    reader = Reader()
    assert reader.timestamp({"t": 1774673674}, "t", "x", epoch_unit="ms") is None  # 1970: not plausible
    assert reader.timestamp({"t": "yesterday"}, "t", "x", epoch_unit="s") is None
    assert len(reader.problems) == 2


def test_numbers_sent_as_strings():
    reader = Reader()
    assert reader.number({"v": "230"}, "v", "x") == 230.0
    assert reader.number({"v": " 6 "}, "v", "x") == 6.0
    assert reader.number({"v": "N/A"}, "v", "x") is None
    assert reader.number({"v": True}, "v", "x") is None
    assert reader.number({"v": "nan"}, "v", "x") is None
    assert len(reader.problems) == 3


def test_missing_keys_count_only_when_required():
    reader = Reader()
    assert reader.number({}, "v", "x") is None
    assert reader.problems == []
    assert reader.flag({}, "v", "x", required=True) is None
    assert reader.problems == ["x.v: missing"]


@pytest.mark.parametrize(
    ("raw", "expected"), [(True, True), (0, False), (1, True), ("true", True), ("0", False)]
)
def test_flags(raw, expected):
    assert Reader().flag({"f": raw}, "f", "x") is expected


def test_null_is_absent_without_a_problem():
    reader = Reader()
    assert reader.number({"v": None}, "v", "x", required=True) is None
    assert reader.problems == []


@pytest.mark.parametrize(
    "raw",
    ["\ud800", "Carport\udfff", "nul\x00 esc\x1b[2J del\x7f", "line\nbreak\r", "x" * 100_000],
    ids=["lone-high-surrogate", "lone-low-surrogate", "control", "newline", "huge"],
)
def test_unsafe_cloud_text_is_made_safe_once_where_it_is_read(raw):
    reader = Reader()
    text = reader.text({"name": raw}, "name", "chargers[0]")
    assert text is not None
    text.encode("utf-8")  # a lone surrogate raised UnicodeEncodeError here, and in every scrape
    assert len(text) <= TEXT_LIMIT
    assert not any(ord(char) < 32 or 0x7F <= ord(char) <= 0x9F for char in text)
    assert len(reader.problems) == 1 and reader.problems[0].startswith("chargers[0].name: unsafe text")


def test_ordinary_names_with_quotes_and_accents_pass_unchanged():
    reader = Reader()
    name = 'Carport "links" \\ Ladestation ü 充电'
    assert reader.text({"name": name}, "name", "chargers[0]") == name
    assert reader.problems == []
