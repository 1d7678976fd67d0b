"""Sharding: N exporters split one account's sites between them, without talking to each other.

Each site goes to shard ``sha256(site id) mod N`` (1-based in the setting: ``--shard 2/3``). A cryptographic
hash, not Python's ``hash()``: that one is salted per process, so two exporters would disagree about where a
site belongs. The split depends only on the site id, so adding a site moves no other site between shards;
changing N moves most of them (the request budget is per account, so N rarely changes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def shard_of(site_id: str, count: int) -> int:
    """The 1-based shard (of ``count``) that polls ``site_id``."""
    digest = hashlib.sha256(site_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def select(site_ids: Iterable[str], shard: tuple[int, int] | None) -> tuple[str, ...]:
    """The sites of ``site_ids`` this exporter polls, in their original order; all of them without a shard."""
    if shard is None:
        return tuple(site_ids)
    index, count = shard
    return tuple(site_id for site_id in site_ids if shard_of(site_id, count) == index)
