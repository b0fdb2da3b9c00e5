"""Keyset (cursor) pagination: pages stay fast however deep the caller goes, and rows
added while paging do not shift later pages. Answers ``{"results": [...], "next": url}``."""

from __future__ import annotations

from dataclasses import dataclass

from django.core import signing
from django.db.models import F, Q, QuerySet
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param

from evidence_service.api.errors import InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass
class Page:
    rows: list
    next_url: str | None


_CURSOR_SALT = "evidence_service.api.pagination.cursor"


def _bad_cursor() -> InvalidInput:
    return InvalidInput("The cursor is not valid.", fields={"cursor": "Use the 'next' link as given."})


def _salt(request: Request) -> str:
    """A cursor is made for one list and one caller: signed with the list's path and the
    caller's id, it is refused by any other list and by anyone else."""
    user = getattr(request, "user", None)
    return f"{_CURSOR_SALT}:{request.path}:{getattr(user, 'pk', None)}"


def _decode(cursor: str, width: int, salt: str) -> list:
    """Cursors are signed: a caller can only hand back one this service made for them."""
    try:
        values = signing.loads(cursor, salt=salt)
    except signing.BadSignature as exc:
        raise _bad_cursor() from exc
    if not isinstance(values, list) or len(values) != width:
        raise _bad_cursor()
    return values


def _encode(values: list, salt: str) -> str:
    return signing.dumps([value.isoformat() if hasattr(value, "isoformat") else value for value in values], salt=salt)


def read_limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw in (None, ""):
        return DEFAULT_LIMIT
    # Plain digits only: int() would also take "+3", "5_0", " 7" and other scripts' digits.
    limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput("limit is out of range.", fields={"limit": f"Give a whole number from 1 to {MAX_LIMIT}."})
    return limit


def keyset_page(queryset: QuerySet, request: Request, *, order: tuple[str, ...], keys_first: bool = False) -> Page:
    """One page of ``queryset`` in ``order`` (field names, '-' for descending; the last
    must be unique, e.g. the primary key), continuing after ``?cursor=``.

    ``keys_first`` (for a single numeric key) reads the page's keys before its rows, sorted
    by an expression no index provides: the database then narrows by the most selective
    filter's index (e.g. an actor's date range, read from the index alone) and sorts that
    range, rather than walking the key's index and discarding rows until the page fills,
    which for a narrow range deep in a long history reads most of that history."""
    limit = read_limit(request)
    queryset = queryset.order_by(*order)
    cursor = request.query_params.get("cursor")
    fields = [name.lstrip("-") for name in order]
    if cursor:
        values = _decode(cursor, len(order), _salt(request))
        model = queryset.model
        try:
            values = [model._meta.get_field(name).to_python(value) for name, value in zip(fields, values, strict=False)]
        except Exception as exc:  # a cursor made for another list
            raise _bad_cursor() from exc
        condition = Q()
        for position, name in enumerate(order):
            lookup = "lt" if name.startswith("-") else "gt"
            step = Q(**{f"{fields[position]}__{lookup}": values[position]})
            for earlier in range(position):
                step &= Q(**{fields[earlier]: values[earlier]})
            condition |= step
        queryset = queryset.filter(condition)
    if keys_first:
        if len(order) != 1 or order[0].startswith("-"):
            raise ValueError("keys_first pages by a single ascending key")
        field = fields[0]
        keys = list(queryset.order_by((F(field) + 0).asc()).values_list(field, flat=True)[: limit + 1])
        queryset = queryset.filter(**{f"{field}__in": keys})
    rows = list(queryset[: limit + 1])
    next_url = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        # Rows are model instances, or dicts from ``values()``.
        token = _encode(
            [last[name] if isinstance(last, dict) else getattr(last, name) for name in fields], _salt(request)
        )
        next_url = replace_query_param(request.build_absolute_uri(), "cursor", token)
    return Page(rows=rows, next_url=next_url)
