"""Input pieces shared by the API modules."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from evidence_service.text import text_problem

#: The largest id a PostgreSQL bigint holds; larger numbers are refused as input errors.
MAX_ID = 2**63 - 1


class WholeNumberField(serializers.IntegerField):
    """A whole number given in a body or a query string: as a JSON number, or as plain ASCII
    digits (``int()`` would also take "+3", " 7", "5_0" and other scripts' digits)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and not (data.isascii() and data.isdigit()):
            self.fail("invalid")
        return super().to_internal_value(data)


class IdField(WholeNumberField):
    """An object id given in a body or a query string."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


#: The earliest date and time the API takes in. Nothing this service records happened
#: before it, and a moment before 1847 would be answered in London's local mean time,
#: whose offset (-00:01:15) no RFC 3339 date-time can carry.
EARLIEST_MOMENT = datetime(1900, 1, 1, tzinfo=UTC)


#: The one form a date and time is taken in: RFC 3339's (a space or a lower-case t and z
#: allowed), its offset optional. ISO 8601's other forms (week dates, ordinal dates, the
#: basic form without separators), which Python would also parse, are refused.
_MOMENT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
)


class MomentField(serializers.DateTimeField):
    """A date and time given as input: an RFC 3339 date-time, from 1900 on. Without a UTC
    offset it is UK local time (``TIME_ZONE``), unless that time happens twice or not at
    all as the clocks change: then the offset is needed, and its absence is an error rather
    than a guess."""

    default_error_messages = {
        "too_early": "Dates and times before 1900 are not accepted.",
        "form": "Give a date and time as YYYY-MM-DDThh:mm:ss, with Z or a UTC offset such as +01:00.",
        "ambiguous": "{value} happens twice in UK time (the clocks go back then): add its UTC offset.",
        "missing": "{value} does not exist in UK time (the clocks go forward then): add its UTC offset.",
    }

    def to_internal_value(self, value):
        if isinstance(value, str):
            form = _MOMENT.fullmatch(value)
            if form is None:
                self.fail("form")
            if form.group(3) is None:
                self._check_local(value)
            value = value.upper()  # Django's parser takes "T" and "Z" only
        moment = super().to_internal_value(value)
        earliest = EARLIEST_MOMENT if timezone.is_aware(moment) else EARLIEST_MOMENT.replace(tzinfo=None)
        if moment < earliest:
            self.fail("too_early")
        return moment

    def _check_local(self, value: str) -> None:
        try:
            local = parse_datetime(value)
        except ValueError:
            local = None
        if local is None:
            return  # not a date and time at all: the parent refuses it
        zone = self.default_timezone() or timezone.get_current_timezone()
        first, second = local.replace(tzinfo=zone, fold=0), local.replace(tzinfo=zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return
        exists = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == local
        self.fail("ambiguous" if exists else "missing", value=value)


class PeriodFilters(serializers.Serializer):
    """A list's ``since`` (from, inclusive) and ``until`` (before, exclusive) filters. A
    period that ends before it starts is a mistake to point out, not a question whose
    answer is an empty list."""

    since = MomentField(required=False)
    until = MomentField(required=False)

    def validate(self, data):
        if "since" in data and "until" in data and data["until"] < data["since"]:
            raise serializers.ValidationError({"until": "The period ends before it starts: until is before since."})
        return data


class IdConverter:
    """``<id:pk>`` in URLs: a positive id within bigint (at most 2**63 - 1); anything else
    does not match, and so answers 404."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValueError("beyond bigint")
        return number

    def to_url(self, value: int) -> str:
        return str(value)


_DATETIME = serializers.DateTimeField()


def moment_text(value) -> str | None:
    """A date-time as every ``DateTimeField`` of the API writes it: in the current time
    zone, ISO 8601, UTC as "Z". Done directly for the aware datetimes the database gives (a
    few times faster); for answers built as plain dicts, where speed matters."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        text = value.astimezone(timezone.get_current_timezone()).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return None if value is None else _DATETIME.to_representation(value)


# For a serializer on a hot path, first in its bases: its declared fields are deep-copied
# once per class instead of once per instance (DRF's default, most of the cost of validating
# a small input), and each instance binds shallow copies of them. Only for fields that keep
# no state of their own between uses: no ``ListField`` children or ``many=True`` fields, whose
# inner field would stay bound to the shared copy. (A comment, not a docstring: the schema
# would show a docstring as the description of every serializer using it.)
class FieldsCopiedOnce:
    def get_fields(self):
        cls = type(self)
        prototypes = cls.__dict__.get("_fields_copied_once")
        if prototypes is None:
            prototypes = copy.deepcopy(self._declared_fields)
            for name, field in prototypes.items():
                if hasattr(field, "child") or hasattr(field, "child_relation"):
                    raise TypeError(f"{cls.__name__}.{name}: a field with an inner field cannot be shared")
            cls._fields_copied_once = prototypes
        return {name: copy.copy(field) for name, field in prototypes.items()}


class ReadTogether(serializers.ListSerializer):
    """Rows written out together (``many=True``), after what each needs from other tables
    is read for all of them at once by ``read_together``: a few statements for a page
    rather than some for every row."""

    def to_representation(self, data):
        rows = list(data.all() if hasattr(data, "all") else data)
        self.read_together(rows)
        return super().to_representation(rows)

    def read_together(self, rows: list) -> None:
        raise NotImplementedError


class LineField(serializers.CharField):
    """Text that stays on one line (a reference, a title, a name, an id): no tabs or line
    breaks, besides what every text field refuses (``evidence_service.text``)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        problem = text_problem(value, one_line=True)
        if problem:
            raise serializers.ValidationError(problem)
        return value
