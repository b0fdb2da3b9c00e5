from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings
from django.utils import timezone

from accounts.models import Role
from audit.models import AuditEvent
from authorisations.models import Authorisation
from cases.models import CaseSubject
from tests.authorisations.conftest import GRANT, clock
from tests.factories import AuthorisationFactory, CaseFactory, UserFactory

URL = "/api/v1/authorisations/"
LONDON = ZoneInfo("Europe/London")


def grant_payload(**overrides):
    payload = {**GRANT, "review_interval_days": 28}
    payload.update(overrides)
    return payload


def test_a_non_ripa_grant_is_in_force_at_once_until_the_date_the_officer_sets(olivia, walk, client_for):
    authorisation = walk("submitted")
    expires = timezone.now() + timedelta(days=60)
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/grant/", grant_payload(expires_at=expires.isoformat()), format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["in_force_now"], body["decided_by"]) == ("in_force", True, "olivia")
    authorisation.refresh_from_db()
    assert authorisation.status == "in_force" and authorisation.decision == "granted"
    assert authorisation.expires_at == expires
    assert authorisation.officer_grade == "Head of Service"
    assert authorisation.next_review_due == authorisation.in_force_at + timedelta(days=28)
    event = AuditEvent.objects.get(action="authorisation.grant")
    assert (event.actor_username, event.target_id, event.payload["status"]) == (
        "olivia",
        str(authorisation.pk),
        "in_force",
    )


def test_a_non_ripa_grant_needs_an_expiry_within_the_maximum(olivia, walk, client_for):
    authorisation = walk("submitted")
    client = client_for(olivia)
    missing = client.post(f"{URL}{authorisation.pk}/grant/", grant_payload(), format="json")
    assert missing.status_code == 400 and list(missing.json()["fields"]) == ["expires_at"]
    too_long = timezone.now() + timedelta(days=95)
    response = client.post(
        f"{URL}{authorisation.pk}/grant/", grant_payload(expires_at=too_long.isoformat()), format="json"
    )
    assert response.status_code == 400 and "at most 3 months" in response.json()["fields"]["expires_at"][0]
    with override_settings(AUTHORISATION_NON_RIPA_MAX_MONTHS=4):
        response = client.post(
            f"{URL}{authorisation.pk}/grant/", grant_payload(expires_at=too_long.isoformat()), format="json"
        )
    assert response.status_code == 200
    assert AuditEvent.objects.filter(action="authorisation.grant").count() == 1


def test_a_ripa_grant_in_england_and_wales_awaits_the_magistrate(olivia, walk, client_for):
    authorisation = walk("submitted", type="directed_surveillance")
    response = client_for(olivia).post(f"{URL}{authorisation.pk}/grant/", grant_payload(), format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["in_force_now"]) == ("awaiting_judicial_approval", False)
    authorisation.refresh_from_db()
    assert authorisation.in_force_at is None and authorisation.expires_at is None


def test_the_expiry_of_a_ripa_authorisation_is_set_by_statute(olivia, walk, client_for):
    authorisation = walk("submitted", type="directed_surveillance")
    expires = (timezone.now() + timedelta(days=10)).isoformat()
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/grant/", grant_payload(expires_at=expires), format="json"
    )
    assert response.status_code == 400 and list(response.json()["fields"]) == ["expires_at"]
    assert Authorisation.objects.get(pk=authorisation.pk).status == "submitted"


@override_settings(AUTHORISATION_JURISDICTION="scotland")
def test_in_scotland_a_ripa_grant_is_in_force_at_once_with_its_statutory_expiry(olivia, walk, client_for):
    authorisation = walk("submitted", type="directed_surveillance")
    granted_at = datetime(2026, 3, 2, 10, 0, tzinfo=LONDON)
    with clock(granted_at):
        response = client_for(olivia).post(f"{URL}{authorisation.pk}/grant/", grant_payload(), format="json")
    assert response.status_code == 200 and response.json()["status"] == "in_force"
    authorisation.refresh_from_db()
    assert authorisation.in_force_at == granted_at
    assert authorisation.expires_at == datetime(2026, 6, 2, 0, 0, tzinfo=LONDON)
    judicial = client_for(olivia).post(
        f"{URL}{authorisation.pk}/judicial-approval/",
        {"court": "X", "justice": "Y", "decided_at": timezone.now().isoformat(), "outcome": "approved"},
        format="json",
    )
    assert judicial.status_code == 409 and judicial.json()["code"] == "no_judicial_approval"


