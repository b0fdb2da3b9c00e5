"""One way to run a service: ``@service``.

Every public function (a name not starting with ``_``) of an app's ``services.py`` is a
service and is decorated with ``service``: it runs in a transaction of its own (a
savepoint when called inside another one), so that what it writes and the audit event
recording it commit or fail together, and the rows it locks (``select_for_update``) stay
locked until it ends. ``tests/test_services_transactions.py`` walks every ``services.py``
of the project and fails on a public function that is not wrapped by ``service``.

The decorator goes on the line right above the service's ``def``. It refuses to wrap a
private function (``_name``): a helper inserted between the decorator and the service
would otherwise be wrapped in the service's place, leaving the service outside any
transaction, so that mistake fails at import instead; a public helper inserted there
leaves the service unmarked, which the test reports.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar, overload

from django.db import transaction

P = ParamSpec("P")
R = TypeVar("R")


@overload
def service(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def service(
    *, savepoint: bool = True, durable: bool = False, commit_on: tuple[type[BaseException], ...] = ()
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def service(func=None, /, *, savepoint=True, durable=False, commit_on=()):
    """Run the decorated function in ``transaction.atomic``; mark it as a service
    (``__service__``). Use as ``@service`` or ``@service(...)``.

    ``savepoint=False``: inside a caller's transaction, no savepoint of its own (a failure
    fails the caller's whole transaction, and it saves two round trips), as
    ``transaction.atomic(savepoint=False)``.

    ``durable=True``: the service must be the outermost transaction, and is committed when
    it returns (``transaction.atomic(durable=True)``; called inside another transaction it
    raises ``RuntimeError``). For a service whose effects outside the database must match
    what it commits (an email sent and marked sent), or whose ``commit_on`` refusal must
    survive whatever its caller does next.

    ``commit_on``: exception types after which what the service wrote is kept (its
    transaction commits, or its savepoint is released) before the exception is raised on
    to the caller. Only for a refusal the service records itself, in the audit log, after
    writing nothing else (a throttled or failed sign-in: the refusal's event must survive
    the refusal); never for an error that would leave a change half-made. Any other
    exception rolls everything back as usual."""
    options = {"savepoint": savepoint, "durable": durable, "commit_on": tuple(commit_on)}
    if func is None:
        return functools.partial(_wrap, **options)
    return _wrap(func, **options)


def _wrap(
    func: Callable[P, R], *, savepoint: bool, durable: bool, commit_on: tuple[type[BaseException], ...]
) -> Callable[P, R]:
    if not callable(func) or getattr(func, "__service__", False):
        raise TypeError(f"@service wraps a function once, not {func!r}")
    name = getattr(func, "__name__", "")
    if name.startswith("_"):
        raise TypeError(
            f"@service on private function {func.__module__}.{name}: the decorator belongs right above a public "
            "service's def (was a helper inserted between them?); a private helper runs in its caller's transaction"
        )
    for kind in commit_on:
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            raise TypeError(f"commit_on takes exception classes, not {kind!r}")

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        kept: BaseException | None = None
        with transaction.atomic(savepoint=savepoint, durable=durable):
            try:
                return func(*args, **kwargs)
            except commit_on as refusal:
                kept = refusal
        raise kept

    wrapper.__service__ = True
    wrapper.__service_options__ = {"savepoint": savepoint, "durable": durable, "commit_on": commit_on}
    return wrapper
