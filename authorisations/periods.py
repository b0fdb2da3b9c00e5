"""How long an authorisation lasts, and how long its record is kept.

RIPA s.43(3) gives a directed surveillance authorisation three months, and a CHIS
authorisation twelve (four for a juvenile source, SI 2018/715), "beginning with the day on
which it took effect". A period *beginning with* a day counts that day as the first, so an
authorisation that took effect at 14:00 on 10 January ceases at the end of 9 April: the
start (local midnight) of 10 April. A renewal runs for the same period from the moment the
authorisation would otherwise have ceased (s.43(6)).
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from authorisations.models import AuthorisationType

#: Statutory durations in calendar months [RIPA s.43(3); juvenile CHIS: SI 2018/715].
RIPA_DURATION_MONTHS = {
    AuthorisationType.DIRECTED_SURVEILLANCE: 3,
    AuthorisationType.CHIS: 12,
}
JUVENILE_CHIS_DURATION_MONTHS = 4


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, clamped to the end of a shorter month
    (31 January + 1 month = 28 or 29 February)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def add_months_to_moment(moment: datetime, months: int) -> datetime:
    """The same local wall-clock time ``months`` calendar months later (day clamped)."""
    local = timezone.localtime(moment, _zone())
    shifted = add_months(local.date(), months)
    return datetime.combine(shifted, local.time().replace(tzinfo=None), tzinfo=_zone())


def add_years(moment: datetime, years: int) -> datetime:
    return add_months_to_moment(moment, 12 * years)


def statutory_months(*, authorisation_type: str, juvenile_source: bool) -> int | None:
    """The statutory period of a RIPA authorisation, or None for a non-RIPA one (whose
    end the authorising officer sets)."""
    if authorisation_type == AuthorisationType.CHIS and juvenile_source:
        return JUVENILE_CHIS_DURATION_MONTHS
    return RIPA_DURATION_MONTHS.get(authorisation_type)


def period_end(*, start: datetime, months: int) -> datetime:
    """The instant a period of ``months`` "beginning with the day" of ``start`` ends:
    local midnight at the start of the same date ``months`` later (day clamped)."""
    local_day = timezone.localtime(start, _zone()).date()
    return datetime.combine(add_months(local_day, months), time(0, 0), tzinfo=_zone())


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)
