import json
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from cases.models import CaseSubject, Consent, Profile, Subject
from tests.factories import CaseSubjectFactory, ConsentFactory, ProfileFactory


def test_adding_a_person_to_a_case_creates_and_links_them(alice, north_case, client_for):
    response = client_for(alice).post(
        f"/api/v1/cases/{north_case.pk}/subjects/",
        {"display_name": "Jane Doe", "relationship": "parent", "external_id": "LCS-42", "date_of_birth": "1990-02-01"},
        format="json",
    )
    assert response.status_code == 201
    subject = Subject.objects.get(pk=response.json()["id"])
    assert (subject.external_id, str(subject.date_of_birth)) == ("LCS-42", "1990-02-01")
    assert CaseSubject.objects.get(subject=subject).relationship == "parent"
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)[1:]) == [
        "subject.create",
        "subject.link",
    ]


def test_a_known_external_id_links_the_existing_person_across_teams(alice, bob, north_case, south_case, client_for):
    first = client_for(alice).post(
        f"/api/v1/cases/{north_case.pk}/subjects/",
        {"display_name": "Jane Doe", "relationship": "parent", "external_id": "LCS-42", "date_of_birth": "1990-02-01"},
        format="json",
    )
    second = client_for(bob).post(
        f"/api/v1/cases/{south_case.pk}/subjects/",
        {
            "display_name": "jane  doe",
            "relationship": "relative",
            "external_id": "LCS-42",
            "date_of_birth": "1990-02-01",
        },
        format="json",
    )
    assert second.status_code == 201
    assert second.json()["id"] == first.json()["id"] and second.json()["existing_subject"] is True
    assert Subject.objects.count() == 1
    assert CaseSubject.objects.count() == 2


