"""HTTP behaviour against a scripted cloud (``responses``): retries, Retry-After, expired sessions, logins."""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest
import responses
from prometheus_client import CollectorRegistry, generate_latest
from support import FakeClock

from exporter.auth import PasswordLogin, PastedHeaders, SessionFile, make_session
from exporter.client import (
    AuthError,
    BudgetExhausted,
    CloudClient,
    CloudError,
    RateLimited,
    RequestBudget,
    RequestMetrics,
    SessionExpired,
    Transport,
    UpstreamError,
    UpstreamUnavailable,
)

BASE = "http://cloud.test"
STATUS = f"{BASE}/service/evse_controller/1/ev_chargers/status"
LOGIN = f"{BASE}/login/login.json"
PASSWORD = "hunter2-very-secret"
EMAIL = "owner@example.com"


def jwt(exp: float, session_id: str = "sess-abcdef123456") -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims = {"data": {"user_id": 42, "session_id": session_id}, "exp": exp}
    return f"{part({'alg': 'HS256'})}.{part(claims)}.c2ln"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def registry():
    return CollectorRegistry()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def transport(registry, clock, sleeps):
    return Transport(
        BASE,
        RequestMetrics(registry),
        retries=2,
        clock=clock,
        sleep=sleeps.append,
        jitter=lambda low, high: high,
    )


def login_ok(rsps, token: str, session_id: str = "sess-abcdef123456"):
    body = {
        "message": "success",
        "session_id": session_id,
        "manager_token": token,
        "is_consumer": True,
        "system_id": 1,
        "redirect_url": "",
    }
    rsps.add(
        responses.POST,
        LOGIN,
        json=body,
        headers=[
            ("Set-Cookie", f"_enlighten_4_session={session_id}; Path=/"),
            ("Set-Cookie", f"enlighten_manager_token_production={token}; Path=/"),
            ("Set-Cookie", "XSRF-TOKEN=xsrf-value-0001; Path=/"),
        ],
    )


def password_client(transport, clock, tmp_path, saved=None):
    auth = PasswordLogin(
        transport, EMAIL, PASSWORD, SessionFile(tmp_path / "session.json", EMAIL), saved=saved, clock=clock
    )
    return CloudClient(transport, auth), auth


def logins(rsps) -> int:
    return sum(1 for call in rsps.calls if call.request.url.startswith(f"{BASE}/login/"))


# -- Transport ---------------------------------------------------------------------------------------------


@responses.activate
def test_retry_after_pauses_the_endpoint(transport, clock, registry):
    responses.add(responses.GET, STATUS, status=429, headers={"Retry-After": "120"})
    with pytest.raises(RateLimited):
        transport.request("ev_status", "GET", "/service/evse_controller/1/ev_chargers/status")
    clock.now += 119
    with pytest.raises(RateLimited):
        transport.request("ev_status", "GET", "/service/evse_controller/1/ev_chargers/status")
    assert len(responses.calls) == 1  # no request before Retry-After has passed
    responses.replace(responses.GET, STATUS, json={})
    clock.now += 2
    assert (
        transport.request("ev_status", "GET", "/service/evse_controller/1/ev_chargers/status").status == 200
    )
    assert (
        registry.get_sample_value("enphase_api_requests_total", {"endpoint": "ev_status", "code": "429"}) == 1
    )


@responses.activate
def test_retry_after_as_http_date_and_other_endpoints_unaffected(transport, clock):
    from email.utils import formatdate

    responses.add(
        responses.GET,
        STATUS,
        status=429,
        headers={"Retry-After": formatdate(time.time() + 7200, usegmt=True)},
    )
    responses.add(responses.GET, f"{BASE}/pv/systems/1/today", json={})
    with pytest.raises(RateLimited) as raised:
        transport.request("ev_status", "GET", "/service/evse_controller/1/ev_chargers/status")
    assert 7100 < raised.value.retry_in <= 7200
    assert transport.request("today", "GET", "/pv/systems/1/today").status == 200


