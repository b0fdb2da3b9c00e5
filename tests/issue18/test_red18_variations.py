"""Red team variations of issue 18's evasions the first tests did not try: a reason of one
letter repeated, an NHS number typed after a colon, a name typed with or without accents."""

from datetime import timedelta

import pytest
from django.utils import timezone

from cases.models import Consent, Subject, Viewing
from tests.cases.test_issue18_evasions import consent_body, look


@pytest.mark.parametrize("reason", ["aaaaaaaaaaaaaaa", "x x x x x x x x x x x", "abababababab"])
def test_a_late_entry_reason_of_one_or_two_letters_repeated_says_nothing(
    alice, north_case, jane_profile, client_for, reason
):
    body = look(client_for(alice), north_case, jane_profile, days_ago=10, expect=400, late_entry_reason=reason)
    assert "late_entry_reason" in body["fields"]
    assert not Viewing.objects.exists()


def test_consent_evidence_and_an_old_grants_reason_of_repeated_letters_are_refused(alice, jane, client_for):
    client = client_for(alice)
    url = f"/api/v1/subjects/{jane.pk}/consents/"
    junk_evidence = client.post(url, consent_body(evidence="xxxxxxxxxxxxxxxx"), format="json")
    assert junk_evidence.status_code == 400 and "evidence" in junk_evidence.json()["fields"]
    old = (timezone.now() - timedelta(days=3000)).isoformat()
    junk_reason = client.post(url, consent_body(granted_at=old, granted_at_reason="aaaaaaaaaaaa"), format="json")
    assert junk_reason.status_code == 400 and "granted_at_reason" in junk_reason.json()["fields"]
    assert not Consent.objects.exists()


def test_an_nhs_number_written_after_a_colon_is_the_same_person(alice, north_case, client_for):
    client = client_for(alice)
    url = f"/api/v1/cases/{north_case.pk}/subjects/"
    first = client.post(
        url, {"relationship": "parent", "display_name": "Bea King", "external_id": "9434765919"}, format="json"
    )
    again = client.post(
        url, {"relationship": "parent", "display_name": "Bea King", "external_id": "NHS: 943 476 5919"}, format="json"
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"], again.content
    assert Subject.objects.filter(display_name="Bea King").count() == 1


def test_a_name_typed_without_its_accents_is_a_possible_duplicate(alice, north_case, client_for):
    client = client_for(alice)
    url = f"/api/v1/cases/{north_case.pk}/subjects/"
    first = client.post(
        url, {"relationship": "parent", "display_name": "Zoë Brûlé", "date_of_birth": "2001-01-01"}, format="json"
    )
    again = client.post(
        url, {"relationship": "parent", "display_name": "Zoe Brule", "date_of_birth": "2001-01-01"}, format="json"
    )
    assert again.status_code == 409 and again.json()["existing_subject"] == first.json()["id"], again.content


def test_forcing_a_new_person_needs_a_reason_that_says_something(alice, north_case, client_for):
    client = client_for(alice)
    url = f"/api/v1/cases/{north_case.pk}/subjects/"
    person = {"relationship": "parent", "display_name": "Zoe Brule", "date_of_birth": "2001-01-01"}
    client.post(url, person, format="json")
    forced = client.post(url, {**person, "force": True, "force_reason": "x"}, format="json")
    assert forced.status_code == 400 and "force_reason" in forced.json()["fields"]
    assert Subject.objects.filter(display_name="Zoe Brule").count() == 1
