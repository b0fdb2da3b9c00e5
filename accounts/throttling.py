"""Sign-in throttling: failed sign-ins counted per (username, address), per address and
per username, in the database.

Three limits over one sliding window (``LOGIN_FAILURE_WINDOW_SECONDS``):

- ``LOGIN_FAILURES_PER_USER_AND_IP`` (5): one username from one address. This is the limit
  a guesser meets first, and it only shuts out the address the guesses come from.
- ``LOGIN_FAILURES_PER_IP`` (20): one address, whatever the usernames (a guesser working
  through a list of them).
- ``LOGIN_FAILURES_PER_USER`` (100): one username from every address together, which bounds
  a distributed guess at one account. It is not applied at an address the username signed in
  from successfully within ``LOGIN_KNOWN_ADDRESS_DAYS``, so a stranger — even one with many
  addresses — cannot lock an officer out of the office they sign in from.

The counts live in two small tables of the database the service already depends on
(``LoginFailure`` and ``LoginAddress``), not in the cache: sign-in then neither fails when
Redis is down nor forgets its counts when Redis restarts, and every web process shares them.
They are not taken from the audit log's ``auth.login_failed`` events, which would put a query
on the JSON payload in front of every sign-in on the table that must stay fast to append to.
The cost is a committed insert and one indexed count per attempt, next to a password hash
that costs far more.

An attempt *reserves* its failure (a row committed by ``login_attempt_start``'s own
transaction) before the password is checked, then counts, so a burst of concurrent guesses
cannot all slip under a limit: attempts at one address, and at one username, take turns
(transaction-scoped advisory locks on PostgreSQL; SQLite's transactions take the write lock
when they begin), so each counts the reservations of all that went before it. The
reservation is deleted when the attempt is refused, or when it ends in an unexpected error.
A success deletes the reservation and the username's failures from that address (whoever
signed in knew the password there), but leaves the address's failures for other usernames
and the username's failures from elsewhere: knowing one password does not buy more guesses
at another account, and signing in does not reset the budget of a distributed guess.

Usernames are counted by their normalised form (surrounding space stripped, NFKC, case
folded), which is never finer than the sign-in itself: the sign-in form strips and
NFKC-normalises, the API strips, and ``Olivia`` and ``olivia`` share one count.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Q, QuerySet

from accounts.models import LoginAddress, LoginFailure

logger = logging.getLogger(__name__)

#: The limits, most specific first: (name in the audit event, setting).
LIMITS = (
    ("user_and_ip", "LOGIN_FAILURES_PER_USER_AND_IP"),
    ("ip", "LOGIN_FAILURES_PER_IP"),
    ("user", "LOGIN_FAILURES_PER_USER"),
)
#: The address of a request whose client address is not known (all such share a count).
UNKNOWN_ADDRESS = "unknown"
#: Expired rows are deleted at most this often per process (seconds).
PRUNE_EVERY = 60.0

_now = time.time
_last_prune = float("-inf")


@dataclass
class LoginAttempt:
    """One sign-in attempt, counted as a failure unless it is refused, succeeds or is
    released."""

    username_key: str
    address: str
    row_id: int | None = None
    refused_scope: str | None = None
    retry_after: int = 0
    _settled: bool = field(default=False, repr=False)

    @property
    def refused(self) -> bool:
        return self.refused_scope is not None

    def succeeded(self) -> None:
        """The password was right: this username's failures from this address are
        forgotten, and the address is remembered as one the username signs in from. Call it
        inside the transaction that records the sign-in."""
        if self._settled:
            return
        LoginFailure.objects.filter(
            Q(pk=self.row_id) | Q(username_key=self.username_key, address=self.address)
        ).delete()
        days = settings.LOGIN_KNOWN_ADDRESS_DAYS
        if days and self.address != UNKNOWN_ADDRESS:
            LoginAddress.objects.update_or_create(
                username_key=self.username_key, address=self.address, defaults={"last_success_at": _at(_now())}
            )
        self._settled = True

    def release(self) -> None:
        """The attempt ended without an answer on the password (an unexpected error): it
        is not counted. Never raises, so the error that ended the attempt is the one seen."""
        if self._settled:
            return
        self._settled = True
        if self.row_id is not None:
            try:
                LoginFailure.objects.filter(pk=self.row_id).delete()
            except DatabaseError:
                logger.exception("could not give back a sign-in attempt's reservation; it counts as a failure")


def username_key(username: str) -> str:
    """The hash a username is counted under: usernames that differ only in surrounding
    space, case or Unicode form share it."""
    normal = unicodedata.normalize("NFKC", username.strip()).casefold()
    return hashlib.sha256(normal.encode()).hexdigest()


def address_key(ip: str | None) -> str:
    """An IPv4 address, or the /64 network of an IPv6 one (a single client is usually
    given a whole /64)."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return UNKNOWN_ADDRESS
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return f"{ipaddress.IPv6Network((address, 64), strict=False).network_address}/64"
    return str(address)


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _prune(now: float) -> None:
    """Delete failures that have left the window, and known addresses not used for
    ``LOGIN_KNOWN_ADDRESS_DAYS``; at most once a minute per process."""
    global _last_prune
    if abs(now - _last_prune) < PRUNE_EVERY:
        return
    _last_prune = now
    LoginFailure.objects.filter(at__lte=_at(now - settings.LOGIN_FAILURE_WINDOW_SECONDS)).delete()
    LoginAddress.objects.filter(
        last_success_at__lt=_at(now) - timedelta(days=settings.LOGIN_KNOWN_ADDRESS_DAYS)
    ).delete()


