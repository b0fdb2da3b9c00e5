import re

import pytest

from audit.models import AuditEvent
from authorisations.models import Authorisation
from tests.authorisations.conftest import RIPA_DS, application_payload
from tests.factories import CaseSubjectFactory, ProfileFactory

URL = "/api/v1/authorisations/"


@pytest.fixture
def apply(client_for, north_case, jane):
    def post(user, case=None, subjects=None, **overrides):
        payload = application_payload(case or north_case, subjects or [jane], **overrides)
        return client_for(user).post(URL, payload, format="json")

    return post


def test_a_practitioner_applies_and_gets_a_draft_with_a_unique_reference_number(alice, jane, jane_profile, apply):
    response = apply(alice, profiles=[jane_profile.pk])
    assert response.status_code == 201
    body = response.json()
    authorisation = Authorisation.objects.get(pk=body["id"])
    assert re.fullmatch(r"NR-\d{4}-\d{5}", authorisation.urn) and body["urn"] == authorisation.urn
    assert (authorisation.status, authorisation.applicant, authorisation.type) == ("draft", alice, "non_ripa")
    assert list(authorisation.subjects.all()) == [jane]
    assert list(authorisation.profiles.all()) == [jane_profile]
    assert body["subjects"] == [{"id": jane.pk, "display_name": "Jane Doe"}]
    assert body["in_force_now"] is False
    event = AuditEvent.objects.get(action="authorisation.create")
    assert (event.target_id, event.case_id, event.actor_username) == (
        str(authorisation.pk),
        jane.case_links.get().case_id,
        "alice",
    )
    assert [link.subject_id for link in event.subject_links.all()] == [jane.pk]
    assert event.payload["urn"] == authorisation.urn


def test_each_application_gets_its_own_urn(alice, apply):
    first, second = (
        apply(alice).json()["urn"],
        apply(alice, type="directed_surveillance", **{k: v for k, v in RIPA_DS.items() if k != "type"}).json()["urn"],
    )
    assert first != second and second.startswith("DS-")


def test_the_title_defaults_to_the_cases(alice, apply, north_case):
    assert apply(alice, title="").json()["title"] == north_case.title


def test_directed_surveillance_for_a_non_crime_purpose_is_refused_as_ripa_and_points_to_non_ripa(alice, apply):
    response = apply(alice, type="directed_surveillance", crime_purpose=False)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "ripa_not_available"
    assert list(body["fields"]) == ["crime_purpose"]
    assert "non_ripa" in body["message"]
    assert not Authorisation.objects.exists()
    assert not AuditEvent.objects.filter(action="authorisation.create").exists()


@pytest.mark.parametrize("months", [None, 3, 5])
def test_directed_surveillance_for_a_minor_offence_is_refused_as_ripa(alice, apply, months):
    response = apply(alice, **{**RIPA_DS, "offence_max_sentence_months": months})
    assert response.status_code == 400
    assert response.json()["code"] == "ripa_not_available"
    assert list(response.json()["fields"]) == ["offence_max_sentence_months"]
    assert "non_ripa" in response.json()["message"]


def test_directed_surveillance_for_a_six_month_offence_or_an_underage_sale_is_accepted(alice, apply):
    assert apply(alice, **{**RIPA_DS, "offence_max_sentence_months": 6}).status_code == 201
    underage = {**RIPA_DS, "offence": "Sale of alcohol to children", "offence_max_sentence_months": None}
    assert apply(alice, **underage, underage_sale_offence=True).status_code == 201


def test_a_chis_needs_a_crime_purpose_but_no_sentence_threshold(alice, apply):
    refused = apply(alice, type="chis")
    assert refused.status_code == 400 and refused.json()["code"] == "ripa_not_available"
    accepted = apply(alice, type="chis", crime_purpose=True, offence="Harassment", juvenile_source=True)
    assert accepted.status_code == 201 and accepted.json()["juvenile_source"] is True


def test_only_a_chis_has_a_source(alice, apply):
    response = apply(alice, juvenile_source=True)
    assert response.status_code == 400 and list(response.json()["fields"]) == ["juvenile_source"]


def test_missing_and_bad_fields_are_named(alice, client_for, north_case, jane):
    payload = application_payload(north_case, [jane], type="surveillance", platforms=["myspace"])
    del payload["necessity"], payload["confidential_information_likely"]
    response = client_for(alice).post(URL, payload, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"type", "platforms.0", "necessity", "confidential_information_likely"}
    assert not Authorisation.objects.exists()


def test_subjects_must_be_on_the_case_and_profiles_theirs(alice, apply, north, jane, south_case):
    stranger = CaseSubjectFactory(case=south_case).subject
    response = apply(alice, subjects=[jane, stranger])
    assert response.status_code == 400 and "subjects" in response.json()["fields"]
    other_profile = ProfileFactory(subject=stranger)
    response = apply(alice, profiles=[other_profile.pk])
    assert response.status_code == 400 and "profiles" in response.json()["fields"]
    response = apply(alice, platforms=[], profiles=[])
    assert response.status_code == 400 and "platforms" in response.json()["fields"]
    assert not Authorisation.objects.exists()