@responses.activate
def test_an_absurd_retry_after_is_capped_at_six_hours(transport, clock):
    responses.add(responses.GET, STATUS, status=429, headers={"Retry-After": "1e12"})
    with pytest.raises(RateLimited) as raised:
        transport.request("ev_status", "GET", "/service/evse_controller/1/ev_chargers/status")
    assert raised.value.retry_in == 6 * 3600


@responses.activate
def test_a_pause_set_during_back_off_stops_the_retry(registry, clock):
    """Another thread's 429 lands while this request sleeps before its retry: the retry is not sent."""
    transport = Transport(
        BASE,
        RequestMetrics(registry),
        clock=clock,
        jitter=lambda low, high: high,
        sleep=lambda seconds: transport._not_before.update({"ev_status": clock.now + 60}),
    )
    responses.add(responses.GET, STATUS, status=503)
    with pytest.raises(RateLimited):
        transport.request("ev_status", "GET", "/service/evse_controller/1/ev_chargers/status")
    assert len(responses.calls) == 1


@responses.activate
def test_5xx_is_retried_with_growing_jittered_back_off(transport, sleeps, registry):
    responses.add(responses.GET, STATUS, status=503)
    responses.add(responses.GET, STATUS, status=502)
    responses.add(responses.GET, STATUS, json={"ok": True})
    reply = transport.request("ev_status", "GET", "/service/evse_controller/1/ev_chargers/status")
    assert reply.status == 200 and len(responses.calls) == 3
    assert sleeps == [1.0, 2.0]  # jitter drawn up to 2**attempt; the test's jitter takes the maximum
    assert (
        registry.get_sample_value("enphase_api_requests_total", {"endpoint": "ev_status", "code": "503"}) == 1
    )


@responses.activate
def test_persistent_5xx_gives_up(transport):
    responses.add(responses.GET, STATUS, status=500)
    with pytest.raises(UpstreamUnavailable):
        transport.request("ev_status", "GET", "/service/evse_controller/1/ev_chargers/status")
    assert len(responses.calls) == 3


@responses.activate
def test_timeouts_are_retried_and_counted(transport, registry):
    import requests

    responses.add(responses.GET, STATUS, body=requests.ReadTimeout("slow"))
    responses.add(responses.GET, STATUS, json={})
    assert (
        transport.request("ev_status", "GET", "/service/evse_controller/1/ev_chargers/status").status == 200
    )
    assert (
        registry.get_sample_value("enphase_api_requests_total", {"endpoint": "ev_status", "code": "timeout"})
        == 1
    )
    assert (
        registry.get_sample_value("enphase_api_request_duration_seconds_count", {"endpoint": "ev_status"})
        == 2
    )


@responses.activate
def test_budget_is_a_hard_stop(registry, clock):
    transport = Transport(BASE, RequestMetrics(registry), budget=RequestBudget(2, clock=clock))
    responses.add(responses.GET, STATUS, json={})
    for _ in range(2):
        transport.request("ev_status", "GET", "/service/evse_controller/1/ev_chargers/status")
    with pytest.raises(BudgetExhausted):
        transport.request("ev_status", "GET", "/service/evse_controller/1/ev_chargers/status")
    assert len(responses.calls) == 2
    clock.now += 3601
    transport.request("ev_status", "GET", "/service/evse_controller/1/ev_chargers/status")


# -- Pasted headers ----------------------------------------------------------------------------------------


@responses.activate
def test_pasted_headers_are_sent_and_no_login_is_made(transport):
    responses.add(responses.GET, STATUS, json={"data": {"chargers": []}})
    auth = PastedHeaders("tok-pasted-123", "_enlighten_4_session=cookie-pasted-456", BASE + "/")
    assert CloudClient(transport, auth).get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    sent = responses.calls[0].request.headers
    assert sent["e-auth-token"] == "tok-pasted-123"
    assert sent["Cookie"] == "_enlighten_4_session=cookie-pasted-456"
    assert "enphase-exporter" in sent["User-Agent"]
    assert logins(responses) == 0