@pytest.mark.parametrize(
    "details",
    [{"display_name": "Someone Else", "date_of_birth": "1990-02-01"}, {"display_name": "Jane Doe"}],
    ids=["other-name", "no-date-of-birth"],
)
def test_a_guessed_external_id_does_not_reveal_another_teams_person(
    alice, bob, north_case, south_case, client_for, details
):
    jane = (
        client_for(alice)
        .post(
            f"/api/v1/cases/{north_case.pk}/subjects/",
            {
                "display_name": "Jane Doe",
                "relationship": "parent",
                "external_id": "LCS-42",
                "date_of_birth": "1990-02-01",
            },
            format="json",
        )
        .json()
    )
    response = client_for(bob).post(
        f"/api/v1/cases/{south_case.pk}/subjects/",
        {"relationship": "relative", "external_id": "LCS-42", **details},
        format="json",
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "subject_details_mismatch" and "external_id" in body["fields"]
    shown = json.dumps({key: value for key, value in body.items() if key != "request_id"})  # random hex
    assert "Jane" not in shown and "1990" not in shown
    assert CaseSubject.objects.count() == 1
    refusal = AuditEvent.objects.get(action="subject.link_refused", actor_username="bob")
    assert [link.subject_id for link in refusal.subject_links.all()] == [jane["id"]]


def test_linking_the_same_person_twice_answers_200(alice, north_case, client_for):
    payload = {"display_name": "Jane Doe", "relationship": "parent", "external_id": "LCS-42"}
    client = client_for(alice)
    client.post(f"/api/v1/cases/{north_case.pk}/subjects/", payload, format="json")
    again = client.post(f"/api/v1/cases/{north_case.pk}/subjects/", payload, format="json")
    assert again.status_code == 200
    assert CaseSubject.objects.count() == 1
    # The answer shows the person's record, so it is audited as a read of it.
    read = AuditEvent.objects.get(action="subject.read")
    assert read.payload["already_linked"] is True and read.target_id == str(again.json()["id"])


def test_practitioner_cannot_add_people_to_another_teams_case(alice, south_case, client_for):
    response = client_for(alice).post(
        f"/api/v1/cases/{south_case.pk}/subjects/", {"display_name": "X", "relationship": "parent"}, format="json"
    )
    assert response.status_code == 404
    assert not Subject.objects.exists()


def test_a_bad_relationship_or_date_is_named(alice, north_case, client_for):
    response = client_for(alice).post(
        f"/api/v1/cases/{north_case.pk}/subjects/",
        {"display_name": "X", "relationship": "neighbour", "date_of_birth": "31/02/1990"},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"relationship", "date_of_birth"}
    assert not Subject.objects.exists()


def test_subject_detail_shows_only_cases_the_reader_may_see(alice, bob, jane, south_case, client_for):
    CaseSubjectFactory(case=south_case, subject=jane, linked_by=bob)
    body = client_for(alice).get(f"/api/v1/subjects/{jane.pk}/").json()
    assert [link["case"]["reference"] for link in body["cases"]] == ["N-1"]
    event = AuditEvent.objects.get(action="subject.read")
    assert [link.subject_id for link in event.subject_links.all()] == [jane.pk]


def test_practitioner_cannot_read_a_person_only_on_another_teams_case(bob, jane, client_for):
    assert client_for(bob).get(f"/api/v1/subjects/{jane.pk}/").status_code == 404
    denied = AuditEvent.objects.get(action="request.denied", actor_username="bob")
    assert [link.subject_id for link in denied.subject_links.all()] == [jane.pk]


def test_registering_a_profile_normalises_it_and_the_same_profile_again_answers_200(alice, jane, client_for):
    client = client_for(alice)
    first = client.post(
        f"/api/v1/subjects/{jane.pk}/profiles/",
        {"platform": "facebook", "handle": "https://www.facebook.com/Jane.Doe/"},
        format="json",
    )
    assert first.status_code == 201
    assert (first.json()["handle"], first.json()["url"]) == ("janedoe", "https://www.facebook.com/janedoe")
    again = client.post(
        f"/api/v1/subjects/{jane.pk}/profiles/", {"platform": "facebook", "handle": "jane.doe"}, format="json"
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert Profile.objects.count() == 1
    assert AuditEvent.objects.filter(action="profile.create").count() == 1
    assert AuditEvent.objects.filter(action="profile.read", target_id=str(first.json()["id"])).count() == 1


def test_a_profile_belonging_to_another_person_answers_409(alice, jane, north_case, client_for):
    other = CaseSubjectFactory(case=north_case, subject__display_name="John").subject
    ProfileFactory(subject=other, platform="x", handle="johnny", url="https://x.com/johnny")
    response = client_for(alice).post(
        f"/api/v1/subjects/{jane.pk}/profiles/", {"platform": "x", "handle": "@Johnny"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "profile_belongs_to_another_subject"
    assert Profile.objects.count() == 1
    # The refusal reveals that the profile is known, so it shows in its owner's history.
    refusal = AuditEvent.objects.get(action="request.conflict")
    assert [link.subject_id for link in refusal.subject_links.all()] == [other.pk]


@pytest.mark.parametrize(
    "platform, handle",
    [
        ("instagram", "not a handle"),
        ("other", "http://[oops/x"),
        ("other", "http://exa_mple.com/x"),
        ("other", "https://" + "a" * 490 + ".com"),
    ],
)
def test_a_bad_handle_answers_400_naming_handle(alice, jane, client_for, platform, handle):
    response = client_for(alice).post(
        f"/api/v1/subjects/{jane.pk}/profiles/", {"platform": platform, "handle": handle}, format="json"
    )
    assert response.status_code == 400 and list(response.json()["fields"]) == ["handle"]
    assert not Profile.objects.exists()


def test_officers_cannot_register_profiles(olivia, jane, client_for):
    response = client_for(olivia).post(
        f"/api/v1/subjects/{jane.pk}/profiles/", {"platform": "x", "handle": "jane"}, format="json"
    )
    assert response.status_code == 403
    assert not Profile.objects.exists()


def test_recording_consent(alice, jane, client_for):
    granted = timezone.now() - timedelta(days=1)
    response = client_for(alice).post(
        f"/api/v1/subjects/{jane.pk}/consents/",
        {
            "scope": ["facebook", "instagram"],
            "granted_at": granted.isoformat(),
            "evidence": "Signed form, 3 May",
            "given_by": "subject",
            "given_by_name": "Jane Doe",
            "method": "written",
        },
        format="json",
    )
    assert response.status_code == 201
    consent = Consent.objects.get(pk=response.json()["id"])
    assert consent.scope == ["facebook", "instagram"] and consent.recorded_by == alice
    assert AuditEvent.objects.filter(action="consent.create", target_id=str(consent.pk)).exists()


def test_consent_scope_and_dates_are_checked(alice, jane, client_for):
    now = timezone.now()
    client = client_for(alice)
    cases = [
        ({"scope": ["all", "x"]}, "scope"),
        ({"scope": ["myspace"]}, "scope.0"),
        ({"scope": []}, "scope"),
        ({"granted_at": (now + timedelta(days=1)).isoformat()}, "granted_at"),
        ({"expires_at": (now - timedelta(days=5)).isoformat()}, "expires_at"),
        ({"evidence": "   "}, "evidence"),
    ]
    for override, field in cases:
        payload = {
            "scope": ["all"],
            "granted_at": (now - timedelta(days=2)).isoformat(),
            "evidence": "Signed form on file",
            "given_by": "subject",
            "given_by_name": "Jane Doe",
            "method": "written",
        }
        payload.update(override)
        response = client.post(f"/api/v1/subjects/{jane.pk}/consents/", payload, format="json")
        assert response.status_code == 400, override
        assert field in response.json()["fields"], (override, response.json())
    assert not Consent.objects.exists()


def test_withdrawing_consent_and_a_second_withdrawal_answers_409(alice, jane, client_for):
    consent = ConsentFactory(subject=jane)
    client = client_for(alice)
    response = client.post(f"/api/v1/consents/{consent.pk}/withdraw/", {"reason": "Asked us to stop"}, format="json")
    assert response.status_code == 200 and response.json()["withdrawn_at"]
    consent.refresh_from_db()
    assert consent.withdrawn_by == alice and consent.withdrawal_reason == "Asked us to stop"
    assert AuditEvent.objects.filter(action="consent.withdraw").count() == 1
    assert client.post(f"/api/v1/consents/{consent.pk}/withdraw/", {}, format="json").status_code == 409


def test_another_team_cannot_withdraw_consent(bob, jane, client_for):
    consent = ConsentFactory(subject=jane)
    assert client_for(bob).post(f"/api/v1/consents/{consent.pk}/withdraw/", {}, format="json").status_code == 404
    consent.refresh_from_db()
    assert consent.withdrawn_at is None
