import pytest

from exporter.readings import StateSet
from exporter.snapshot import SiteSnapshot
from exporter.sources import site_status, today
from exporter.sources.source import Fetch
from exporter.sources.today import Today


@pytest.mark.parametrize(
    ("raw", "status", "problems"),
    [("normal", "normal", 0), ("comm", "comm", 0), (" Warning ", "warning", 0), ("error", "error", 0)],
)
def test_known_statuses(raw: str, status: str, problems: int):
    parsed = site_status.parse(raw)
    assert parsed.value == site_status.SiteStatus(status) and len(parsed.problems) == problems


def test_an_unknown_status_is_unknown_and_counted():
    parsed = site_status.parse("meltdown")
    assert parsed.value == site_status.SiteStatus("unknown")
    assert parsed.problems == ("today.siteStatus: unknown status 'meltdown'",)


def test_no_status_no_series():
    assert site_status.parse(None).value is None


def test_today_reads_site_status_and_the_source_takes_it_without_a_request():
    parsed = today.parse({"siteStatus": "comm", "stats": []}, now=1774700000.0)
    assert parsed.value.site_status == "comm"
    site = SiteSnapshot("1234567", ("today", "site_status"), today=parsed.value)
    fetched = site_status.fetch(Fetch(client=None, site=site, now=1774700000.0))  # type: ignore[arg-type]
    assert fetched.value == site_status.SiteStatus("comm")
    (reading,) = site_status.readings(site, fetched.value)
    assert reading == StateSet(
        "enphase_site_status", reading.help, {"site_id": "1234567"}, "status", site_status.STATES, "comm"
    )


def test_before_today_answered_there_is_nothing():
    site = SiteSnapshot("1234567", ("today", "site_status"))
    assert site_status.fetch(Fetch(client=None, site=site, now=0.0)).value is None  # type: ignore[arg-type]
    assert isinstance(site_status.SOURCE.follows, str) and site_status.SOURCE.hourly_requests(1) == 0.0
    assert Today.__dataclass_fields__["site_status"].default is None