def _scope_filter(scope: str, username: str, address: str) -> Q:
    return {
        "user_and_ip": Q(username_key=username, address=address),
        "ip": Q(address=address),
        "user": Q(username_key=username),
    }[scope]


def _known_address(attempt: LoginAttempt, now: float) -> bool:
    days = settings.LOGIN_KNOWN_ADDRESS_DAYS
    return (
        bool(days)
        and LoginAddress.objects.filter(
            username_key=attempt.username_key,
            address=attempt.address,
            last_success_at__gte=_at(now) - timedelta(days=days),
        ).exists()
    )


def _retry_after(q: Q, *, limit: int, count: int, row_id: int, cutoff: datetime, now: float) -> int:
    """Seconds until enough of the failures in the window have left it for one more
    attempt. ``count`` includes this attempt's own reservation."""
    # The failures before this one number count - 1; one more attempt needs at most
    # limit - 1 of them, so the count - limit oldest must leave the window.
    oldest = (
        LoginFailure.objects.filter(q, at__gt=cutoff)
        .exclude(pk=row_id)
        .order_by("at", "pk")
        .values_list("at", flat=True)[count - limit - 1 : count - limit]
    )
    leaves = next(iter(oldest), None)
    if leaves is None:  # pragma: no cover - pruned meanwhile: try again soon
        return 1
    return max(1, math.ceil(leaves.timestamp() + settings.LOGIN_FAILURE_WINDOW_SECONDS - now))


def login_failures_matching(*, username: str | None, ip: str | None) -> QuerySet[LoginFailure]:
    """The failures counted for ``username`` (normalised as the throttle counts it), for
    the address ``ip`` (an IPv6 address by its /64), or for both together."""
    failures = LoginFailure.objects.all()
    if username is not None:
        failures = failures.filter(username_key=username_key(username))
    if ip is not None:
        failures = failures.filter(address=address_key(ip))
    return failures


#: The first key of the transaction-scoped advisory locks that make attempts at one address,
#: and at one username, take turns (other lock spaces: cases.selectors, detection.services).
SIGN_IN_LOCK_SPACE = 0x4345534C


def _lock_key(kind: str, value: str) -> int:
    digest = hashlib.sha256(f"{kind}:{value}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def _take_turns(attempt: LoginAttempt) -> None:
    """Wait for the attempts at this address, then at this username, that are still counting
    (always in that order, so two attempts cannot wait for each other). Held until the
    caller's transaction ends, which must be the one that commits the reservation."""
    if connection.vendor != "postgresql":
        return
    if not connection.in_atomic_block:
        raise RuntimeError("login_attempt_reserve runs inside the transaction that commits its reservation")
    with connection.cursor() as cursor:
        for kind, value in (("address", attempt.address), ("username", attempt.username_key)):
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SIGN_IN_LOCK_SPACE, _lock_key(kind, value)])


def login_attempt_reserve(*, username: str, ip: str | None) -> LoginAttempt:
    """Count this attempt as a failure for ``username`` and the client address, and say
    whether it is over a limit (then the reservation is deleted at once)."""
    attempt = LoginAttempt(username_key=username_key(username), address=address_key(ip))
    limits = {scope: getattr(settings, name) for scope, name in LIMITS if getattr(settings, name) > 0}
    if not limits:
        return attempt
    now = _now()
    _prune(now)
    _take_turns(attempt)
    with transaction.atomic():
        attempt.row_id = LoginFailure.objects.create(
            username_key=attempt.username_key, address=attempt.address, at=_at(now)
        ).pk
    cutoff = _at(now - settings.LOGIN_FAILURE_WINDOW_SECONDS)
    filters = {scope: _scope_filter(scope, attempt.username_key, attempt.address) for scope in limits}
    counts = LoginFailure.objects.filter(
        Q(username_key=attempt.username_key) | Q(address=attempt.address), at__gt=cutoff
    ).aggregate(**{scope: Count("pk", filter=q) for scope, q in filters.items()})
    for scope, limit in limits.items():
        if counts[scope] <= limit:
            continue
        if scope == "user" and _known_address(attempt, now):
            continue
        wait = _retry_after(
            filters[scope], limit=limit, count=counts[scope], row_id=attempt.row_id, cutoff=cutoff, now=now
        )
        if wait > attempt.retry_after:
            attempt.refused_scope, attempt.retry_after = scope, wait
    if attempt.refused:
        attempt.release()
    return attempt
