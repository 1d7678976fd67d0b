"""Basic authentication against bcrypt hashes, and the request rate limit, of the web config file.

bcrypt is slow on purpose (about 70 ms at cost 10), too slow to pay on every scrape. So a pair that verified
once is remembered, as the exporter-toolkit does: by an HMAC of user and password under a key that lives only
in this process, so the cache holds nothing a memory dump could turn back into a password, and its lookups
leak nothing an attacker could steer. Only pairs that passed bcrypt get in, so guesses cannot fill it.

Guesses are throttled per client address (``FailureThrottle``): a few failures are free, then one more bcrypt
check per interval; the others are answered 429 at once, before any bcrypt. The cache is consulted first, so
credentials that verified once are never throttled: a flood of wrong passwords cannot lock the real scraper
out, even from the same address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Literal

import bcrypt

CACHE_SIZE = 64
FREE_FAILURES = 5  # per client address: typos and a misconfigured scraper's first tries
FAILURE_INTERVAL = 2.0  # seconds: then one more bcrypt check per address per this long
TRACKED_ADDRESSES = 4096  # bounds the throttle's memory under a flood from many addresses

Verdict = Literal["allowed", "refused", "throttled"]
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


def is_bcrypt_hash(text: str) -> bool:
    return _BCRYPT_HASH.fullmatch(text) is not None


class BasicAuth:
    def __init__(self, users: Mapping[str, bytes]) -> None:
        if not users:
            raise ValueError("BasicAuth needs at least one user")
        self._users = dict(users)
        # An unknown user is checked against a real hash, so it costs the same time as a known one and the
        # answer's timing does not tell which user names exist.
        self._decoy = next(iter(self._users.values()))
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._cache_lock = threading.Lock()
        # One bcrypt at a time: a flood of wrong passwords then takes one core, not all of them; scrapes
        # with known-good credentials are answered from the cache and do not wait.
        self._bcrypt_lock = threading.Lock()

    @property
    def user_count(self) -> int:
        return len(self._users)

    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries the password of a configured user (no throttle)."""
        return self.check(authorization) == "allowed"

    def check(
        self, authorization: str | None, address: str | None = None, throttle: FailureThrottle | None = None
    ) -> Verdict:
        """``allowed``, ``refused``, or ``throttled`` (``address`` failed too often: no bcrypt was spent)."""
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return "refused"  # costs nothing, so it is not counted
        user, password = credentials
        digest = self._digest(user, password)
        with self._cache_lock:
            if digest in self._verified:
                self._verified.move_to_end(digest)
                return "allowed"
        if throttle is not None and address is not None and not throttle.may_try(address):
            return "throttled"
        stored = self._users.get(user)
        matches = self._bcrypt_matches(password, stored if stored is not None else self._decoy)
        if not (matches and stored is not None):
            if throttle is not None and address is not None:
                throttle.failed(address)
            return "refused"
        with self._cache_lock:
            self._verified[digest] = None
            while len(self._verified) > CACHE_SIZE:
                self._verified.popitem(last=False)
        return "allowed"

    def _digest(self, user: str, password: bytes) -> bytes:
        # The user's length first, so that no (user, password) split of the same bytes can share a digest.
        name = user.encode()
        message = len(name).to_bytes(8, "big") + name + password
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def _bcrypt_matches(self, password: bytes, hashed: bytes) -> bool:
        with self._bcrypt_lock:
            try:
                return bcrypt.checkpw(password, hashed)  # compares in constant time
            except ValueError:  # longer than bcrypt's 72 bytes: no stored password can match it
                return False


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) from ``Basic base64(user:password)``, or None for anything else."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except ValueError:
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


class RateLimit:
    """A token bucket: ``burst`` requests at once, then one more per ``interval`` seconds."""

    def __init__(self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._last) / self._interval)
            self._last = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class FailureThrottle:
    """Failed basic-auth attempts per client address: ``free`` at once, then one more per ``interval``.

    A token bucket per address (IPv6 per /64, which one machine can fill with addresses). Addresses whose
    bucket is full again are forgotten, and at most ``limit`` are tracked: the least recently failing go
    first, so a flood from many addresses cannot grow the table."""

    def __init__(
        self,
        free: int = FREE_FAILURES,
        interval: float = FAILURE_INTERVAL,
        limit: int = TRACKED_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._free = free
        self._interval = interval
        self._limit = limit
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, as of)
        self._lock = threading.Lock()

    def may_try(self, address: str) -> bool:
        with self._lock:
            return self._tokens(_client_key(address)) >= 1

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again (0 when it may now)."""
        with self._lock:
            return max(0.0, (1 - self._tokens(_client_key(address))) * self._interval)

    def failed(self, address: str) -> None:
        key = _client_key(address)
        with self._lock:
            self._buckets[key] = (max(0.0, self._tokens(key) - 1), self._clock())
            self._buckets.move_to_end(key)
            while len(self._buckets) > self._limit:
                self._buckets.popitem(last=False)

    def _tokens(self, key: str) -> float:
        tokens, since = self._buckets.get(key, (float(self._free), self._clock()))
        tokens = min(float(self._free), tokens + (self._clock() - since) / self._interval)
        if tokens >= self._free:
            self._buckets.pop(key, None)
        return tokens


def _client_key(address: str) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:  # ::ffff:192.0.2.7 is the IPv4 client 192.0.2.7
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