def test_refusing_records_the_decision_and_it_cannot_then_be_granted(olivia, walk, client_for):
    authorisation = walk("submitted")
    client = client_for(olivia)
    response = client.post(
        f"{URL}{authorisation.pk}/refuse/",
        {"officer_grade": "Service Manager", "statement": "Ask the family first."},
        format="json",
    )
    assert response.status_code == 200 and response.json()["status"] == "refused"
    authorisation.refresh_from_db()
    assert (authorisation.decision, authorisation.decided_by, authorisation.officer_statement) == (
        "refused",
        olivia,
        "Ask the family first.",
    )
    assert AuditEvent.objects.filter(action="authorisation.refuse", target_id=str(authorisation.pk)).count() == 1
    expires = (timezone.now() + timedelta(days=10)).isoformat()
    again = client.post(f"{URL}{authorisation.pk}/grant/", grant_payload(expires_at=expires), format="json")
    assert again.status_code == 409
    assert (again.json()["code"], again.json()["current_status"]) == ("invalid_state", "refused")


def test_a_draft_cannot_be_decided(olivia, walk, client_for):
    authorisation = walk("draft")
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/refuse/", {"officer_grade": "x", "statement": "y"}, format="json"
    )
    assert response.status_code == 409 and response.json()["current_status"] == "draft"


def test_granting_twice_answers_409_with_the_current_state(olivia, walk, client_for):
    authorisation = walk("in_force")
    expires = (timezone.now() + timedelta(days=10)).isoformat()
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/grant/", grant_payload(expires_at=expires), format="json"
    )
    assert response.status_code == 409 and response.json()["current_status"] == "in_force"


# --- Who may decide --------------------------------------------------------------------------------


def test_the_applicant_cannot_grant_their_own_application(alice, walk, client_for):
    authorisation = walk("submitted")
    # As a practitioner, the role may not decide at all ...
    response = client_for(alice).post(f"{URL}{authorisation.pk}/grant/", grant_payload(), format="json")
    assert response.status_code == 403
    # ... and promoted to RIPA officer, still not on the application they made.
    alice.role = Role.RIPA_OFFICER
    alice.teams.clear()
    alice.save()
    expires = (timezone.now() + timedelta(days=10)).isoformat()
    response = client_for(alice).post(
        f"{URL}{authorisation.pk}/grant/", grant_payload(expires_at=expires), format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "own_application"
    assert "another authorising officer" in response.json()["message"]
    assert Authorisation.objects.get(pk=authorisation.pk).status == "submitted"
    assert AuditEvent.objects.filter(action="request.denied", actor_username="alice").count() == 2
    assert not AuditEvent.objects.filter(action="authorisation.grant").exists()


def test_an_officer_who_works_on_the_case_cannot_decide(olivia, north, walk, client_for):
    authorisation = walk("submitted")
    olivia.teams.add(north)
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/refuse/", {"officer_grade": "x", "statement": "y"}, format="json"
    )
    assert response.status_code == 403 and response.json()["code"] == "works_on_the_case"
    assert Authorisation.objects.get(pk=authorisation.pk).status == "submitted"


def test_an_officer_who_declares_direct_involvement_cannot_decide(olivia, walk, client_for):
    authorisation = walk("submitted")
    expires = (timezone.now() + timedelta(days=10)).isoformat()
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/grant/", grant_payload(expires_at=expires, directly_involved=True), format="json"
    )
    assert response.status_code == 403 and "directly_involved" in response.json()["fields"]
    assert Authorisation.objects.get(pk=authorisation.pk).status == "submitted"


