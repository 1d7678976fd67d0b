"""EV status from the IQ Gateway on the local network (seed 004), when it answers; the cloud otherwise.

- ``GET /ivp/pdm/chargers`` at start and every few hours (``ENPHASE_GATEWAY_DISCOVERY_INTERVAL``): which
  chargers the gateway knows.
- ``GET /ivp/pdm/charger/<sn>/status`` for each, every ``ENPHASE_GATEWAY_EV_STATUS_INTERVAL`` seconds: the
  cloud's status shape, read by ``ev_status.parse``. No cloud request is made for EV status meanwhile.

Current firmware answers owner tokens 401 (installer scope only). Then one log line says so,
``enphase_gateway_up`` is 0, the cloud is used, and the gateway is not asked again before the next
discovery. Any other failure (of a status read, or of a discovery) hands EV status to the cloud in the same
poll; the gateway is tried again after ``RETRY_SECONDS``. Sample output::

    enphase_gateway_up 1.0
    enphase_source_up{site_id="1234567",source="gateway"} 1.0
    enphase_gateway_request_duration_seconds_count{endpoint="gateway_ev_status"} 42.0

The shape of ``/ivp/pdm/chargers`` is not documented: a list of serials or of objects with ``sn`` (or
``serialNumber``/``serial``), bare or under ``chargers`` or ``data`` (``data.chargers``), are all read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from exporter.client import GatewayError, GatewayTransport, GatewayUnauthorized
from exporter.sources import ev_status
from exporter.values import Parsed, PayloadError

log = logging.getLogger(__name__)

CHARGERS_PATH = "/ivp/pdm/chargers"
CHARGERS_ENDPOINT = "gateway_chargers"
STATUS_ENDPOINT = "gateway_ev_status"
RETRY_SECONDS = 300.0  # after a failure other than 401: the cloud meanwhile, at the cloud's interval
SERIAL_KEYS = ("sn", "serialNumber", "serial")


def status_path(serial: str) -> str:
    return f"/ivp/pdm/charger/{serial}/status"


def parse_chargers(payload: Any) -> tuple[str, ...]:
    """The serials the gateway lists; PayloadError when there is no list of chargers in the payload."""
    items = payload
    if isinstance(items, Mapping):
        items = items.get("chargers", items.get("data"))
    if isinstance(items, Mapping):
        items = items.get("chargers")
    if not isinstance(items, list):
        raise PayloadError("gateway_chargers: no list of chargers in the payload")
    serials = []
    for item in items:
        if isinstance(item, Mapping):
            item = next((item[key] for key in SERIAL_KEYS if isinstance(item.get(key), str | int)), None)
        if isinstance(item, str | int) and str(item).strip():
            serials.append(str(item).strip())
    return tuple(dict.fromkeys(serials))


def merge(parts: Sequence[Parsed[ev_status.EvStatus]]) -> Parsed[ev_status.EvStatus]:
    """One site's EV status from the per-charger answers."""
    chargers = tuple(charger for part in parts for charger in part.value.chargers)
    stamps = [part.value.server_timestamp for part in parts if part.value.server_timestamp is not None]
    zone = next((part.value.time_zone for part in parts if part.value.time_zone), None)
    problems = tuple(problem for part in parts for problem in part.problems)
    return Parsed(ev_status.EvStatus(max(stamps, default=None), zone, chargers), problems)


