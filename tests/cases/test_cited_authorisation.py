"""A viewing may cite only an authorisation for its own case: one of the caller's own on
another case is bad input (400 naming ``authorisation``), one they cannot see is 404."""

import pytest

from audit.models import AuditEvent
from cases.models import Viewing
from tests.cases.test_viewing_log import viewing_payload
from tests.factories import AuthorisationFactory, CaseFactory, CaseSubjectFactory

ANOTHER_CASE = "This authorisation is for another case."


@pytest.fixture
def other_north_case(alice, north, jane):
    """Another of North's cases, with jane on it too."""
    case = CaseFactory(reference="N-3", team=north, created_by=alice)
    CaseSubjectFactory(case=case, subject=jane)
    return case


@pytest.fixture
def log(client_for):
    def post(user, case, profile, **overrides):
        return client_for(user).post("/api/v1/viewings/", viewing_payload(case, profile, **overrides), format="json")

    return post


def test_citing_your_own_authorisation_for_another_case_is_a_400_naming_it(
    alice, north_case, other_north_case, jane, jane_profile, log, client_for
):
    elsewhere = AuthorisationFactory(case=other_north_case, applicant=alice, subjects=[jane])
    assert client_for(alice).get(f"/api/v1/authorisations/{elsewhere.pk}/").status_code == 200
    response = log(alice, north_case, jane_profile, authorisation=elsewhere.pk)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and body["fields"] == {"authorisation": [ANOTHER_CASE]}
    assert body["request_id"]
    assert not Viewing.objects.exists()
    assert not AuditEvent.objects.filter(action__in=["viewing.create", "request.denied"]).exists()


def test_a_correction_citing_an_authorisation_for_another_case_is_a_400_too(
    alice, north_case, other_north_case, jane, jane_profile, log, client_for
):
    original = log(alice, north_case, jane_profile).json()
    elsewhere = AuthorisationFactory(case=other_north_case, applicant=alice, subjects=[jane])
    payload = viewing_payload(north_case, jane_profile, reason="Wrong authorisation cited", authorisation=elsewhere.pk)
    response = client_for(alice).post(f"/api/v1/viewings/{original['id']}/supersede/", payload, format="json")
    assert response.status_code == 400 and response.json()["fields"] == {"authorisation": [ANOTHER_CASE]}
    assert list(Viewing.objects.values_list("id", flat=True)) == [original["id"]]
    assert not AuditEvent.objects.filter(action="viewing.supersede").exists()


def test_an_authorisation_you_cannot_see_is_still_404(alice, bob, north_case, south_case, jane_profile, log):
    hidden = AuthorisationFactory(case=south_case, applicant=bob)
    response = log(alice, north_case, jane_profile, authorisation=hidden.pk)
    assert response.status_code == 404
    assert response.json()["fields"] == {"authorisation": [f"No authorisation with id {hidden.pk} is visible to you."]}
    assert not Viewing.objects.exists()
    assert AuditEvent.objects.filter(action="request.denied", actor_username="alice").exists()


def test_one_that_does_not_exist_is_the_same_404(alice, north_case, jane_profile, log):
    response = log(alice, north_case, jane_profile, authorisation=987654)
    assert response.status_code == 404 and list(response.json()["fields"]) == ["authorisation"]
    assert not Viewing.objects.exists()


def test_an_authorisation_for_the_case_is_accepted(alice, north_case, jane, jane_profile, log):
    own = AuthorisationFactory(case=north_case, applicant=alice, subjects=[jane])
    response = log(alice, north_case, jane_profile, authorisation=own.pk)
    assert response.status_code == 201 and response.json()["authorisation"]["id"] == own.pk
    assert Viewing.objects.get().authorisation_id == own.pk
    assert AuditEvent.objects.filter(action="viewing.create").exists()
