"""A person's date of birth is from 1900 to today (in the service's time zone, London):
anything else is refused naming the field, and nothing is recorded (found by probing:
0001-01-01 and 9999-12-31 were accepted)."""

from datetime import UTC, date, datetime

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from cases.models import CaseSubject, Subject


def add_person(client, case, date_of_birth):
    return client.post(
        f"/api/v1/cases/{case.pk}/subjects/",
        {"display_name": "Jane Doe", "relationship": "parent", "external_id": "LCS-42", "date_of_birth": date_of_birth},
        format="json",
    )


@pytest.mark.parametrize(
    "date_of_birth, message",
    [
        ("0001-01-01", "Dates of birth before 1900 are not accepted."),
        ("1899-12-31", "Dates of birth before 1900 are not accepted."),
        ("9999-12-31", "A date of birth cannot be in the future."),
    ],
)
def test_a_date_of_birth_before_1900_or_in_the_future_is_refused_naming_the_field(
    alice, north_case, client_for, date_of_birth, message
):
    response = add_person(client_for(alice), north_case, date_of_birth)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and body["fields"] == {"date_of_birth": [message]}
    assert body["request_id"]
    assert not Subject.objects.exists() and not CaseSubject.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="subject.").exists()


def test_today_is_the_day_in_london(alice, north_case, client_for, monkeypatch):
    client = client_for(alice)
    # 23:30 UTC on 30 June is already 1 July in London (BST): 1 July is today there.
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 6, 30, 23, 30, tzinfo=UTC))
    assert add_person(client, north_case, "2026-07-02").status_code == 400
    assert add_person(client, north_case, "2026-07-01").status_code == 201


@pytest.mark.parametrize("date_of_birth", ["1900-01-01", "1990-02-01", "today"])
def test_a_date_of_birth_from_1900_to_today_is_recorded(alice, north_case, client_for, date_of_birth):
    if date_of_birth == "today":
        date_of_birth = timezone.localdate().isoformat()
    response = add_person(client_for(alice), north_case, date_of_birth)
    assert response.status_code == 201 and response.json()["date_of_birth"] == date_of_birth
    subject = Subject.objects.get()
    assert subject.date_of_birth == date.fromisoformat(date_of_birth)
    created = AuditEvent.objects.get(action="subject.create")
    assert created.payload["date_of_birth"] == date_of_birth


def test_no_date_of_birth_is_still_allowed(alice, north_case, client_for):
    response = add_person(client_for(alice), north_case, None)
    assert response.status_code == 201 and Subject.objects.get().date_of_birth is None


def test_someone_who_must_not_add_people_is_refused_before_the_date_is_read(olivia, north_case, client_for):
    response = add_person(client_for(olivia), north_case, "0001-01-01")
    assert response.status_code == 403
    assert not Subject.objects.exists()
    assert AuditEvent.objects.filter(action="request.denied", actor_username="olivia").exists()