@responses.activate
def test_rejected_pasted_headers_never_log_in_and_recover_if_accepted_again(transport):
    responses.add(responses.GET, STATUS, status=401)
    auth = PastedHeaders("tok-pasted-123", "c=cookie-pasted-456", BASE + "/")
    client = CloudClient(transport, auth)
    for _ in range(2):
        with pytest.raises(SessionExpired):
            client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    assert len(responses.calls) == 2  # one request per poll, and no login ever
    assert logins(responses) == 0
    assert auth.state.ok is False
    responses.replace(responses.GET, STATUS, json={"data": {"chargers": []}})
    client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    assert auth.state.ok is True


# -- Email and password ------------------------------------------------------------------------------------


@responses.activate
def test_login_once_then_reuse_across_polls_and_restarts(transport, clock, tmp_path):
    login_ok(responses, jwt(clock.now + 86400))
    responses.add(responses.GET, STATUS, json={"data": {"chargers": []}})
    client, auth = password_client(transport, clock, tmp_path)
    for _ in range(3):
        client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    assert logins(responses) == 1
    assert (
        responses.calls[0].request.body
        == "user%5Bemail%5D=owner%40example.com&user%5Bpassword%5D=hunter2-very-secret"
    )
    sent = responses.calls[1].request.headers
    assert "_enlighten_4_session=sess-abcdef123456" in sent["Cookie"]
    assert sent["e-auth-token"].count(".") == 2
    assert auth.state.ok and auth.state.session_expires_at == clock.now + 86400
    # a restart: the saved session (mode 0600) is reused, no new login
    session_file = SessionFile(tmp_path / "session.json", EMAIL)
    assert (tmp_path / "session.json").stat().st_mode & 0o777 == 0o600
    client2, _ = password_client(transport, clock, tmp_path, saved=session_file.load())
    client2.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    assert logins(responses) == 1


@pytest.mark.parametrize(
    "expired",
    [
        {"status": 401, "json": {"message": "Not authorized"}},
        {"status": 403},
        {"status": 302, "headers": {"Location": "/login"}},
        {"status": 200, "body": "<html><body>Please sign in</body></html>", "content_type": "text/html"},
    ],
    ids=["401", "403", "302", "html-200"],
)
@responses.activate
def test_expired_session_leads_to_exactly_one_login(transport, clock, tmp_path, expired):
    saved = make_session({"_enlighten_4_session": "old-session-id-999"}, jwt(clock.now + 86400, "old"))
    responses.add(responses.GET, STATUS, **expired)
    login_ok(responses, jwt(clock.now + 86400))
    responses.add(responses.GET, STATUS, json={"data": {"chargers": []}})
    client, _ = password_client(transport, clock, tmp_path, saved=saved)
    assert client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status") == {
        "data": {"chargers": []}
    }
    assert logins(responses) == 1
    assert "sess-abcdef123456" in responses.calls[-1].request.headers["Cookie"]


@responses.activate
def test_an_endpoint_that_rejects_even_a_fresh_session_causes_one_login_in_all(transport, clock, tmp_path):
    """A site without a charger can answer 403 on EV endpoints: that must not become a login per poll."""
    saved = make_session({"_enlighten_4_session": "old-session-id-999"}, None)
    responses.add(responses.GET, STATUS, status=403)
    responses.add(responses.GET, f"{BASE}/pv/systems/1/today", json={"stats": []})
    login_ok(responses, jwt(clock.now + 86400))
    client, auth = password_client(transport, clock, tmp_path, saved=saved)
    for _ in range(5):
        with pytest.raises(UpstreamError, match="403"):
            client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
        assert client.get_json("today", "/pv/systems/1/today") == {"stats": []}
    assert logins(responses) == 1
    assert auth.state.ok is True