@pytest.mark.parametrize(
    "application",
    [
        {"type": "non_ripa", "confidential_information_likely": True},
        {"type": "chis", "juvenile_source": True},
        {"type": "chis", "vulnerable_source": True},
    ],
    ids=["confidential", "juvenile-chis", "vulnerable-chis"],
)
def test_confidential_information_or_a_juvenile_or_vulnerable_source_needs_the_sro(
    olivia, sam, walk, client_for, application
):
    authorisation = walk("submitted", **application)
    expires = (timezone.now() + timedelta(days=10)).isoformat() if application["type"] == "non_ripa" else None
    payload = grant_payload(expires_at=expires)
    refused = client_for(olivia).post(f"{URL}{authorisation.pk}/grant/", payload, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "senior_officer_required"
    assert "Senior responsible officer" in refused.json()["message"]
    assert Authorisation.objects.get(pk=authorisation.pk).status == "submitted"
    granted = client_for(sam).post(f"{URL}{authorisation.pk}/grant/", payload, format="json")
    assert granted.status_code == 200


@override_settings(AUTHORISATION_SENIOR_GRANT_ROLE="ripa_officer")
def test_the_senior_role_is_a_setting(olivia, walk, client_for):
    authorisation = walk("submitted", confidential_information_likely=True)
    expires = (timezone.now() + timedelta(days=10)).isoformat()
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/grant/", grant_payload(expires_at=expires), format="json"
    )
    assert response.status_code == 200


def test_a_ripa_application_below_the_crime_threshold_cannot_be_granted_and_points_to_non_ripa(
    alice, olivia, north_case, jane, client_for
):
    # Made before the threshold applied (or imported): the grant refuses it all the same.
    authorisation = AuthorisationFactory(
        case=north_case,
        applicant=alice,
        type="directed_surveillance",
        status="submitted",
        crime_purpose=True,
        offence="Littering",
        offence_max_sentence_months=0,
        subjects=[jane],
    )
    response = client_for(olivia).post(f"{URL}{authorisation.pk}/grant/", grant_payload(), format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "ripa_not_available" and list(body["fields"]) == ["offence_max_sentence_months"]
    assert "non_ripa" in body["message"]
    assert Authorisation.objects.get(pk=authorisation.pk).status == "submitted"


def test_blank_decision_fields_are_named(olivia, walk, client_for):
    authorisation = walk("submitted", type="directed_surveillance")
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/grant/",
        {"officer_grade": "", "statement": "ok", "limits": "ok", "review_interval_days": 0},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"review_interval_days"}
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/grant/",
        {"officer_grade": " ", "statement": "ok", "limits": "ok", "review_interval_days": 28},
        format="json",
    )
    assert response.status_code == 400  # no grade given, and none on her account
    assert set(response.json()["fields"]) == {"officer_grade"}


def test_an_officer_s_grade_on_their_account_is_used_when_they_give_none(olivia, walk, client_for):
    olivia.grade = "Head of Legal Services"
    olivia.save()
    authorisation = walk("submitted", type="directed_surveillance")
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/grant/",
        {"statement": "ok", "limits": "ok", "review_interval_days": 28},
        format="json",
    )
    assert response.status_code == 200, response.json()
    authorisation.refresh_from_db()
    assert authorisation.officer_grade == "Head of Legal Services"
    other = walk("submitted", type="directed_surveillance")
    response = client_for(olivia).post(
        f"{URL}{other.pk}/grant/",
        {"officer_grade": "Acting Director", "statement": "ok", "limits": "ok", "review_interval_days": 28},
        format="json",
    )
    assert response.status_code == 200
    other.refresh_from_db()
    assert other.officer_grade == "Acting Director"  # the grade given with the decision wins


def test_an_officer_on_any_case_of_the_person_may_not_decide_about_them(olivia, south, walk, client_for):
    authorisation = walk("submitted")
    south_case = CaseFactory(reference="S-7", team=south, created_by=UserFactory(teams=[south]))
    CaseSubject.objects.create(
        case=south_case, subject=authorisation.subjects.get(), relationship="other", linked_by=south_case.created_by
    )
    olivia.teams.add(south)  # olivia also sits in South, which has the person on another case
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/refuse/",
        {"officer_grade": "Head of Service", "statement": "No"},
        format="json",
    )
    assert response.status_code == 403 and response.json()["code"] == "works_on_the_person"
    assert Authorisation.objects.get(pk=authorisation.pk).status == "submitted"
