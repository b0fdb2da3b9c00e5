"""Sign-in throttling: failed sign-ins counted per username and per client address.

The counters live in Django's cache (Redis when ``REDIS_URL`` is set, so every web process
shares them; process memory in the embedded default, which runs one process). The audit
log's ``auth.login_failed`` events would also do, but counting them would put an indexed
query on the JSON payload (the username) and the address in front of every sign-in, on the
one table the service must keep fast to append to, and an attacker's guesses would turn
into read load on it. Losing the counters (Redis restarted) only gives an attacker one more
window; the audit log still records every failure and every refusal.

Each counter is a sliding window made of ``SLOTS`` + 1 slots of ``window / SLOTS``
seconds: the sum over the current slot and the ``SLOTS`` before it covers at least the
whole window, so no window of that length ever holds more failures than the limit. An
attempt *reserves* its failure (an atomic increment) before the password is checked, and
then reads the counts, so a burst of concurrent guesses cannot all slip under the limit.
The reservation is given back when the attempt is refused, and for the address when the
sign-in succeeds: a success is not a failure, but it does not wipe the failures before it
either, so an attacker cannot alternate their own good password with guesses at another
account to stay under the per-address limit. A success does reset the counter of the
username that signed in (whoever did knew its password).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import math
import time
import unicodedata
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache

#: Slots per window: the window is remembered to within one slot (a fifteenth of it).
SLOTS = 15
#: Prefix of every counter key in the cache.
KEY_PREFIX = "login-failures"

_now = time.time


@dataclass(frozen=True)
class _Counter:
    scope: str  # "user" or "ip": which limit this is
    limit: int
    base: str  # the key without its slot number

    def key(self, slot: int) -> str:
        return f"{self.base}:{slot}"


@dataclass
class LoginAttempt:
    """One sign-in attempt, counted as a failure unless it is refused, succeeds or is
    released."""

    counters: list[_Counter]
    slot: int
    refused_scope: str | None = None
    retry_after: int = 0
    _settled: bool = field(default=False, repr=False)

    @property
    def refused(self) -> bool:
        return self.refused_scope is not None

    def succeeded(self) -> None:
        """The password was right: the address keeps its failures (this attempt was not
        one), and the username starts afresh."""
        if self._settled:
            return
        self._settled = True
        for counter in self.counters:
            if counter.scope == "user":
                cache.delete_many([counter.key(slot) for slot in range(self.slot - SLOTS, self.slot + 1)])
            else:
                _decr(counter.key(self.slot))

    def release(self) -> None:
        """The attempt ended without an answer on the password (an unexpected error)."""
        if self._settled:
            return
        self._settled = True
        for counter in self.counters:
            _decr(counter.key(self.slot))


def _username_key(username: str) -> str:
    # Usernames that differ only in case or Unicode form share a counter: stricter than
    # the sign-in itself, never looser.
    normal = unicodedata.normalize("NFKC", username).casefold()
    return hashlib.sha256(normal.encode()).hexdigest()[:32]


def _address_key(ip: str | None) -> str:
    """An IPv4 address, or the /64 network of an IPv6 one (a single client is usually
    given a whole /64)."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return f"{ipaddress.IPv6Network((address, 64), strict=False).network_address}/64"
    return str(address)


def _window() -> tuple[float, float]:
    window = float(settings.LOGIN_FAILURE_WINDOW_SECONDS)
    return window, window / SLOTS


def _incr(key: str, timeout: int) -> None:
    cache.add(key, 0, timeout)
    try:
        cache.incr(key)
    except ValueError:  # evicted between the two calls
        cache.set(key, 1, timeout)


def _decr(key: str) -> None:
    with contextlib.suppress(ValueError):  # already gone: nothing to give back
        cache.decr(key)


def _retry_after(limit: int, counts: list[int], slot: int, now: float, slot_seconds: float) -> int:
    """Seconds until the oldest slots have left the window far enough for one more
    attempt. ``counts`` are the slots ``slot - SLOTS`` … ``slot``, this attempt excluded."""
    for ahead in range(len(counts) + 1):
        if sum(counts[ahead:]) <= limit - 1:
            return max(1, math.ceil((slot + ahead) * slot_seconds - now)) if ahead else 1
    return math.ceil(settings.LOGIN_FAILURE_WINDOW_SECONDS)  # pragma: no cover - the loop always returns


def login_attempt_reserve(*, username: str, ip: str | None) -> LoginAttempt:
    """Count this attempt as a failure for ``username`` and the client address, and say
    whether it is over a limit (then the reservation is given back at once)."""
    counters = [
        counter
        for counter in (
            _Counter("user", settings.LOGIN_FAILURES_PER_USER, f"{KEY_PREFIX}:user:{_username_key(username)}"),
            _Counter("ip", settings.LOGIN_FAILURES_PER_IP, f"{KEY_PREFIX}:ip:{_address_key(ip)}"),
        )
        if counter.limit > 0
    ]
    window, slot_seconds = _window()
    now = _now()
    slot = int(now // slot_seconds)
    attempt = LoginAttempt(counters=counters, slot=slot)
    if not counters:
        return attempt
    timeout = math.ceil(window + 2 * slot_seconds)
    for counter in counters:
        _incr(counter.key(slot), timeout)
    slots = range(slot - SLOTS, slot + 1)
    stored = cache.get_many([counter.key(s) for counter in counters for s in slots])
    for counter in counters:
        counts = [int(stored.get(counter.key(s)) or 0) for s in slots]
        if sum(counts) > counter.limit:
            counts[-1] = max(0, counts[-1] - 1)
            wait = _retry_after(counter.limit, counts, slot, now, slot_seconds)
            if wait > attempt.retry_after:
                attempt.refused_scope, attempt.retry_after = counter.scope, wait
    if attempt.refused:
        attempt.release()
    return attempt
