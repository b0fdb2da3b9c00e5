"""Input pieces shared by the API modules."""

from __future__ import annotations

from rest_framework import serializers

#: The largest id a PostgreSQL bigint holds; larger numbers are refused as input errors.
MAX_ID = 2**63 - 1


class IdField(serializers.IntegerField):
    """An object id given in a body or a query string."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


class IdConverter:
    """``<id:pk>`` in URLs: a positive id of at most 18 digits (always within bigint);
    anything else does not match, and so answers 404."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
