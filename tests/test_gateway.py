"""The local IQ Gateway as an optional EV status source: a demo gateway over HTTPS with a certificate made
at test time, in front of the demo cloud."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_gateway import GATEWAY_TOKEN, DemoGateway
from prometheus_client import CollectorRegistry

from exporter import cli, config
from exporter.app import build
from exporter.client import GatewayCertificateMismatch, GatewayTransport, GatewayUnauthorized
from exporter.demo import DEMO_CHARGER_SERIAL, DEMO_EMAIL, DEMO_PASSWORD, DEMO_SITE_ID, DemoCloud
from exporter.sources.gateway import RETRY_SECONDS, Gateway, parse_chargers
from exporter.values import PayloadError

CLOUD_STATUS = f"/service/evse_controller/{DEMO_SITE_ID}/ev_chargers/status"
NOW = 1764701100.0  # the demo charger is plugged in


# -- the pure parse ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        ["EV1", "EV2"],
        [{"sn": "EV1"}, {"serialNumber": "EV2"}],
        {"chargers": [{"serial": "EV1"}, "EV2", "EV1"]},
        {"data": [{"sn": "EV1"}, {"sn": "EV2"}]},
        {"data": {"chargers": ["EV1", {"sn": "EV2", "status": "NORMAL"}]}},
    ],
)
def test_charger_lists_in_any_known_shape(payload):
    assert parse_chargers(payload) == ("EV1", "EV2")


@pytest.mark.parametrize("payload", [{}, {"chargers": "EV1"}, "EV1", None])
def test_a_payload_without_a_charger_list_is_a_parse_error(payload):
    with pytest.raises(PayloadError):
        parse_chargers(payload)


def test_an_empty_list_is_no_charger():
    assert parse_chargers({"chargers": [{"status": "x"}, ""]}) == ()


# -- end to end ----------------------------------------------------------------------------------------------


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DemoCloud]:
    for name in [name for name in os.environ if name.startswith("ENPHASE_")]:
        monkeypatch.delenv(name)
    with DemoCloud(clock=lambda: NOW) as demo:
        for name, value in {
            "ENPHASE_BASE_URL": demo.base_url,
            "ENPHASE_EMAIL": DEMO_EMAIL,
            "ENPHASE_PASSWORD": DEMO_PASSWORD,
            "ENPHASE_SESSION_FILE": str(tmp_path / "session.json"),
            "ENPHASE_SOURCES": "ev_status",
            "ENPHASE_GATEWAY_TOKEN": GATEWAY_TOKEN,
            "ENPHASE_LOG_LEVEL": "debug",
        }.items():
            monkeypatch.setenv(name, value)
        yield demo


def once(capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["once"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def value(exposition: str, series: str) -> float | None:
    match = re.search(rf"^{re.escape(series)} (\S+)$", exposition, re.M)
    return float(match[1]) if match else None


def cloud_status_requests(cloud: DemoCloud) -> int:
    return sum(1 for _, path in cloud.requests_seen if path == CLOUD_STATUS)


def test_ev_status_comes_from_a_gateway_that_answers_and_the_cloud_is_not_asked(
    cloud, capsys, monkeypatch, tmp_path
):
    with DemoGateway(tmp_path, clock=lambda: NOW) as gateway:
        monkeypatch.setenv("ENPHASE_GATEWAY_URL", gateway.url)
        monkeypatch.setenv("ENPHASE_GATEWAY_CERT_SHA256", gateway.fingerprint.upper())
        code, out, err = once(capsys)
    assert code == 0, err
    assert cloud_status_requests(cloud) == 0
    assert gateway.requests == ["/ivp/pdm/chargers", f"/ivp/pdm/charger/{DEMO_CHARGER_SERIAL}/status"]
    assert all(gateway.bearer_ok)
    assert value(out, "enphase_gateway_up") == 1
    assert value(out, f'enphase_source_up{{site_id="{DEMO_SITE_ID}",source="gateway"}}') == 1
    assert value(out, f'enphase_source_up{{site_id="{DEMO_SITE_ID}",source="ev_status"}}') == 1
    assert (
        value(
            out, f'enphase_ev_charger_plugged_in{{serial="{DEMO_CHARGER_SERIAL}",site_id="{DEMO_SITE_ID}"}}'
        )
        == 1
    )
    assert 'enphase_gateway_request_duration_seconds_count{endpoint="gateway_ev_status"} 1.0' in out
    assert GATEWAY_TOKEN not in out + err  # at debug level too


def test_a_gateway_answering_401_is_logged_once_reported_down_and_the_cloud_carries_on(
    cloud, monkeypatch, tmp_path, caplog
):
    with DemoGateway(tmp_path, unauthorized=True) as gateway:
        monkeypatch.setenv("ENPHASE_GATEWAY_URL", gateway.url)
        monkeypatch.setenv("ENPHASE_GATEWAY_CERT_SHA256", gateway.fingerprint)
        settings = config.load({}, os.environ)
        exporter = build(settings)
        gateway_source = exporter.poller.gateway
        assert gateway_source is not None
        gateway_source.assign_site((DEMO_SITE_ID,))
        with caplog.at_level(logging.INFO):
            gateway_source.discover()
            assert exporter.poller.poll(DEMO_SITE_ID, "ev_status")
            assert exporter.poller.poll(DEMO_SITE_ID, "ev_status")
            assert gateway.requests == ["/ivp/pdm/chargers"]  # no repeated attempts before rediscovery
            gateway_source.discover()  # the next rediscovery asks again, and logs nothing new
    assert gateway.requests == ["/ivp/pdm/chargers", "/ivp/pdm/chargers"]
    scope_lines = [r for r in caplog.records if "installer-scope" in r.getMessage()]
    assert len(scope_lines) == 1
    assert cloud_status_requests(cloud) == 2
    assert exporter.registry.get_sample_value("enphase_gateway_up") == 0
    site = exporter.store.current.sites[DEMO_SITE_ID]
    assert site.health["ev_status"].up and not site.health["gateway"].up
    assert site.up  # the optional gateway never turns enphase_up to 0
    assert GATEWAY_TOKEN not in caplog.text


def test_the_cloud_takes_over_in_the_same_poll_when_the_gateway_fails(cloud, monkeypatch, tmp_path):
    with DemoGateway(tmp_path, clock=lambda: NOW) as gateway:
        monkeypatch.setenv("ENPHASE_GATEWAY_URL", gateway.url)
        monkeypatch.setenv("ENPHASE_GATEWAY_CERT_SHA256", gateway.fingerprint)
        exporter = build(config.load({}, os.environ))
        gateway_source = exporter.poller.gateway
        assert gateway_source is not None
        gateway_source.assign_site((DEMO_SITE_ID,))
        gateway_source.discover()
        assert exporter.poller.poll(DEMO_SITE_ID, "ev_status")
        assert cloud_status_requests(cloud) == 0
        gateway.failing = True
        assert exporter.poller.poll(DEMO_SITE_ID, "ev_status")
    assert cloud_status_requests(cloud) == 1
    site = exporter.store.current.sites[DEMO_SITE_ID]
    assert site.health["ev_status"].up and site.ev_status is not None
    assert site.health["gateway"].error == "gateway_ev_status: HTTP 503"
    assert not exporter.poller.ev_status_via_gateway(DEMO_SITE_ID)  # the cloud, until the retry


def test_a_certificate_other_than_the_pinned_one_is_refused_before_the_token_is_sent(tmp_path):
    with DemoGateway(tmp_path) as gateway:
        wrong = "ab" * 32
        transport = GatewayTransport(gateway.url, GATEWAY_TOKEN, CollectorRegistry(), cert_sha256=wrong)
        with pytest.raises(GatewayCertificateMismatch) as refused:
            transport.get_json("gateway_chargers", "/ivp/pdm/chargers")
        assert gateway.requests == []
        message = str(refused.value)
        assert "does not match ENPHASE_GATEWAY_CERT_SHA256" in message
        assert gateway.fingerprint in message  # what to pin, if the gateway's certificate really changed
        assert GATEWAY_TOKEN not in message


def test_a_pinned_gateway_that_refuses_the_token_says_unauthorized(tmp_path):
    with DemoGateway(tmp_path, unauthorized=True) as gateway:
        transport = GatewayTransport(
            gateway.url, GATEWAY_TOKEN, CollectorRegistry(), cert_sha256=gateway.fingerprint
        )
        with pytest.raises(GatewayUnauthorized):
            transport.get_json("gateway_chargers", "/ivp/pdm/chargers")


def test_skipping_verification_works_only_when_asked_and_warns(cloud, monkeypatch, tmp_path, caplog):
    with DemoGateway(tmp_path, clock=lambda: NOW) as gateway:
        monkeypatch.setenv("ENPHASE_GATEWAY_URL", gateway.url)
        with pytest.raises(config.ConfigError, match="ENPHASE_GATEWAY_CERT_SHA256"):
            config.load({}, os.environ)
        monkeypatch.setenv("ENPHASE_GATEWAY_INSECURE_SKIP_VERIFY", "1")
        with caplog.at_level(logging.WARNING):
            exporter = build(config.load({}, os.environ))
        assert any("not checked" in r.getMessage() for r in caplog.records)
        gateway_source = exporter.poller.gateway
        assert gateway_source is not None
        gateway_source.assign_site((DEMO_SITE_ID,))
        gateway_source.discover()
    assert exporter.poller.ev_status_via_gateway(DEMO_SITE_ID)


@pytest.mark.parametrize(
    ("environment", "complaint"),
    [
        ({"ENPHASE_GATEWAY_URL": "http://envoy.local"}, "HTTPS only"),
        ({"ENPHASE_GATEWAY_URL": "https://envoy.local", "ENPHASE_GATEWAY_TOKEN": ""}, "needs a token"),
        ({"ENPHASE_GATEWAY_CERT_SHA256": "ab" * 32}, "no gateway URL"),
        ({"ENPHASE_GATEWAY_URL": "https://envoy.local", "ENPHASE_GATEWAY_CERT_SHA256": "xyz"}, "64 hex"),
        (
            {
                "ENPHASE_GATEWAY_URL": "https://envoy.local",
                "ENPHASE_GATEWAY_CERT_SHA256": "ab" * 32,
                "ENPHASE_GATEWAY_INSECURE_SKIP_VERIFY": "1",
            },
            "not both",
        ),
    ],
)
def test_gateway_settings_are_checked(environment, complaint):
    base = {"ENPHASE_DEMO": "1"}
    if "ENPHASE_GATEWAY_TOKEN" not in environment and "ENPHASE_GATEWAY_URL" in environment:
        base["ENPHASE_GATEWAY_TOKEN"] = GATEWAY_TOKEN
    with pytest.raises(config.ConfigError, match=complaint) as error:
        config.load({}, {**base, **{k: v for k, v in environment.items() if v}})
    assert GATEWAY_TOKEN not in str(error.value)


def test_the_gateway_token_can_come_from_a_file(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(GATEWAY_TOKEN + "\n")
    settings = config.load(
        {},
        {
            "ENPHASE_DEMO": "1",
            "ENPHASE_GATEWAY_URL": "https://envoy.local",
            "ENPHASE_GATEWAY_TOKEN_FILE": str(token_file),
            "ENPHASE_GATEWAY_CERT_SHA256": ":".join(["AB"] * 32),
        },
    )
    assert settings.gateway is not None
    assert settings.gateway.token.reveal() == GATEWAY_TOKEN
    assert settings.gateway.cert_sha256 == "ab" * 32
    assert GATEWAY_TOKEN not in repr(settings)


def test_a_gateway_down_at_start_is_asked_again_after_a_few_minutes_not_hours(tmp_path):
    now = [1000.0]
    with DemoGateway(tmp_path, clock=lambda: NOW) as demo_gateway:
        demo_gateway.failing = True
        registry = CollectorRegistry()
        transport = GatewayTransport(
            demo_gateway.url, GATEWAY_TOKEN, registry, cert_sha256=demo_gateway.fingerprint
        )
        gateway = Gateway(transport, registry, clock=lambda: now[0])
        gateway.assign_site((DEMO_SITE_ID,))
        gateway.discover()
        assert not gateway.serves(DEMO_SITE_ID)
        demo_gateway.failing = False
        gateway.rediscover_if_due()
        assert demo_gateway.requests == ["/ivp/pdm/chargers"]  # not yet: the retry waits
        now[0] += RETRY_SECONDS
        gateway.rediscover_if_due()
    assert gateway.serves(DEMO_SITE_ID)
    assert registry.get_sample_value("enphase_gateway_up") == 1
