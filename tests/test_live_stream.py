"""The live stream's credentials (pure parse, the MQTT username), its state, metrics and InfluxDB points."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from catalog import LIVE
from prometheus_client import CollectorRegistry
from protowire import bytes_field, channel, data_msg, int_field

from exporter import logs
from exporter.live.collector import LiveCollector
from exporter.live.frame import decode
from exporter.live.influx import MEASUREMENT, LiveInfluxWindows
from exporter.live.state import MAX_GAP, LiveStore
from exporter.render_influx import Point
from exporter.sources import live_stream, today
from exporter.values import PayloadError, Reader

TOKEN = "tok-3f9a/c+e=w"  # characters that must be URL-encoded in the username
DIGEST = "c2lnbmF0dXJl+/=="


def credentials_payload(**changes: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "aws_iot_endpoint": "abc123-ats.iot.example.com:8443",
        "aws_authorizer": "aws-lambda-authoriser-prod",
        "aws_token_key": "enph_token",
        "aws_token_value": TOKEN,
        "aws_digest": DIGEST,
        "live_stream_topic": "v1/live-stream/42",
        "live_stream_duration": 900,
        "timeout": 15,
    }
    payload.update(changes)
    return payload


def test_parse_reads_every_field_and_keeps_secrets_out_of_repr() -> None:
    parsed = live_stream.parse(credentials_payload())
    credentials = parsed.value
    assert parsed.problems == ()
    assert credentials.endpoint == "abc123-ats.iot.example.com:8443"
    assert (credentials.duration, credentials.timeout) == (900.0, 15.0)
    assert credentials.token_value == TOKEN and credentials.digest == DIGEST
    shown = repr(credentials)
    assert TOKEN not in shown and DIGEST not in shown and "v1/live-stream" not in shown
    assert logs.redact(f"token {TOKEN} digest {DIGEST}") == "token *** digest ***"


def test_duration_is_read_from_the_answer_never_assumed() -> None:
    assert live_stream.parse(credentials_payload(live_stream_duration=300)).value.duration == 300.0
    parsed = live_stream.parse(credentials_payload(live_stream_duration="soon"))
    assert parsed.problems  # counted: the fallback is a guess
    assert parsed.value.duration == 900.0


@pytest.mark.parametrize(
    "missing", ["aws_iot_endpoint", "aws_token_value", "aws_digest", "live_stream_topic"]
)
def test_a_missing_connection_field_is_a_payload_error(missing: str) -> None:
    payload = credentials_payload()
    del payload[missing]
    with pytest.raises(PayloadError, match=missing):
        live_stream.parse(payload)


def test_username_carries_the_authorizer_site_and_encoded_signature() -> None:
    credentials = live_stream.parse(credentials_payload()).value
    name = live_stream.username(credentials, "1234567")
    assert name.startswith("?x-amz-customauthorizer-name=aws-lambda-authoriser-prod&enph_token=")
    fields = parse_qs(name[1:], strict_parsing=True)
    assert fields == {
        "x-amz-customauthorizer-name": ["aws-lambda-authoriser-prod"],
        "enph_token": [TOKEN],
        "site-id": ["1234567"],
        "x-amz-customauthorizer-signature": [DIGEST],
    }
    assert "+" not in name and "/" not in name.partition("&")[2]  # the digest's base64 is URL-encoded
    assert logs.redact(f"user {name}") == "user ***"


def test_gateway_serial_from_today_and_from_devices() -> None:
    body = {"connectionDetails": [{"wifi": True, "serial_num": "122100001234"}], "stats": []}
    assert today.parse(body, 0).value.gateway_serial == "122100001234"
    assert today.parse({"connectionDetails": {"wifi": True}}, 0).value.gateway_serial is None
    reader = Reader()
    assert live_stream.gateway_from_today("nonsense", reader) is None
    assert reader.problems
    devices = {
        "result": [
            {"type": "encharge", "devices": [{"serial_number": "BT01"}]},
            {"type": "envoy", "devices": [{"serial_number": "122100009999", "status": "normal"}]},
            {"curr_date_site": "2026-02-08"},
        ]
    }
    assert live_stream.gateway_from_devices(devices).value == "122100009999"
    assert live_stream.gateway_from_devices({"result": [{"type": "meter", "devices": []}]}).value is None


def frame_bytes(pv: int, grid: int, storage: int | None) -> bytes:
    meters = bytes_field(1, channel(pv)) + bytes_field(3, channel(grid))
    if storage is not None:
        meters += bytes_field(2, channel(storage)) + int_field(6, 50)
    meters += bytes_field(4, channel(pv + grid + (storage or 0))) + int_field(5, 2)
    return data_msg(meters)


def test_energy_is_integrated_from_every_frame_and_split_by_sign() -> None:
    store = LiveStore()
    t = 1000.0
    store.frame("1", decode(frame_bytes(2_000_000, -500_000, -1_000_000)), t)  # first frame: no interval yet
    for second in range(1, 11):
        store.frame("1", decode(frame_bytes(2_000_000, -500_000, -1_000_000)), t + second)
    store.frame("1", decode(frame_bytes(0, 800_000, 200_000)), t + 12)  # 2 s later
    site = store.get("1")
    assert site is not None and site.frames == 12
    energy = site.energy_joules
    assert energy["pv_production"] == pytest.approx(2000 * 10)
    assert energy["grid_export"] == pytest.approx(500 * 10)
    assert energy["battery_charge"] == pytest.approx(1000 * 10)
    assert energy["grid_import"] == pytest.approx(800 * 2)
    assert energy["battery_discharge"] == pytest.approx(200 * 2)
    assert energy["load_consumption"] == pytest.approx(500 * 10 + 1000 * 2)
    assert "generator_production" not in energy  # no generator meter: no series
    # A gap longer than MAX_GAP (the stream was down) adds nothing: it is not guessed.
    store.frame("1", decode(frame_bytes(3_000_000, 0, 0)), t + 12 + MAX_GAP + 1)
    assert store.get("1").energy_joules["pv_production"] == pytest.approx(2000 * 10)  # type: ignore[union-attr]


def scrape(store: LiveStore, now: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(LiveCollector(store, lambda: now))
    return registry


def test_metrics_from_the_latest_frame() -> None:
    store = LiveStore()
    store.streaming("1", True, 15.0)
    store.session("1", "ok")
    store.frame("1", decode(frame_bytes(3_000_000, -400_000, -1_100_000)), 500.0)
    store.frame("1", decode(frame_bytes(3_000_000, -400_000, -1_100_000)), 501.0)
    registry = scrape(store, 502.0)
    value = registry.get_sample_value
    assert value("enphase_site_live_power_watts", {"site_id": "1", "meter": "pv"}) == 3000.0
    assert value("enphase_site_live_power_watts", {"site_id": "1", "meter": "grid"}) == -400.0
    assert value("enphase_site_live_power_watts", {"site_id": "1", "meter": "load"}) == 1500.0
    assert value("enphase_site_live_power_watts", {"site_id": "1", "meter": "generator"}) is None
    assert value("enphase_site_live_state_of_charge_ratio", {"site_id": "1"}) == 0.5
    assert value("enphase_site_relay_state", {"site_id": "1", "relay": "grid", "state": "closed"}) == 1.0
    assert value("enphase_site_relay_state", {"site_id": "1", "relay": "grid", "state": "open"}) == 0.0
    assert value("enphase_battery_mode", {"site_id": "1", "mode": "full_backup"}) == 1.0
    charged = value("enphase_site_live_energy_joules_total", {"site_id": "1", "flow": "battery_charge"})
    assert charged == 1100.0
    assert value("enphase_site_live_last_frame_timestamp_seconds", {"site_id": "1"}) == 501.0
    assert value("enphase_live_stream_up", {"site_id": "1"}) == 1.0
    assert value("enphase_live_stream_frames_total", {"site_id": "1"}) == 2.0
    assert value("enphase_live_stream_sessions_total", {"site_id": "1", "outcome": "ok"}) == 1.0
    assert value("enphase_live_stream_sessions_total", {"site_id": "1", "outcome": "refused"}) == 0.0


def test_a_site_without_battery_has_no_battery_series_and_a_silent_stream_is_down() -> None:
    store = LiveStore()
    store.streaming("2", True, 15.0)
    store.frame("2", decode(frame_bytes(1_000_000, 200_000, None)), 100.0)
    registry = scrape(store, 130.0)  # 30 s without a frame
    value = registry.get_sample_value
    assert value("enphase_site_live_power_watts", {"site_id": "2", "meter": "storage"}) is None
    assert value("enphase_site_live_state_of_charge_ratio", {"site_id": "2"}) is None
    assert value("enphase_battery_mode", {"site_id": "2", "mode": "full_backup"}) is None
    # The last values stay, their age is visible, and the stream says it is down.
    assert value("enphase_site_live_power_watts", {"site_id": "2", "meter": "pv"}) == 1000.0
    assert value("enphase_site_live_last_frame_timestamp_seconds", {"site_id": "2"}) == 100.0
    assert value("enphase_live_stream_up", {"site_id": "2"}) == 0.0


def test_influx_windows_average_the_frames_and_one_second_keeps_each() -> None:
    written: list[Point] = []
    windows = LiveInfluxWindows(written.extend, 10.0)
    store = LiveStore(listeners=(windows,))
    for second, pv in enumerate((1_000_000, 2_000_000, 3_000_000)):
        store.frame("1", decode(frame_bytes(pv, 0, None)), 1000.0 + second)
    assert written == []  # the window is not over
    store.frame("1", decode(frame_bytes(5_000_000, 0, None)), 1010.5)
    (point,) = written
    assert point.measurement == MEASUREMENT and point.time_ns == 1000 * 10**9
    assert point.fields["pv_power_watts"] == 2000.0
    assert point.fields["frames"] == 3.0
    assert point.fields["grid_relay"] == "closed"
    assert "storage_power_watts" not in point.fields
    windows.tick(1025.0)  # the stream stopped: the last window is written once it is over
    assert written[-1].fields["pv_power_watts"] == 5000.0 and len(written) == 2
    every: list[Point] = []
    store = LiveStore(listeners=(LiveInfluxWindows(every.extend, 1.0),))
    store.frame("1", decode(frame_bytes(1_000_000, 0, None)), 7.25)
    store.frame("1", decode(frame_bytes(2_000_000, 0, None)), 7.75)
    assert [p.fields["pv_power_watts"] for p in every] == [1000.0, 2000.0]
    assert every[1].line().startswith("enphase_site_live,site_id=1 ")


def test_every_live_catalog_metric_is_produced_and_documented() -> None:
    from pathlib import Path

    from exporter.exposition import render

    meters = (
        bytes_field(1, channel(3_000_000, 3_100_000, [1_000_000, 1_000_000, 1_000_000]))
        + bytes_field(2, channel(-1_000_000))
        + bytes_field(3, channel(-500_000))
        + bytes_field(4, channel(1_500_000))
        + bytes_field(7, channel(0))
        + int_field(5, 2)
        + int_field(8, 6)
    )
    micro = bytes_field(9, int_field(2, 12) + int_field(3, 12))
    store = LiveStore()
    store.streaming("1", True)
    for second in range(3):
        store.frame("1", decode(data_msg(meters, int_field(4, 1), int_field(5, 30), micro)), 10.0 + second)
    store.bad_frame("1")
    text = render(scrape(store, 13.0))[0].decode()
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name in LIVE:  # METRICS.md, "Live site power": the names are the public contract
        assert f"\n{name}{{" in text or f"\n# TYPE {name.removesuffix('_total')} " in text, name
        assert f"`{name}`" in readme, name


def test_the_live_settings() -> None:
    from exporter.config import ConfigError, load

    demo = {"ENPHASE_DEMO": "1"}
    settings = load({}, demo)
    assert (settings.live_stream, settings.live_influx_resolution) == ("auto", 10.0)
    assert not settings.live_plain_loopback  # only serve --demo sets it, no setting can
    assert load({"live_stream": "OFF"}, demo).live_stream == "off"
    assert load({}, {**demo, "ENPHASE_LIVE_INFLUX_RESOLUTION": "1s"}).live_influx_resolution == 1.0
    assert load({}, {**demo, "ENPHASE_LIVE_INFLUX_RESOLUTION": "1m"}).live_influx_resolution == 60.0
    with pytest.raises(ConfigError, match="ENPHASE_LIVE_STREAM: expected auto, on or off"):
        load({}, {**demo, "ENPHASE_LIVE_STREAM": "sometimes"})
    with pytest.raises(ConfigError, match="ENPHASE_LIVE_INFLUX_RESOLUTION"):
        load({}, {**demo, "ENPHASE_LIVE_INFLUX_RESOLUTION": "0s"})


def test_live_points_go_through_the_durable_influx_queue(tmp_path: object) -> None:
    from pathlib import Path

    from exporter.app import build
    from exporter.config import load

    environ = {
        "ENPHASE_DEMO": "1",
        "ENPHASE_EMAIL": "owner@example.com",
        "ENPHASE_PASSWORD": "pw-4411",
        "ENPHASE_SESSION_FILE": str(Path(str(tmp_path)) / "session.json"),
        "ENPHASE_INFLUX_URL": "http://127.0.0.1:9",  # nothing listens: the points wait in the queue
        "ENPHASE_INFLUX_DATABASE": "enphase",
        "ENPHASE_INFLUX_QUEUE_DIR": str(Path(str(tmp_path)) / "queue"),
        "ENPHASE_LIVE_INFLUX_RESOLUTION": "1s",
    }
    exporter = build(load({}, environ))
    assert exporter.live is not None and exporter.influx is not None
    exporter.live.frame("7", decode(frame_bytes(1_000_000, 200_000, None)), 1000.0)
    exporter.live.frame("7", decode(frame_bytes(1_100_000, 200_000, None)), 1001.0)
    queue = exporter.influx.queue
    assert queue.points == 2
    exporter.influx.close()


def test_show_livestream_says_whether_the_app_shows_live_status() -> None:
    assert live_stream.parse_offered({"live_status": True, "live_vitals": True}).value is True
    assert live_stream.parse_offered({"live_status": "false"}).value is False
    missing = live_stream.parse_offered({"live_vitals": True})
    assert missing.value is False and missing.problems
