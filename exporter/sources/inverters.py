"""Microinverters and what each produced today — two endpoints, read in one poll.

1. ``GET /app-api/<site_id>/inverters.json?limit=<n>&offset=<k>`` → ``{"total": …, "not_reporting": …,
   "inverters": [{"id", "name", "serial_number", "sku_id", "status", "statusText", "last_report",
   "array_name", …}]}``, in pages of ``LIMIT``: read until ``total`` items are in or a page comes back short,
   at most ``MAX_PAGES`` pages (a ``total`` that claims more is counted, and so is a page that brings only
   inverters already read: an answer that ignores ``offset`` ends the reading there).
2. ``GET /systems/<site_id>/inverter_data_x/energy.json?start_date=<day>&end_date=<day>`` →
   ``{"production": {"<inverter id>": Wh}}``, for the site's local today. The keys are inverter ids: an
   inverter is found by its ``id`` where the list carries one, else by its serial (should the keys be
   serials); a key that names no listed inverter is counted and not exported.

The site's local date: ``today`` knows the site's UTC offset (``Today.utc_offset_seconds``), and the date is
that of now at that offset. Without it, the date of today's stats item, while now falls within that day;
else the UTC date (off by one for a few hours a day far from UTC: the gauge then shows a neighbouring day,
or is absent when that day has no data).

When the list was read but the energy request fails, the list is still published and the energy gauges are
absent, and the source is down (``Incomplete``: the reason on the status page), since half of what it reads
did not come. An energy answer that cannot be read counts as a problem instead. A lost session takes the
source down with nothing published.

Sample output::

    enphase_inverter_info{site_id="1234567",serial="4820",model="IQ7PLUS-72",array="South roof"} 1.0
    enphase_inverter_normal{site_id="1234567",serial="4820"} 1.0
    enphase_inverter_last_report_timestamp_seconds{site_id="1234567",serial="4820"} 1.7746746e+09
    enphase_inverter_production_today_joules{site_id="1234567",serial="4820"} 5.4e+06

Units, per field: ``production`` values are Wh for the day so far (times 3600: J); below 0 or above
``MAX_DAILY_WH`` (more than a microinverter makes in a day) is broken, counted and absent; ``"N/A"`` or
``null`` is absent, not a problem. ``last_report`` is epoch s and ``status`` text, read as in ``devices``.
``total`` is a count of inverters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from exporter.client import AuthError, CloudError
from exporter.readings import Gauge, Info, Reading
from exporter.sources import devices
from exporter.sources.energy_day import local_date
from exporter.sources.source import Fetch, Incomplete, Source
from exporter.values import NOT_AVAILABLE, WH_TO_JOULES, Parsed, PayloadError, Reader, require_object

if TYPE_CHECKING:
    from exporter.snapshot import SiteSnapshot

ENDPOINT = "inverters"
ENERGY_ENDPOINT = "inverter_energy"
LIMIT = 100  # inverters per page
MAX_PAGES = 50  # 5000 inverters: beyond any one site; a larger ``total`` is not believed
# The largest microinverters are rated under 500 W; 10 kWh in a day is out of reach for any of them.
MAX_DAILY_WH = 10_000.0


@dataclass(frozen=True, slots=True)
class Inverter:
    serial: str
    id: str | None  # what the energy payload is keyed by; not every shape of the list carries it
    model: str | None  # sku_id
    array: str | None  # array_name
    normal: bool | None
    last_report_timestamp: float | None
    production_today_joules: float | None = None


@dataclass(frozen=True, slots=True)
class InverterPage:
    total: int | None  # how many inverters the site has, by the page's own word
    items: int  # items on the page, readable or not: what the next offset counts
    inverters: tuple[Inverter, ...]


@dataclass(frozen=True, slots=True)
class Inverters:
    inverters: tuple[Inverter, ...]  # serial unique


def path(site_id: str) -> str:
    return f"/app-api/{site_id}/inverters.json"


def page_query(offset: int) -> dict[str, str]:
    return {"limit": str(LIMIT), "offset": str(offset)}


def energy_path(site_id: str) -> str:
    return f"/systems/{site_id}/inverter_data_x/energy.json"


def energy_query(day: date) -> dict[str, str]:
    return {"start_date": day.isoformat(), "end_date": day.isoformat()}


def parse_page(payload: Any) -> Parsed[InverterPage]:
    body = require_object(payload, ENDPOINT)
    items = body.get("inverters")
    if not isinstance(items, list):
        raise PayloadError(f"{ENDPOINT}: no list of inverters")
    reader = Reader()
    total = reader.number(body, "total", ENDPOINT, required=True, minimum=0)
    if total is not None and total != int(total):
        reader.problem(f"{ENDPOINT}.total", f"not a whole number: {total}")
        total = None
    inverters = []
    for index, item in enumerate(items):
        here = f"{ENDPOINT}.inverters[{index}]"
        if not isinstance(item, Mapping):
            reader.problem(here, f"expected an object, got {type(item).__name__}")
            continue
        serial = devices.serial_number(reader, item, here)
        if serial is None:
            continue  # no serial, no series
        inverters.append(
            Inverter(
                serial=serial,
                id=devices.text_value(reader, item, "id", here),
                model=devices.text_value(reader, item, "sku_id", here),
                array=devices.text_value(reader, item, "array_name", here),
                normal=devices.normal(reader, item, here),
                last_report_timestamp=devices.last_report(reader, item, here),
            )
        )
    page = InverterPage(None if total is None else int(total), len(items), tuple(inverters))
    return Parsed(page, tuple(reader.problems))


def parse_energy(payload: Any) -> Parsed[Mapping[str, float]]:
    """Joules produced today, by the payload's key (an inverter id)."""
    body = require_object(payload, ENERGY_ENDPOINT)
    production = body.get("production")
    if isinstance(production, list) and not production:
        return Parsed({})  # an empty object, as some servers write it: nothing produced yet
    if not isinstance(production, Mapping):
        raise PayloadError(f"{ENERGY_ENDPOINT}: no production object")
    reader = Reader()
    joules: dict[str, float] = {}
    for raw_key, raw in production.items():
        key = reader.safe_text(str(raw_key), f"{ENERGY_ENDPOINT}.production").strip()
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in NOT_AVAILABLE):
            continue
        value = reader.coerce_number(
            raw,
            f"{ENERGY_ENDPOINT}.production.{key}",
            scale=WH_TO_JOULES,
            minimum=0.0,
            maximum=MAX_DAILY_WH * WH_TO_JOULES,
        )
        if value is not None:
            joules[key] = value
    return Parsed(joules, tuple(reader.problems))