def test_a_huge_id_is_an_input_error_not_a_crash(alice, client_for, north_case, jane):
    payload = {**application_payload(north_case, [jane]), "subjects": [10**30]}
    response = client_for(alice).post(URL, payload, format="json")
    assert response.status_code == 400 and "subjects.0" in response.json()["fields"]


def test_a_practitioner_cannot_apply_on_another_teams_case(bob, apply):
    response = apply(bob)
    assert response.status_code == 404 and "case" in response.json()["fields"]
    assert not Authorisation.objects.exists()
    assert AuditEvent.objects.filter(action="request.denied", actor_username="bob").exists()


@pytest.mark.parametrize("who", ["olivia", "sam", "audrey", "adam"])
def test_only_practitioners_apply(who, request, apply):
    response = apply(request.getfixturevalue(who))
    assert response.status_code == 403
    assert not Authorisation.objects.exists()
    assert AuditEvent.objects.filter(action="request.denied", actor_username=who).exists()


def test_no_application_on_a_closed_case(alice, apply, north_case):
    north_case.status = "closed"
    north_case.save()
    response = apply(alice)
    assert response.status_code == 409 and response.json()["code"] == "case_closed"


# --- Submitting -----------------------------------------------------------------------------------


def test_the_applicant_submits_their_draft_once(alice, apply, client_for):
    authorisation_id = apply(alice).json()["id"]
    client = client_for(alice)
    response = client.post(f"{URL}{authorisation_id}/submit/")
    assert response.status_code == 200 and response.json()["status"] == "submitted"
    authorisation = Authorisation.objects.get(pk=authorisation_id)
    assert authorisation.status == "submitted" and authorisation.submitted_at is not None
    assert AuditEvent.objects.filter(action="authorisation.submit", target_id=str(authorisation_id)).count() == 1
    again = client.post(f"{URL}{authorisation_id}/submit/")
    assert again.status_code == 409
    assert (again.json()["code"], again.json()["current_status"]) == ("invalid_state", "submitted")


def test_a_colleague_cannot_submit_someone_elses_application(alice, carol, apply, client_for):
    authorisation_id = apply(alice).json()["id"]
    response = client_for(carol).post(f"{URL}{authorisation_id}/submit/")
    assert response.status_code == 403
    assert Authorisation.objects.get(pk=authorisation_id).status == "draft"
    assert AuditEvent.objects.filter(action="request.denied", actor_username="carol").exists()


def test_another_team_cannot_see_or_submit_the_application(alice, bob, apply, client_for):
    authorisation_id = apply(alice).json()["id"]
    client = client_for(bob)
    assert client.post(f"{URL}{authorisation_id}/submit/").status_code == 404
    assert client.get(f"{URL}{authorisation_id}/").status_code == 404
    assert client.get(URL).json()["results"] == []
    assert Authorisation.objects.get(pk=authorisation_id).status == "draft"


# --- Reading --------------------------------------------------------------------------------------


def test_reading_an_authorisation_is_audited(alice, carol, jane, apply, client_for):
    authorisation_id = apply(alice).json()["id"]
    response = client_for(carol).get(f"{URL}{authorisation_id}/")
    assert response.status_code == 200 and response.json()["applicant"] == "alice"
    event = AuditEvent.objects.get(action="authorisation.read")
    assert (event.actor_username, event.target_id) == ("carol", str(authorisation_id))
    assert [link.subject_id for link in event.subject_links.all()] == [jane.pk]


def test_listing_shows_the_teams_authorisations_to_practitioners_and_all_to_officers(
    alice, bob, olivia, apply, client_for, south_case
):
    mine = apply(alice).json()["id"]
    theirs = apply(bob, case=south_case, subjects=[CaseSubjectFactory(case=south_case).subject]).json()["id"]
    assert [a["id"] for a in client_for(alice).get(URL).json()["results"]] == [mine]
    assert [a["id"] for a in client_for(olivia).get(URL).json()["results"]] == [theirs, mine]
    assert [a["id"] for a in client_for(olivia).get(f"{URL}?case={south_case.pk}").json()["results"]] == [theirs]
    event = AuditEvent.objects.filter(action="authorisation.list").last()
    assert event.payload["authorisation_ids"] == [theirs]


def test_a_bad_list_filter_is_named(alice, client_for):
    response = client_for(alice).get(f"{URL}?status=approved")
    assert response.status_code == 400 and list(response.json()["fields"]) == ["status"]


@pytest.mark.parametrize("who", ["audrey", "adam"])
def test_auditors_and_admins_may_not_read_authorisations_here(who, request, alice, apply, client_for):
    authorisation_id = apply(alice).json()["id"]
    client = client_for(request.getfixturevalue(who))
    assert client.get(URL).status_code == 403
    assert client.get(f"{URL}{authorisation_id}/").status_code == 403
    assert not AuditEvent.objects.filter(action__in=["authorisation.read", "authorisation.list"]).exists()
