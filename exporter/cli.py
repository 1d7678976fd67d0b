"""Command line: ``serve`` (scheduler + /metrics), ``once`` (poll everything once, print), ``login`` (MFA),
``backfill`` (history), ``charger`` (control: list, start, stop, mode, trigger; see control.py).

A configuration error prints one line naming the setting and exits with status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CollectorRegistry

from exporter import __version__, control, exposition, logs, shard, sites
from exporter import backfill as backfilling
from exporter.app import Exporter, build, demo_cloud_if_asked, start_live_streams
from exporter.auth import SessionFile, interactive_login
from exporter.client import (
    AuthError,
    CloudClient,
    CloudError,
    RequestMetrics,
    Transport,
    Unreachable,
    host_of,
)
from exporter.config import ConfigError, Settings, add_arguments, load
from exporter.influx import InfluxOutput
from exporter.influx.queue import DiskQueue
from exporter.scheduler import PollScheduler
from exporter.server import MetricsServer
from exporter.sources import REGISTRY
from exporter.status_page import StatusSources
from exporter.values import PayloadError

log = logging.getLogger("exporter")

# In the order of their first runs at start: lifetime_energy first (it names what the site measures, which
# today's and daily_energy's readings need), then today (the site's zone). Followers run after their leader.
ONCE_ORDER = tuple(
    source.name for source in sorted(REGISTRY, key=lambda source: source.first_run) if source.follows is None
)
DISCOVERY_RETRY_SECONDS = 60.0
ONCE_FLUSH_SECONDS = 30.0
BACKFILL_OPTIONS = ("since", "until", "format", "output")
CHARGER_OPTIONS = ("charger_command", "serial", "amps", "site", "mode", "message", "dry_run", "json")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    options = {key: getattr(args, key) for key in BACKFILL_OPTIONS + CHARGER_OPTIONS if hasattr(args, key)}
    flags = {key: value for key, value in vars(args).items() if key != "command" and key not in options}
    try:
        settings = load(flags, os.environ, require_credentials=args.command != "login")
    except ConfigError as error:
        print(f"enphase-exporter: error: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    try:
        if args.command == "backfill":
            return backfill(settings, **options)
        if args.command == "charger":
            return charger(settings, options)
        return {"serve": serve, "once": once, "login": login}[args.command](settings)
    except ConfigError as error:  # raised after start-up checks, e.g. an unsafe session file
        print(f"enphase-exporter: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enphase-exporter",
        description="Prometheus exporter for Enphase IQ EV Chargers and IQ Batteries (Enlighten cloud).",
        epilog="Secrets (ENPHASE_PASSWORD, ENPHASE_E_AUTH_TOKEN, ENPHASE_COOKIE) come from the environment "
        "or --password-file only, never from command-line flags, which other users can see.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in (
        ("serve", "poll the cloud on a schedule and serve /metrics"),
        ("once", "poll every source of every site once, print the metrics, exit 0 if all succeeded"),
        ("login", "log in on this terminal (answering an MFA code) and save the session for serve"),
    ):
        add_arguments(commands.add_parser(name, help=help_text, description=help_text))
    history = commands.add_parser(
        "backfill",
        help="write history from daily_energy to InfluxDB, or to an OpenMetrics file for Prometheus",
        description="Fetch daily energy a month per request and write every 15-minute bucket and every "
        "day: to the configured InfluxDB, or with --format openmetrics to a file for `promtool tsdb "
        "create-blocks-from openmetrics FILE DIR`. Running it again changes nothing.",
    )
    history.add_argument("--since", required=True, metavar="YYYY-MM-DD", help="first day")
    history.add_argument("--until", metavar="YYYY-MM-DD", help="last day (default: today)")
    history.add_argument(
        "--format", choices=("influx", "openmetrics"), default="influx", help="default: influx"
    )
    history.add_argument(
        "--output", metavar="FILE", help="the OpenMetrics file to write (--format openmetrics)"
    )
    add_arguments(history)
    _charger_parser(commands)
    return parser


def _charger_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    charger = commands.add_parser(
        "charger",
        help="list chargers; start, stop, set the mode of or trigger a message on one (cloud requests)",
        description="Charger control with the same settings and session as serve. Each command is a "
        "cloud request. Exit 0: done, or nothing to do (not plugged in, not ready); 1: the cloud refused "
        "or did not answer; 2: bad input (nothing sent).",
    )
    actions = charger.add_subparsers(dest="charger_command", metavar="ACTION", required=True)
    helps = {
        "list": "sites, chargers, their status and charge mode",
        "start": "start charging, optionally at --amps within the charger's limits",
        "stop": "stop charging",
        "mode": "set the charge mode (the scheduler preference)",
        "trigger": "ask the charger for an OCPP message",
    }
    for name, help_text in helps.items():
        action = actions.add_parser(name, help=help_text, description=help_text)
        if name != "list":
            action.add_argument("--serial", required=True, metavar="SN", help="the charger's serial number")
            action.add_argument("--site", metavar="SITE_ID", help="default: the site that has the charger")
            action.add_argument(
                "--dry-run", action="store_true", help="print the request instead of sending it"
            )
        if name == "start":
            action.add_argument("--amps", type=int, metavar="A", help="charging current, within the limits")
        if name == "mode":
            action.add_argument("mode", choices=tuple(control.MODES))
        if name == "trigger":
            action.add_argument(
                "message",
                choices=control.OCPP_MESSAGES,
                metavar="MESSAGE",
                help=", ".join(control.OCPP_MESSAGES),
            )
        action.add_argument("--json", action="store_true", help="print JSON for scripts")
        add_arguments(action)


def serve(settings: Settings) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with demo_cloud_if_asked(settings) as settings:
        exporter = _build(settings, process_metrics=True)
        # Made before the sites are known, so that the status page can show the plan once polling starts.
        scheduler = PollScheduler(settings, exporter.poller, exporter.store)
        server = MetricsServer(
            settings.listen_host,
            settings.listen_port,
            exporter.registry,
            lambda: exporter.store.current,
            web_config_file=settings.web_config_file,
            status=StatusSources(exporter.auth_state, scheduler.plan, exporter.live, settings.live_stream),
        )
        server.start()
        log.info("Serving %s://%s:%d/metrics", server.scheme, settings.listen_host or "0.0.0.0", server.port)
        site_ids = settings.site_ids
        while not site_ids and not stop.is_set():
            site_ids = _discover(exporter.client, retry_in=DISCOVERY_RETRY_SECONDS)
            if not site_ids:
                stop.wait(DISCOVERY_RETRY_SECONDS)
        site_ids = _my_share(settings, site_ids)
        if exporter.influx:
            exporter.influx.start()
        if site_ids:
            log.info("Polling site(s) %s", ", ".join(site_ids))
            scheduler.start(site_ids)
        live = start_live_streams(exporter, site_ids)
        stop.wait()
        log.info("Stopping")
        if live:
            live.stop()
        if site_ids:
            scheduler.shutdown()
        if exporter.influx:
            exporter.influx.close()
        server.stop()
    return 0


def once(settings: Settings) -> int:
    if settings.influx is not None:
        _check_queue_dir(settings.influx.queue_dir)
    with demo_cloud_if_asked(settings) as settings:
        exporter = _build(settings)
        if exporter.influx:
            exporter.influx.start()
        site_ids = settings.site_ids or _discover(exporter.client)
        succeeded = bool(site_ids)  # a shard with no site of its own is no failure; no site at all is
        site_ids = _my_share(settings, site_ids)
        gateway = exporter.poller.gateway
        if gateway is not None and "ev_status" in settings.sources:
            gateway.assign_site(site_ids)
            gateway.discover()
        for site_id in site_ids:
            for source in (source for source in ONCE_ORDER if source in settings.sources):
                exporter.poller.poll(site_id, source)
            # Every source still enabled answered (one that cannot work for the account was turned off).
            succeeded &= exporter.store.current.sites[site_id].up
        if exporter.influx:
            succeeded &= _flush(exporter.influx)
        sys.stdout.write(exposition.render(exporter.registry)[0].decode())
    return 0 if succeeded else 1


def _check_queue_dir(directory: Path) -> None:
    """``once`` leaves what InfluxDB did not take in the queue for the next run: without a usable queue
    directory that promise cannot be kept, so it is a configuration error here. ``serve`` carries on with
    the points in memory instead, for /metrics' sake (exporter.influx.queue.open_queue)."""
    try:
        DiskQueue(directory, 10**6).close()
    except (OSError, sqlite3.OperationalError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ConfigError(
            f"--influx-queue-dir (ENPHASE_INFLUX_QUEUE_DIR): cannot use {directory}: {reason}"
        ) from None
    except sqlite3.DatabaseError:
        pass  # a damaged file: opening the output moves it aside and starts a new one


def _flush(output: InfluxOutput) -> bool:
    """Give InfluxDB a moment to take this run's points; whatever it did not take waits in the queue."""
    flushed = output.flush(ONCE_FLUSH_SECONDS)
    if not flushed:
        log.error(
            "InfluxDB did not take every point within %.0f s; %d wait in %s for the next run",
            ONCE_FLUSH_SECONDS,
            output.queue.points,
            output.queue.path.parent if output.queue.path else "memory",
        )
    output.close()
    return flushed


def login(settings: Settings) -> int:
    if settings.demo:
        print("enphase-exporter: error: --demo needs no login", file=sys.stderr)
        return 2
    if not sys.stdin.isatty() and (settings.email is None or settings.password is None):
        print(
            "enphase-exporter: error: login asks for what is missing on a terminal; set ENPHASE_EMAIL and "
            "ENPHASE_PASSWORD to run it without one",
            file=sys.stderr,
        )
        return 2
    email = settings.email or input("Enlighten email: ").strip()
    password = settings.password.reveal() if settings.password else getpass.getpass("Enlighten password: ")
    transport = Transport(
        settings.base_url,
        RequestMetrics(CollectorRegistry()),
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
    )
    session_file = SessionFile(settings.session_file, email)
    try:
        interactive_login(
            transport, email, password, lambda: input("One-time code (sent by Enphase): "), session_file
        )
    except CloudError as error:
        print(f"enphase-exporter: login failed: {error}", file=sys.stderr)
        return 1
    print(
        f"Session saved to {settings.session_file} (mode 0600). `enphase-exporter serve` with "
        f"ENPHASE_EMAIL={email} will reuse it until it expires."
    )
    return 0


def backfill(settings: Settings, since: str, until: str | None, format: str, output: str | None) -> int:
    try:
        span = backfilling.Span(_date("--since", since), _date("--until", until) if until else date.today())
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if span.since > span.until:
        raise ConfigError(f"--since {span.since} is after --until {span.until}")
    if span.until > date.today():
        raise ConfigError(f"--until {span.until} is in the future")
    if format == "openmetrics" and not output:
        raise ConfigError("--format openmetrics needs --output FILE")
    if format == "influx" and output:
        raise ConfigError("--output is for --format openmetrics; InfluxDB is set with ENPHASE_INFLUX_URL")
    if format == "influx" and settings.influx is None:
        raise ConfigError(
            "ENPHASE_INFLUX_URL: backfill writes to InfluxDB; set it (and the bucket or database), or use "
            "--format openmetrics --output FILE"
        )
    if output:
        _check_output(Path(output))  # before any request: a month of history is not fetched to be thrown away
    # Backfill drains its own queue, chunk by chunk: a `serve` running beside it keeps its queue to itself,
    # and an interrupted backfill is simply run again.
    with demo_cloud_if_asked(settings) as settings, tempfile.TemporaryDirectory(prefix="enphase-") as queue:
        if settings.influx:
            settings = replace(settings, influx=replace(settings.influx, queue_dir=Path(queue)))
        exporter = _build(settings)
        site_ids = settings.site_ids or _discover(exporter.client)
        if not site_ids:
            return 1
        site_ids = _my_share(settings, site_ids)
        if not site_ids:
            return 0
        history = backfilling.History(exporter.client, max_site_power_watts=settings.max_site_power_watts)
        now = time.time()
        try:
            if format == "openmetrics":
                assert output is not None
                samples = backfilling.to_openmetrics(
                    history, Path(output), site_ids, span, settings.history_start, now
                )
                done = (
                    f"{samples} samples written to {output}; load them into Prometheus with "
                    f"`promtool tsdb create-blocks-from openmetrics {output} DATA_DIR`"
                )
            else:
                assert exporter.influx is not None and settings.influx is not None
                points = backfilling.to_influx(history, exporter.influx, site_ids, span, now)
                done = f"{points} points written to InfluxDB at {settings.influx.target}"
        except (backfilling.BackfillError, CloudError) as error:
            log.error("Backfill stopped: %s", error)
            return 1
        finally:
            if exporter.influx:
                exporter.influx.close()
    log.info(
        "Backfilled %s to %s for site(s) %s in %d requests: %s",
        span.since,
        span.until,
        ", ".join(site_ids),
        history.requests,
        done,
    )
    if history.problems:
        log.warning("%d fields of the history could not be read and were left out", history.problems)
    return 0


def charger(settings: Settings, options: dict[str, object]) -> int:
    command = str(options.pop("charger_command"))
    # Control writes nothing to InfluxDB, and must not start its sender.
    with demo_cloud_if_asked(replace(settings, influx=None)) as settings:
        exporter = _build(settings)
        account = control.PASTED_ACCOUNT if settings.uses_pasted_headers else str(settings.email)
        memory = SessionFile(settings.session_file, account)
        return control.run(exporter.client, memory, settings.site_ids, command, options, sys.stdout)


def _check_output(path: Path) -> None:
    if path.is_dir():
        raise ConfigError(f"--output {path}: is a directory; name the file to write")
    directory = path.parent
    if not directory.is_dir():
        raise ConfigError(f"--output {path}: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"--output {path}: not writable")


def _date(flag: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{flag}: expected a date as YYYY-MM-DD, got {text!r}") from None


def _build(settings: Settings, *, process_metrics: bool = False) -> Exporter:
    try:
        return build(settings, process_metrics=process_metrics)
    except CloudError as error:  # the session file check
        raise ConfigError(f"ENPHASE_SESSION_FILE: {error}") from None


def _my_share(settings: Settings, site_ids: tuple[str, ...]) -> tuple[str, ...]:
    """The sites this exporter polls under ``--shard``; the others belong to its sibling exporters."""
    if settings.shard is None:
        return site_ids
    mine = shard.select(site_ids, settings.shard)
    index, count = settings.shard
    log.info("shard %d/%d: polling %d of %d sites", index, count, len(mine), len(site_ids))
    if site_ids and not mine:
        log.warning("shard %d/%d has no site of this account; the other shards poll them all", index, count)
    return mine


def _discover(client: CloudClient, retry_in: float | None = None) -> tuple[str, ...]:
    """The account's sites; on failure one log line that says which failure it is, since each has its own fix:
    an unreachable cloud (the URL, the network), a refusal (the account, the session), or no site at all."""
    then = f"; retrying in {retry_in:.0f} s" if retry_in is not None else ""
    try:
        site_ids = sites.discover(client)
    except (CloudError, PayloadError) as error:
        unreachable = error if isinstance(error, Unreachable) else getattr(error, "unreachable", None)
        if unreachable is not None:
            log.error(
                "The cloud could not be reached at %s: %s%s%s",
                _shown_url(client.transport.base_url),
                unreachable.cause,
                " (logging in)" if isinstance(error, AuthError) else "",
                then,
            )
        else:
            log.error("Site lookup failed: %s%s", error, then)
        return ()
    if not site_ids:
        log.error(
            "The account has no site: search_sites listed none; set ENPHASE_SITE_ID if it has one%s", then
        )
    return site_ids


def _shown_url(url: str) -> str:
    """The base URL as a person typed it, less any user:password part a URL can carry."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, host_of(url), parts.path, "", ""))


if __name__ == "__main__":
    sys.exit(main())