def assemble(pages: Sequence[InverterPage], energy: Mapping[str, float]) -> Parsed[Inverters]:
    """The pages' inverters, each serial once (the first), with today's energy joined in by id, else by
    serial. Pure: ``fetch`` gets the pages and the energy, this puts them together."""
    problems: list[str] = []
    by_serial: dict[str, Inverter] = {}
    for page in pages:
        for inverter in page.inverters:
            if inverter.serial in by_serial:
                problems.append(f"{ENDPOINT}: inverter listed twice: {inverter.serial[:40]!r}")
            else:
                by_serial[inverter.serial] = inverter
    by_id = {inverter.id: serial for serial, inverter in by_serial.items() if inverter.id is not None}
    joined: set[str] = set()
    for key, joules in energy.items():
        serial = by_id.get(key) or (key if key in by_serial else None)
        if serial is None:
            problems.append(f"{ENERGY_ENDPOINT}.production: no listed inverter has the id {key[:40]!r}")
        elif serial in joined:
            problems.append(f"{ENERGY_ENDPOINT}.production: a second value for inverter {serial[:40]!r}")
        else:
            joined.add(serial)
            by_serial[serial] = replace(by_serial[serial], production_today_joules=joules)
    return Parsed(Inverters(tuple(by_serial.values())), tuple(problems))


def site_local_date(site: SiteSnapshot, now: float) -> date:
    """The site's date at ``now``: see the module's docstring."""
    today = site.today
    if today is not None and today.utc_offset_seconds is not None:
        return datetime.fromtimestamp(now + today.utc_offset_seconds, UTC).date()
    if today is not None and today.day is not None and 0 <= now - today.day.start_timestamp < 86400:
        return local_date(today.day.start_timestamp)
    return datetime.fromtimestamp(now, UTC).date()


