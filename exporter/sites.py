"""Site discovery — ``GET /app-api/search_sites.json?searchText=&favourite=false``.

Used when no site id is configured. The same site can be listed twice (deduplicated here), and an empty list
has been returned for an account that has a site, so an empty answer is retried before it is believed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from exporter.client import CloudClient
from exporter.values import Parsed, Reader, require_object

log = logging.getLogger(__name__)

ENDPOINT = "search_sites"
PATH = "/app-api/search_sites.json"
QUERY = {"searchText": "", "favourite": "false"}


def parse(payload: Any) -> Parsed[tuple[str, ...]]:
    body = require_object(payload, "search_sites")
    reader = Reader()
    ids = []
    for index, site in enumerate(reader.objects(body, "sites", "search_sites", required=True)):
        site_id = reader.text(site, "id", f"sites[{index}]", required=True)
        if site_id and site_id.isascii() and site_id.isdigit():  # isdigit alone takes '²' and '٣'
            ids.append(site_id)
        elif site_id:
            reader.problem(f"sites[{index}].id", f"not a site id: {site_id!r}")
    return Parsed(tuple(dict.fromkeys(ids)), tuple(reader.problems))


def discover(
    client: CloudClient, attempts: int = 3, pause: float = 5.0, sleep: Callable[[float], None] = time.sleep
) -> tuple[str, ...]:
    """The account's site ids; empty only after ``attempts`` empty answers."""
    for attempt in range(attempts):
        parsed = parse(client.get_json(ENDPOINT, PATH, QUERY))
        for problem in parsed.problems:
            log.warning("search_sites: %s", problem)
        if parsed.value:
            return parsed.value
        if attempt + 1 < attempts:
            log.info("search_sites listed no site; asking again in %.0f s", pause)
            sleep(pause)
    return ()