class Gateway:
    def __init__(
        self,
        transport: GatewayTransport,
        registry: CollectorRegistry,
        *,
        site_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._configured_site = site_id
        self._clock = clock
        self._lock = threading.Lock()
        self.site_id: str | None = None  # set by assign_site
        self._serials: tuple[str, ...] = ()
        self._refused = False  # a 401: not asked again before the next discovery
        self._discovery_failed = False  # not a 401: asked again after RETRY_SECONDS, not hours later
        self._retry_at = 0.0
        self._up = Gauge(
            "enphase_gateway_up",
            "1 when the local IQ Gateway answered its latest request; EV status then comes from it.",
            registry=registry,
        )

    def assign_site(self, site_ids: Sequence[str]) -> None:
        """The site whose EV status the gateway gives: the configured one, or the only one polled."""
        if self._configured_site is not None:
            self.site_id = self._configured_site if self._configured_site in site_ids else None
            if self.site_id is None:
                log.warning(
                    "ENPHASE_GATEWAY_SITE_ID %s is not polled; the gateway is not used", self._configured_site
                )
        elif len(site_ids) == 1:
            self.site_id = site_ids[0]
        else:
            self.site_id = None
            log.warning(
                "%d sites are polled: set ENPHASE_GATEWAY_SITE_ID to the gateway's; until then it is unused",
                len(site_ids),
            )

    def serves(self, site_id: str) -> bool:
        """Whether EV status of ``site_id`` is read from the gateway now (else from the cloud)."""
        with self._lock:
            return (
                site_id == self.site_id
                and bool(self._serials)
                and not self._refused
                and self._clock() >= self._retry_at
            )

    def rediscover_if_due(self) -> None:
        """A discovery that failed for another reason than 401 (the gateway was down at start) is tried
        again after ``RETRY_SECONDS``, at the next EV status poll, rather than at the next discovery."""
        with self._lock:
            due = self._discovery_failed and not self._refused and self._clock() >= self._retry_at
        if due:
            self.discover()

    def discover(self) -> None:
        """Ask which chargers the gateway has. Also ends the pause after a 401: firmware may have changed."""
        try:
            serials = parse_chargers(self._transport.get_json(CHARGERS_ENDPOINT, CHARGERS_PATH))
        except (GatewayError, PayloadError) as error:
            with self._lock:
                self._discovery_failed = True
            self._failed(error if isinstance(error, GatewayError) else GatewayError(str(error)))
            return
        with self._lock:
            was_in_use = bool(self._serials) and not self._refused
            self._serials, self._refused, self._retry_at = serials, False, 0.0
            self._discovery_failed = False
        self._up.set(1)
        if serials and not was_in_use:
            log.info(
                "The local gateway answers for charger(s) %s: EV status is read there", ", ".join(serials)
            )
        elif not serials:
            log.info("The local gateway lists no charger; EV status comes from the cloud")

    def ev_status(self) -> Parsed[ev_status.EvStatus]:
        """Every listed charger's status; GatewayError (the caller falls back to the cloud) on any failure."""
        with self._lock:
            serials = self._serials
        try:
            parts = [
                ev_status.parse(self._transport.get_json(STATUS_ENDPOINT, status_path(serial)))
                for serial in serials
            ]
        except PayloadError as error:
            failure = GatewayError(str(error))
            self._failed(failure)
            raise failure from None
        except GatewayError as error:
            self._failed(error)
            raise
        self._up.set(1)
        with self._lock:
            recovered, self._retry_at = self._retry_at != 0.0, 0.0
        if recovered:
            log.info("The local gateway answers again: EV status is read there")
        return merge(parts)

    def _failed(self, error: GatewayError) -> None:
        self._up.set(0)
        with self._lock:
            first_refusal = isinstance(error, GatewayUnauthorized) and not self._refused
            first_failure = self._retry_at == 0.0 and not self._refused
            if isinstance(error, GatewayUnauthorized):
                self._refused = True
            else:
                self._retry_at = self._clock() + RETRY_SECONDS
        if first_refusal:
            log.warning(
                "The local gateway refused the token (%s): its EV endpoints need an installer-scope token "
                "(owner tokens get 401 on current firmware). EV status comes from the cloud; the gateway is "
                "asked again at the next discovery.",
                error,
            )
        elif first_failure and not isinstance(error, GatewayUnauthorized):
            log.warning("The local gateway failed (%s); EV status comes from the cloud meanwhile", error)