def fetch(poll: Fetch) -> Parsed[Inverters]:
    site_id = poll.site.site_id
    pages, problems = _read_pages(poll)
    energy: Mapping[str, float] = {}
    failed: str | None = None
    if any(page.inverters for page in pages):
        day = site_local_date(poll.site, poll.now)
        try:
            parsed = parse_energy(
                poll.client.get_json(ENERGY_ENDPOINT, energy_path(site_id), energy_query(day))
            )
        except AuthError:
            raise  # the session is gone: not something to publish around
        except PayloadError as failure:
            problems.append(f"{ENERGY_ENDPOINT}: {failure}; today's energy left out")
        except CloudError as failure:
            failed = f"{failure}; the inverters are shown without today's energy"
        else:
            energy = parsed.value
            problems.extend(parsed.problems)
    assembled = assemble(pages, energy)
    result = Parsed(assembled.value, (*problems, *assembled.problems))
    if failed is not None:
        # The list is shown; the source is down (enphase_source_up 0, the reason on the status page), since
        # half of what it reads did not come: a request that failed is no parse error.
        raise Incomplete(failed, result)
    return result


def _read_pages(poll: Fetch) -> tuple[list[InverterPage], list[str]]:
    pages: list[InverterPage] = []
    problems: list[str] = []
    seen: set[str] = set()
    read = 0
    total: int | None = None
    while True:
        parsed = parse_page(poll.client.get_json(ENDPOINT, path(poll.site.site_id), page_query(read)))
        page = parsed.value
        serials = {inverter.serial for inverter in page.inverters}
        if serials and serials <= seen:  # the answer ignores the offset: nothing more to learn from it
            problems.append(f"{ENDPOINT}: the page at offset {read} repeats inverters already read; stopped")
            return pages, problems
        problems.extend(parsed.problems)
        pages.append(page)
        seen |= serials
        read += page.items
        total = page.total if page.total is not None else total
        # A short page ends the list only where no total says more is to come: a server may cap its pages
        # below LIMIT. An empty page always ends it.
        if not page.items or (total is not None and read >= total) or (total is None and page.items < LIMIT):
            break
        if len(pages) == MAX_PAGES:
            problems.append(
                f"{ENDPOINT}: total {total} not reached in {MAX_PAGES} pages ({read} read); stopped"
            )
            return pages, problems
    if total is not None and read != total:
        problems.append(f"{ENDPOINT}: total says {total}, {read} listed")
    return pages, problems


def readings(site: SiteSnapshot, model: Inverters) -> Iterator[Reading]:
    def labels(inverter: Inverter) -> dict[str, str]:
        return {"site_id": site.site_id, "serial": inverter.serial}

    for inverter in model.inverters:
        details = {"model": inverter.model, "array": inverter.array}
        yield Info(
            "enphase_inverter_info",
            "Each microinverter of the site (inverters.json): its model (SKU) and array; refreshed hourly by "
            "default.",
            labels(inverter),
            details,
        )
    for inverter in model.inverters:
        yield Gauge(
            "enphase_inverter_normal",
            "1 when the microinverter's status is normal, 0 for any other status (inverters.json).",
            labels(inverter),
            inverter.normal,
        )
    for inverter in model.inverters:
        yield Gauge(
            "enphase_inverter_last_report_timestamp_seconds",
            "When the microinverter last reported to the cloud (Unix time, inverters.json).",
            labels(inverter),
            inverter.last_report_timestamp,
        )
    for inverter in model.inverters:
        yield Gauge(
            "enphase_inverter_production_today_joules",
            "Energy the microinverter produced today so far, site's local day, in joules "
            "(inverter_data_x/energy.json); absent where the cloud gave no value.",
            labels(inverter),
            inverter.production_today_joules,
        )


SOURCE = Source(
    name="inverters",
    reads="inverters.json and inverter_data_x/energy.json: each microinverter, its status and last report, "
    "and its energy today",
    default_interval=3600,
    minimum_interval=900,
    first_run=5.0,
    fetch=fetch,
    readings=readings,
    requests_per_poll=2.0,
)
