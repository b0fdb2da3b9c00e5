"""Issue 18, evasion 8: another team may not take over a person by guessing their details,
nor read or change what the first team recorded about them."""

import json

import pytest
from django.test import override_settings
from django.utils import timezone

from audit.models import AuditEvent
from cases.models import CaseSubject, Consent, Profile, Viewing
from detection.models import Flag, FlagRecipient
from tests.factories import UserFactory

NORTH_PERSON = {
    "display_name": "Jane Doe",
    "relationship": "parent",
    "external_id": "LCS-42",
    "date_of_birth": "1990-02-01",
}


@pytest.fixture
def known_to_north(alice, north_case, client_for):
    """Jane, on North's case, with North's profile and consent."""
    client = client_for(alice)
    jane = client.post(f"/api/v1/cases/{north_case.pk}/subjects/", NORTH_PERSON, format="json").json()
    client.post(
        f"/api/v1/subjects/{jane['id']}/profiles/", {"platform": "instagram", "handle": "jane_north"}, format="json"
    )
    consent = client.post(
        f"/api/v1/subjects/{jane['id']}/consents/",
        {
            "scope": ["all"],
            "granted_at": timezone.now().isoformat(),
            "evidence": "North's signed form: ref NX-SECRET",
            "given_by": "subject",
            "given_by_name": "Jane Doe",
            "method": "written",
        },
        format="json",
    ).json()
    return jane, consent


def link(client, case, **details):
    return client.post(
        f"/api/v1/cases/{case.pk}/subjects/",
        {"relationship": "relative", "external_id": "LCS-42", "display_name": "Jane Doe", **details},
        format="json",
    )


def shown(response) -> str:
    return json.dumps({key: value for key, value in response.json().items() if key != "request_id"})


def test_every_wrong_guess_answers_the_same(bob, south_case, known_to_north, client_for):
    client = client_for(bob)
    answers = [
        link(client, south_case, date_of_birth="1990-02-02"),  # right name, wrong date
        link(client, south_case, display_name="Someone Else", date_of_birth="1990-02-01"),  # wrong name
        link(client, south_case),  # no date of birth
    ]
    assert {response.status_code for response in answers} == {409}
    assert len({shown(response) for response in answers}) == 1


def test_guessing_dates_of_birth_30_times_is_stopped_after_5_and_flagged_for_officers(
    bob, olivia, south_case, known_to_north, client_for
):
    jane, _consent = known_to_north
    client = client_for(bob)
    statuses = []
    for day in range(1, 31):
        statuses.append(link(client, south_case, date_of_birth=f"1990-01-{day:02d}").status_code)
    assert statuses[:5] == [409] * 5 and set(statuses[5:]) == {429}
    # Even the right details are refused for the rest of the day.
    right = link(client, south_case, date_of_birth="1990-02-01")
    assert right.status_code == 429 and "Retry-After" in right.headers
    assert not CaseSubject.objects.filter(case=south_case).exists()
    # Each failure is in the audit log, and in the person's access history.
    refused = AuditEvent.objects.filter(action="subject.link_refused", actor_username="bob")
    assert refused.count() == 5
    assert all([link.subject_id for link in event.subject_links.all()] == [jane["id"]] for event in refused)
    assert AuditEvent.objects.filter(action="subject.link_throttled", actor_username="bob").count() == 26
    # The officers hear of it: one open flag about the person, routed to an officer.
    flag = Flag.objects.get(rule="LINK_GUESSING")
    assert flag.subject_id == jane["id"] and flag.status == "open" and flag.severity == "high"
    assert list(FlagRecipient.objects.filter(flag=flag).values_list("officer__username", flat=True)) == ["olivia"]
    assert "bob" in flag.explanation
    officer = client_for(olivia)
    assert officer.get(f"/api/v1/flags/{flag.pk}/").status_code == 200
    decided = officer.post(
        f"/api/v1/flags/{flag.pk}/decide/",
        {"outcome": "report_error_to_sro", "reasoning": "Spoke to bob's manager"},
        format="json",
    )
    assert decided.status_code == 200, decided.json()
    # The guesser never sees the flag.
    assert client.get("/api/v1/flags/").json()["results"] == []


@override_settings(LINK_FAILURES_PER_DAY=5)
def test_the_count_is_per_user_so_a_colleague_is_not_locked_out(bob, south, south_case, known_to_north, client_for):
    client = client_for(bob)
    for day in range(1, 6):
        assert link(client, south_case, date_of_birth=f"1990-01-{day:02d}").status_code == 409
    colleague = UserFactory(username="bella", role="practitioner", teams=[south])
    assert link(client_for(colleague), south_case, date_of_birth="1990-02-01").status_code == 201


def test_once_linked_another_team_sees_the_name_but_none_of_the_first_teams_records(
    bob, south_case, known_to_north, client_for
):
    jane, _consent = known_to_north
    client = client_for(bob)
    assert link(client, south_case, date_of_birth="1990-02-01").status_code == 201
    detail = client.get(f"/api/v1/subjects/{jane['id']}/")
    assert detail.status_code == 200
    body = detail.json()
    assert body["display_name"] == "Jane Doe"
    assert body["consents"] == [] and body["profiles"] == []
    assert [entry["case"]["reference"] for entry in body["cases"]] == ["S-1"]
    assert "NX-SECRET" not in detail.content.decode() and "N-1" not in detail.content.decode()
    assert "jane_north" not in detail.content.decode()


def test_another_team_cannot_withdraw_the_first_teams_consent(bob, south_case, known_to_north, client_for):
    jane, consent = known_to_north
    client = client_for(bob)
    assert link(client, south_case, date_of_birth="1990-02-01").status_code == 201
    response = client.post(f"/api/v1/consents/{consent['id']}/withdraw/", {"reason": "Withdrawn"}, format="json")
    assert response.status_code == 404
    assert Consent.objects.get(pk=consent["id"]).withdrawn_at is None
    denied = AuditEvent.objects.get(action="request.denied", actor_username="bob")
    assert denied.target_id == str(consent["id"])


def test_another_teams_consent_does_not_cover_the_first_teams_looks(
    alice, bob, north_case, south_case, known_to_north, client_for
):
    jane, consent = known_to_north
    south = client_for(bob)
    assert link(south, south_case, date_of_birth="1990-02-01").status_code == 201
    # North's own consent is withdrawn; South records one that would silence North's detection.
    client_for(alice).post(f"/api/v1/consents/{consent['id']}/withdraw/", {"reason": "Said no"}, format="json")
    assert (
        south.post(
            f"/api/v1/subjects/{jane['id']}/consents/",
            {
                "scope": ["all"],
                "granted_at": timezone.now().isoformat(),
                "evidence": "South's signed form, on file",
                "given_by": "subject",
                "given_by_name": "Jane Doe",
                "method": "written",
            },
            format="json",
        ).status_code
        == 201
    )
    profile = Profile.objects.get(subject_id=jane["id"])
    looked = client_for(alice).post(
        "/api/v1/viewings/",
        {
            "case": north_case.pk,
            "profile": profile.pk,
            "purpose": "locate_person",
            "justification": "Court papers",
            "access_method": "logged_out_public",
            "interaction": "none",
            "information_recorded": "",
            "third_party_information": "",
        },
        format="json",
    )
    assert looked.status_code == 201 and looked.json()["consent"] is None
    assert Viewing.objects.get().consent_id is None