@responses.activate
def test_too_many_sessions_pauses_logins_for_the_back_off(transport, clock, tmp_path, caplog):
    responses.add(responses.POST, LOGIN, json={"message": "Too many active sessions.."})  # HTTP 200
    client, auth = password_client(transport, clock, tmp_path)
    caplog.set_level(logging.INFO)
    for _ in range(5):
        with pytest.raises(AuthError):
            client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
        clock.now += 600
    assert logins(responses) == 1  # none during the back-off
    assert auth.state.ok is False
    assert auth.state.login_paused_until == pytest.approx(1_800_000_000.0 + 3600)
    assert len([r for r in caplog.records if "Too many active sessions" in r.getMessage()]) == 1
    clock.now = auth.state.login_paused_until + 1
    with pytest.raises(AuthError):
        client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    assert logins(responses) == 2  # and one try once it is over


@responses.activate
def test_bad_credentials_pause_logins(transport, clock, tmp_path):
    responses.add(responses.POST, LOGIN, status=401, json={"message": "Invalid"})
    client, _auth = password_client(transport, clock, tmp_path)
    for _ in range(3):
        with pytest.raises(AuthError, match="rejected"):
            client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    assert logins(responses) == 1


@pytest.mark.parametrize(
    ("body", "cookies"),
    [
        ({"requires_mfa": True}, []),
        ({"success": True, "isBlocked": False}, [("Set-Cookie", "login_otp_nonce=n1")]),
    ],
)
@responses.activate
def test_mfa_account_is_told_to_run_login(transport, clock, tmp_path, body, cookies):
    responses.add(responses.POST, LOGIN, json=body, headers=cookies)
    client, auth = password_client(transport, clock, tmp_path)
    with pytest.raises(AuthError, match="enphase-exporter login"):
        client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    assert auth.state.login_paused_until is not None


@responses.activate
def test_login_with_cookies_only_and_406_fallback(transport, clock, tmp_path):
    responses.add(responses.POST, LOGIN, status=406)
    responses.add(
        responses.POST,
        f"{BASE}/login/login",
        status=302,
        headers=[("Location", "/"), ("Set-Cookie", "_enlighten_4_session=form-session-77; Path=/")],
    )
    responses.add(responses.GET, STATUS, json={"data": {"chargers": []}})
    client, _ = password_client(transport, clock, tmp_path)
    client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    assert "_enlighten_4_session=form-session-77" in responses.calls[-1].request.headers["Cookie"]


@responses.activate
def test_token_is_refreshed_before_it_expires(transport, clock, tmp_path):
    saved = make_session({"_enlighten_4_session": "sess-1"}, jwt(clock.now + 60))  # inside the refresh margin
    fresh = jwt(clock.now + 7 * 86400)
    responses.add(responses.GET, f"{BASE}/app-api/jwt_token.json", json={"token": fresh})
    responses.add(responses.GET, STATUS, json={"data": {"chargers": []}})
    client, auth = password_client(transport, clock, tmp_path, saved=saved)
    client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    assert responses.calls[-1].request.headers["e-auth-token"] == fresh
    assert auth.state.session_expires_at == clock.now + 7 * 86400
    assert logins(responses) == 0


@responses.activate
def test_bare_text_token_from_the_session_token_endpoint(transport, clock, tmp_path):
    saved = make_session({"_enlighten_4_session": "sess-1"}, jwt(clock.now - 10))
    fresh = jwt(clock.now + 86400)
    responses.add(responses.GET, f"{BASE}/app-api/jwt_token.json", status=404)
    responses.add(responses.GET, f"{BASE}/service/auth_ms_enho/api/v1/session/token", body=fresh)
    responses.add(responses.GET, STATUS, json={"data": {"chargers": []}})
    client, _ = password_client(transport, clock, tmp_path, saved=saved)
    client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    assert responses.calls[-1].request.headers["e-auth-token"] == fresh


