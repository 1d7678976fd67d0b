"""Wiring: builds the client, authentication, poller and registry from one ``Settings`` object.

``serve`` and ``once`` share this, so the one-shot output is exactly what a scrape would show.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, disable_created_metrics
from prometheus_client.process_collector import ProcessCollector

from exporter import __version__
from exporter.auth import AuthState, PasswordLogin, PastedHeaders, SessionFile
from exporter.client import CloudClient, GatewayTransport, RequestBudget, RequestMetrics, Transport
from exporter.config import Secret, Settings
from exporter.influx import InfluxOutput, build_output
from exporter.live.collector import LiveCollector
from exporter.live.influx import LiveInfluxWindows
from exporter.live.state import LiveStore
from exporter.live.streams import LiveStreams
from exporter.poller import Poller, Telemetry
from exporter.render_prometheus import Intervals, SnapshotCollector
from exporter.snapshot import SnapshotStore
from exporter.sources.gateway import Gateway

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Exporter:
    settings: Settings
    registry: CollectorRegistry
    store: SnapshotStore
    client: CloudClient
    poller: Poller
    auth_state: AuthState
    influx: InfluxOutput | None  # started by the caller, closed by the caller
    live: LiveStore | None = None  # the live stream's state; streamed by start_live_streams (serve)
    telemetry: Telemetry | None = None
    live_influx: LiveInfluxWindows | None = None


def build(
    settings: Settings,
    *,
    process_metrics: bool = False,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Exporter:
    """Everything but the scheduler and the HTTP server. Raises ``SessionFileError`` for an unsafe file.

    ``monotonic`` and ``sleep`` time the client's pauses, budget and back-off: a time-lapse run fakes them."""
    disable_created_metrics()  # *_created series are noise for an exporter's counters
    registry = CollectorRegistry()
    transport = Transport(
        settings.base_url,
        RequestMetrics(registry),
        budget=RequestBudget(settings.request_budget, clock=monotonic),
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries=settings.retries,
        clock=monotonic,
        sleep=sleep,
    )
    auth: PastedHeaders | PasswordLogin
    if settings.e_auth_token is not None and settings.cookie is not None:
        auth = PastedHeaders(
            settings.e_auth_token.reveal(), settings.cookie.reveal(), settings.base_url + "/"
        )
    else:
        assert settings.email is not None, "config validation guarantees credentials"
        session_file = SessionFile(settings.session_file, settings.email)
        saved = session_file.load()
        if saved is not None:
            log.info("Reusing the saved Enlighten session from %s", settings.session_file)
        password = settings.password.reveal() if settings.password else None
        auth = PasswordLogin(
            transport,
            settings.email,
            password,
            session_file,
            saved=saved,
            login_pause=settings.login_backoff,
            clock=clock,
        )
    client = CloudClient(transport, auth)
    store = SnapshotStore()
    influx = build_output(settings.influx, registry) if settings.influx else None
    gateway = _gateway(settings, registry)
    telemetry = Telemetry(registry)
    live_influx = LiveInfluxWindows(influx.put, settings.live_influx_resolution) if influx else None
    live = LiveStore(listeners=(live_influx,) if live_influx else ())
    registry.register(LiveCollector(live, clock))
    poller = Poller(
        client,
        store,
        telemetry,
        history_start=settings.history_start,
        max_site_power_watts=settings.max_site_power_watts,
        sources=settings.sources,
        listeners=(influx,) if influx else (),
        clock=clock,
        gateway=gateway,
        live_delivering=lambda site_id: live.delivering(site_id, clock()),
    )
    intervals = Intervals(settings.intervals, settings.ev_status_charging_interval)
    registry.register(SnapshotCollector(store, auth.state, intervals, clock))
    Gauge(
        "enphase_exporter_build_info",
        "Build data of the exporter (always 1).",
        ["version"],
        registry=registry,
    ).labels(__version__).set(1)
    if process_metrics:
        ProcessCollector(registry=registry)
    return Exporter(
        settings, registry, store, client, poller, auth.state, influx, live, telemetry, live_influx
    )


def start_live_streams(exporter: Exporter, site_ids: tuple[str, ...]) -> LiveStreams | None:
    """``serve``: stream live power for the sites, unless ``ENPHASE_LIVE_STREAM=off``."""
    settings = exporter.settings
    if settings.live_stream == "off" or not site_ids or exporter.live is None:
        return None
    from exporter.live.mqtt import open_link  # paho-mqtt is loaded only where it is used

    assert exporter.telemetry is not None
    parse_errors = exporter.telemetry.parse_errors.labels("live_stream")
    windows = exporter.live_influx
    streams = LiveStreams(
        exporter.client,
        exporter.live,
        exporter.store,
        lambda credentials, site_id, events: open_link(
            credentials, site_id, events, plain_loopback=settings.live_plain_loopback
        ),
        mode=settings.live_stream,
        polls_today="today" in settings.sources,
        on_bad_frame=parse_errors.inc,
        on_problems=lambda count: parse_errors.inc(count) if count else None,
        tick=windows.tick if windows else lambda now: None,
    )
    streams.start(site_ids)
    return streams


def _gateway(settings: Settings, registry: CollectorRegistry) -> Gateway | None:
    config = settings.gateway
    if config is None:
        return None
    if config.insecure_skip_verify:
        log.warning(
            "ENPHASE_GATEWAY_INSECURE_SKIP_VERIFY: the gateway's certificate is not checked; anyone on the "
            "network path could read its token. Pin it with ENPHASE_GATEWAY_CERT_SHA256 instead."
        )
    transport = GatewayTransport(config.url, config.token.reveal(), registry, cert_sha256=config.cert_sha256)
    return Gateway(transport, registry, site_id=config.site_id)


@contextmanager
def demo_cloud_if_asked(settings: Settings) -> Iterator[Settings]:
    """With ``--demo``: start the simulated cloud and point the settings at it, with its own credentials."""
    if not settings.demo:
        yield settings
        return
    from exporter.demo import DEMO_EMAIL, DEMO_PASSWORD, DemoCloud

    with DemoCloud() as cloud, tempfile.TemporaryDirectory(prefix="enphase-demo-") as state:
        log.info("Demo mode: a simulated Enlighten cloud runs at %s; no real account is used", cloud.base_url)
        if settings.demo_faults is not None:
            # A timed-out answer must outlast the client's patience, or it would only be a slow one.
            cloud.faults.mix(settings.demo_faults, timeout_seconds=settings.read_timeout + 5)
            log.info("Demo faults: %s", settings.demo_faults)
        yield replace(
            settings,
            base_url=cloud.base_url,
            email=DEMO_EMAIL,
            password=Secret(DEMO_PASSWORD),
            e_auth_token=None,
            cookie=None,
            session_file=Path(state) / "session.json",
            live_plain_loopback=True,  # the demo broker speaks ws:// on 127.0.0.1 (exporter/demo/live.py)
        )
