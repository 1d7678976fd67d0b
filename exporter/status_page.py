"""The status page ``/``: what a person wants to know at a glance, without reading the metrics.

Authentication (session valid, its expiry, logins paused until when), each site's sources (up or down, the
last error, the last success, the next poll and the interval after the request budget's stretch), whether
the lifetime counters still wait for their first answers, the chargers, and the live stream. The page
refreshes itself every ``REFRESH_SECONDS``; it is plain HTML with no script and no external asset, and
every string that came from the cloud is escaped. Everything it shows is read from memory (the snapshot,
the auth state, the scheduler's in-memory job store, the live store): a request never waits on the cloud.

Nothing here is a secret: errors are the secret-free ``SourceHealth.error``, and the auth state holds times.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from exporter.auth import AuthState
from exporter.live.state import LiveSite, LiveStore
from exporter.scheduler import Plan
from exporter.snapshot import SiteSnapshot, Snapshot
from exporter.sources import BY_NAME

REFRESH_SECONDS = 30
# lifetime_energy names the channels; daily_energy, when polled, brings the days the counters start from.
COUNTER_SOURCES = ("lifetime_energy", "daily_energy")
STYLE = (
    "body{font-family:sans-serif;margin:1em;max-width:60em}table{border-collapse:collapse;margin-bottom:1em}"
    "td,th{padding:.3em .6em;text-align:left;vertical-align:top;border-bottom:1px solid #ddd}"
    ".scroll{overflow-x:auto}.up{color:#080}.down{color:#b00}.waiting{color:#a60}.off{color:#666}"
)


@dataclass(frozen=True, slots=True)
class StatusSources:
    """Where the page reads what it shows beyond the snapshot; all of it optional (a test server has none)."""

    auth: AuthState | None = None
    plan: Callable[[], Plan | None] = lambda: None
    live: LiveStore | None = None
    live_mode: str = "off"  # ENPHASE_LIVE_STREAM: auto, on or off


def render(snapshot: Snapshot, sources: StatusSources, now: float, version: str) -> str:
    plan = sources.plan()
    return "".join(
        (
            "<!doctype html><html><head><meta charset=utf-8>",
            f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
            "<meta name=viewport content='width=device-width,initial-scale=1'>",
            f"<title>Enphase exporter</title><style>{STYLE}</style></head><body>",
            f"<h1>Enphase exporter {escape(version)}</h1>",
            f"<p>{_moment(now)}; this page refreshes every {REFRESH_SECONDS} s. ",
            "<a href=/metrics>/metrics</a> · <a href=/healthz>/healthz</a></p>",
            _auth(sources.auth, now),
            _polling(snapshot, plan, now),
            _counters(snapshot),
            _chargers(snapshot),
            _live(sources, snapshot, now),
            "</body></html>",
        )
    )


def _auth(state: AuthState | None, now: float) -> str:
    if state is None:
        return ""
    rows = [("session", _state("up", "valid") if state.ok else _state("down", "not valid (yet)"))]
    if state.session_expires_at is not None:
        rows.append(("session expires", _when(now, state.session_expires_at)))
    paused = state.login_paused_until
    if paused is not None and paused > now:
        rows.append(("logins paused until", _state("down", _when(now, paused))))
    else:
        rows.append(("logins", "allowed"))
    return "<h2>Authentication</h2>" + _table((), rows)


def _polling(snapshot: Snapshot, plan: Plan | None, now: float) -> str:
    if plan is None:
        stretch = "<p>Polling has not started: the sites are being looked up (see the log).</p>"
    elif plan.factor > 1.0:
        stretch = (
            f"<p>Every interval is stretched {plan.factor:.2f} times to fit ENPHASE_REQUEST_BUDGET; the "
            "intervals below are the stretched ones.</p>"
        )
    else:
        stretch = "<p>Intervals as configured: they fit ENPHASE_REQUEST_BUDGET.</p>"
    polls = {(poll.site_id, poll.source): poll for poll in plan.polls} if plan else {}
    rows = []
    for site in snapshot.sites.values():
        # The enabled sources, then those turned off for the account and the optional gateway.
        for source in (*site.sources, *(name for name in site.health if name not in site.sources)):
            health = site.health.get(source)
            state = "waiting" if health is None else ("up" if health.up else "down")
            if health is not None and health.off:
                state = "off"
            poll = polls.get((site.site_id, source)) if state != "off" else None
            leader = BY_NAME[source].follows if source in BY_NAME else None
            every = f"{poll.interval:.0f} s" if poll else (f"after each {leader}" if leader else "—")
            rows.append(
                (
                    escape(site.site_id),
                    escape(source),
                    _state(state, state),
                    _when(now, health.last_success_timestamp) if health else "never",
                    _when(now, poll.next_run) if poll else "—",
                    escape(every),
                    escape(health.error or "") if health else "",
                )
            )
    if not rows:
        return f"<h2>Sources</h2>{stretch}<p>No site yet: discovery is running or failed (see the log).</p>"
    header = ("site", "source", "state", "last success", "next poll", "every", "last error")
    return f"<h2>Sources</h2>{stretch}" + _table(header, rows)


def _counters(snapshot: Snapshot) -> str:
    rows = [(escape(site.site_id), _counter_state(site)) for site in snapshot.sites.values()]
    return "<h2>Lifetime energy counters</h2>" + _table(("site", "counters"), rows) if rows else ""


def _counter_state(site: SiteSnapshot) -> str:
    if "lifetime_energy" not in site.sources:
        return "off: lifetime_energy is not polled"
    if site.lifetime_joules:
        return _state("up", f"counting ({len(site.lifetime_joules)} channels)")
    missing = [
        source
        for source in COUNTER_SOURCES
        if source in site.sources
        and (site.health.get(source) is None or site.health[source].last_success_timestamp is None)
    ]
    waiting = f"waiting for the first answer of {' and '.join(missing)}" if missing else "waiting"
    if "daily_energy" in missing:
        waiting += " (the first history: the days since the site's first day)"
    return _state("waiting", escape(waiting))


def _chargers(snapshot: Snapshot) -> str:
    rows = []
    for site in snapshot.sites.values():
        for charger in site.ev_status.chargers if site.ev_status else ():
            rows.append(
                (
                    escape(site.site_id),
                    escape(charger.name or ""),
                    escape(charger.serial),
                    _yes_no(charger.connected),
                    _yes_no(charger.plugged_in),
                    _yes_no(charger.charging),
                )
            )
    header = ("site", "charger", "serial", "connected", "plugged in", "charging")
    return "<h2>Chargers</h2>" + _table(header, rows) if rows else ""


def _live(sources: StatusSources, snapshot: Snapshot, now: float) -> str:
    if sources.live_mode == "off" or sources.live is None:
        return "<h2>Live stream</h2><p>Off (ENPHASE_LIVE_STREAM=off).</p>"
    live = {site.site_id: site for site in sources.live.sites()}
    rows = [_live_row(site_id, live.get(site_id), now) for site_id in snapshot.sites]
    if not rows:
        return ""
    header = ("site", "state", "frames", "last frame", "sessions ok / refused / failed", "bad frames")
    return f"<h2>Live stream ({escape(sources.live_mode)})</h2>" + _table(header, rows)


def _live_row(site_id: str, site: LiveSite | None, now: float) -> tuple[str, ...]:
    if site is None:
        return (escape(site_id), _state("waiting", "not started"), "0", "never", "—", "0")
    if site.up(now):
        state = _state("up", "up")
    elif site.streaming:
        state = _state("down", "subscribed, no recent frame")
    elif site.next_try_at is not None and site.next_try_at > now:
        state = _state("down", f"down; next try {_when(now, site.next_try_at)}")
    else:
        state = _state("down", "down")
    sessions = " / ".join(str(site.sessions.get(outcome, 0)) for outcome in ("ok", "refused", "failed"))
    return (
        escape(site_id),
        state,
        str(site.frames),
        _ago(now, site.arrived_at),
        sessions,
        str(site.bad_frames),
    )


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    head = "<tr>" + "".join(f"<th>{name}</th>" for name in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<div class=scroll><table>{head}{body}</table></div>"


def _state(kind: str, text: str) -> str:
    return f"<span class={kind}>{text}</span>"


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _moment(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _when(now: float, timestamp: float | None) -> str:
    """A moment with how far it is from now, either way: last successes lie behind, next polls and a
    session's expiry ahead (a week ahead, so the date is shown beyond a day)."""
    if timestamp is None:
        return "never"
    seconds = timestamp - now
    shape = "%H:%M:%S UTC" if abs(seconds) < 86400 else "%Y-%m-%d %H:%M UTC"
    moment = datetime.fromtimestamp(timestamp, UTC).strftime(shape)
    return f"{moment} (in {_duration(seconds)})" if seconds >= 0 else f"{moment} ({_duration(-seconds)} ago)"


def _ago(now: float, timestamp: float | None) -> str:
    return "never" if timestamp is None else f"{_duration(now - timestamp)} ago"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