@responses.activate
def test_other_4xx_is_an_upstream_error_without_login(transport, clock, tmp_path):
    saved = make_session({"_enlighten_4_session": "sess-1"}, None)
    responses.add(responses.GET, STATUS, status=422, json={"error": "charger not ready"})
    client, _ = password_client(transport, clock, tmp_path, saved=saved)
    with pytest.raises(UpstreamError, match="422"):
        client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    assert logins(responses) == 0


# -- Session file ------------------------------------------------------------------------------------------


def test_session_file_readable_by_others_is_refused(tmp_path):
    from exporter.auth import SessionFileError

    path = tmp_path / "session.json"
    SessionFile(path, EMAIL).save(make_session({"_enlighten_4_session": "s"}, None))
    path.chmod(0o644)
    with pytest.raises(SessionFileError, match="chmod 600"):
        SessionFile(path, EMAIL).load()


def test_session_file_of_another_account_is_not_reused(tmp_path):
    path = tmp_path / "session.json"
    SessionFile(path, EMAIL).save(make_session({"_enlighten_4_session": "s"}, None))
    assert SessionFile(path, "someone-else@example.com").load() is None
    assert SessionFile(path, EMAIL.upper()).load() is not None


# -- Secrets -----------------------------------------------------------------------------------------------


@responses.activate
def test_secrets_never_reach_logs_metrics_exceptions_or_repr(transport, clock, tmp_path, registry, caplog):
    caplog.set_level(logging.DEBUG)
    token = jwt(clock.now + 86400, "sess-SECRET-0042")
    saved = make_session({"_enlighten_4_session": "old-SECRET-0001"}, jwt(clock.now + 86400, "old"))
    responses.add(responses.GET, STATUS, body="<html>login</html>", content_type="text/html")
    login_ok(responses, token, "sess-SECRET-0042")
    responses.add(responses.GET, STATUS, status=401)
    client, auth = password_client(transport, clock, tmp_path, saved=saved)
    errors = []
    try:
        client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    except CloudError as error:
        errors.append(f"{error!s} {error!r}")
    secrets = [PASSWORD, token, "sess-SECRET-0042", "old-SECRET-0001", "xsrf-value-0001"]
    visible = "\n".join(
        [
            caplog.text,
            *errors,
            repr(auth),
            repr(saved),
            repr(client.auth.credentials()),
            generate_latest(registry).decode(),
        ]
    )
    assert errors  # the scenario did go through login and a failure
    for secret in secrets:
        assert secret not in visible


def test_a_reply_does_not_show_its_cookies_or_body():
    from exporter.client import Reply

    reply = Reply(
        200, {"set-cookie": "s=cookie-SECRET-1"}, b'{"session_id":"body-SECRET-2"}', {"s": "cookie-SECRET-1"}
    )
    assert "SECRET" not in repr(reply)


@responses.activate
def test_a_rejecting_endpoint_of_one_site_does_not_stop_another_sites_renewal(transport, clock, tmp_path):
    saved = make_session({"_enlighten_4_session": "old-session-id-999"}, None)
    other = f"{BASE}/service/evse_controller/2/ev_chargers/status"
    responses.add(responses.GET, STATUS, status=403)  # site 1 has no charger
    login_ok(responses, jwt(clock.now + 86400))
    client, _ = password_client(transport, clock, tmp_path, saved=saved)
    with pytest.raises(UpstreamError):
        client.get_json("ev_status", "/service/evse_controller/1/ev_chargers/status")
    responses.add(responses.GET, other, status=401)  # site 2: the session really expired
    login_ok(responses, jwt(clock.now + 86400, "sess-second-login"), "sess-second-login")
    responses.add(responses.GET, other, json={"data": {"chargers": []}})
    assert client.get_json("ev_status", "/service/evse_controller/2/ev_chargers/status")
    assert logins(responses) == 2
