from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from authorisations.periods import add_months, add_years, period_end, statutory_months

LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 1, 10), 3, date(2026, 4, 10)),
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
        (date(2026, 12, 15), 12, date(2027, 12, 15)),
        (date(2026, 8, 31), 4, date(2026, 12, 31)),
    ],
)
def test_adding_months_clamps_the_day_to_the_end_of_a_shorter_month(day, months, expected):
    assert add_months(day, months) == expected


def test_a_period_beginning_with_the_day_ends_at_local_midnight_on_the_same_date_months_later():
    took_effect = datetime(2026, 1, 10, 14, 0, tzinfo=UTC)
    assert period_end(start=took_effect, months=3) == datetime(2026, 4, 10, 0, 0, tzinfo=LONDON)


def test_the_period_is_counted_in_council_local_time_across_the_clock_change():
    # 23:30 UTC on 30 June is already 1 July in London (BST).
    took_effect = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)
    end = period_end(start=took_effect, months=3)
    assert end == datetime(2026, 10, 1, 0, 0, tzinfo=LONDON)
    assert end.utcoffset().total_seconds() == 3600


def test_statutory_durations():
    assert statutory_months(authorisation_type="directed_surveillance", juvenile_source=False) == 3
    assert statutory_months(authorisation_type="chis", juvenile_source=False) == 12
    assert statutory_months(authorisation_type="chis", juvenile_source=True) == 4
    assert statutory_months(authorisation_type="non_ripa", juvenile_source=False) is None


def test_retention_years_on_a_leap_day_clamp_to_the_28th():
    assert add_years(datetime(2028, 2, 29, 12, 0, tzinfo=LONDON), 5).date() == date(2033, 2, 28)
