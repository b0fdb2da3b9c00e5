"""Issue 18, evasion 9 and the auditor's queries: a closed case takes nothing new, free
text is text, and a query about a person is in their access history."""

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from cases.models import Case, CaseSubject, Consent, Profile, Subject, Viewing


@pytest.fixture
def closed(alice, north_case, jane, client_for):
    response = client_for(alice).post(f"/api/v1/cases/{north_case.pk}/close/", format="json")
    assert response.status_code == 200
    return north_case


def test_a_closed_case_takes_no_new_person(alice, closed, client_for):
    response = client_for(alice).post(
        f"/api/v1/cases/{closed.pk}/subjects/", {"display_name": "New One", "relationship": "parent"}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "case_closed"
    assert Subject.objects.count() == 1 and CaseSubject.objects.count() == 1


def test_a_person_only_on_a_closed_case_takes_no_new_profile_or_consent(alice, jane, closed, client_for):
    client = client_for(alice)
    profile = client.post(
        f"/api/v1/subjects/{jane.pk}/profiles/", {"platform": "instagram", "handle": "jane_d"}, format="json"
    )
    assert profile.status_code == 409 and profile.json()["code"] == "case_closed"
    consent = client.post(
        f"/api/v1/subjects/{jane.pk}/consents/",
        {
            "scope": ["all"],
            "granted_at": timezone.now().isoformat(),
            "evidence": "Signed form, in the case file",
            "given_by": "subject",
            "given_by_name": "Jane Doe",
            "method": "written",
        },
        format="json",
    )
    assert consent.status_code == 409 and consent.json()["code"] == "case_closed"
    assert not Profile.objects.exists() and not Consent.objects.exists()


VIEWING = {
    "purpose": "locate_person",
    "access_method": "logged_out_public",
    "interaction": "none",
    "information_recorded": "",
    "third_party_information": "",
}


@pytest.mark.parametrize(
    "field, text",
    [
        ("justification", "Needed \u202eevael ot deen on\u202c for court"),  # right-to-left override
        ("justification", "Needed \u2066hidden\u2069"),  # isolate
        ("justification", "Needed\x07 now"),  # bell
        ("information_recorded", "Address\x1b[2J"),  # terminal escape
        ("late_entry_reason", "late\x85"),  # C1 next line
        ("purpose_detail", "x\u202ay"),
    ],
)
def test_control_and_bidi_characters_in_free_text_are_refused_naming_the_field(
    alice, north_case, jane_profile, client_for, field, text
):
    body = {**VIEWING, "case": north_case.pk, "profile": jane_profile.pk, "justification": "Court papers", field: text}
    response = client_for(alice).post("/api/v1/viewings/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert not Viewing.objects.exists()


def test_tabs_newlines_and_marks_are_text_and_crlf_is_a_newline(alice, north_case, jane_profile, client_for):
    body = {
        **VIEWING,
        "case": north_case.pk,
        "profile": jane_profile.pk,
        "justification": "Line one\r\nLine two\tand a tab; \u05e9\u05dc\u05d5\u05dd\u200f (Hebrew with a mark)",
    }
    response = client_for(alice).post("/api/v1/viewings/", body, format="json")
    assert response.status_code == 201, response.json()
    assert Viewing.objects.get().justification.startswith("Line one\nLine two\tand a tab")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"evidence": "Form \u202e"}, "evidence"),
        ({"evidence": "Form", "scope": ["all\u202e"]}, "scope.0"),
    ],
)
def test_the_check_covers_nested_and_listed_values(alice, jane, client_for, body, field):
    payload = {"scope": ["all"], "granted_at": "2026-01-01T10:00:00Z", **body}
    response = client_for(alice).post(f"/api/v1/subjects/{jane.pk}/consents/", payload, format="json")
    assert response.status_code == 400 and list(response.json()["fields"]) == [field]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"reference": "N-2\nBcc: everyone@example.org"}, "reference"),
        ({"reference": "N-2\tX"}, "reference"),
        ({"reference": "N-2\u2028X"}, "reference"),
        ({"reference": "N-2\u202eX"}, "reference"),
        ({"title": "Title\nSecond line"}, "title"),
    ],
)
def test_case_references_and_titles_stay_on_one_line(alice, north, client_for, body, field):
    payload = {"reference": "N-2", "title": "A title", "team": north.pk, **body}
    response = client_for(alice).post("/api/v1/cases/", payload, format="json")
    assert response.status_code == 400 and list(response.json()["fields"]) == [field]
    assert not Case.objects.filter(reference__startswith="N-2").exists()


def test_a_name_with_a_bidi_override_is_refused(alice, north_case, client_for):
    response = client_for(alice).post(
        f"/api/v1/cases/{north_case.pk}/subjects/",
        {"display_name": "\u202eeoD enaJ", "relationship": "parent"},
        format="json",
    )
    assert response.status_code == 400 and list(response.json()["fields"]) == ["display_name"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/audit/events/?subject={id}",
        "/api/v1/audit/events/?subject={id}&format=csv",
        "/api/v1/audit/events/?target_type=subject&target_id={id}",
        "/api/v1/audit/access-history/?subject={id}",
    ],
)
def test_an_auditors_query_about_a_person_is_in_their_access_history(audrey, jane, client_for, path):
    client = client_for(audrey)
    assert client.get(path.format(id=jane.pk)).status_code == 200
    query = AuditEvent.objects.filter(action="audit.query", actor_username="audrey").get()
    assert [link.subject_id for link in query.subject_links.all()] == [jane.pk]
    history = client.get(f"/api/v1/audit/access-history/?subject={jane.pk}").json()
    assert query.pk in [event["sequence"] for event in history["events"]]


def test_a_flag_list_filtered_by_a_person_is_linked_to_them(sam, jane, client_for):
    assert client_for(sam).get(f"/api/v1/flags/?subject={jane.pk}").status_code == 200
    query = AuditEvent.objects.get(action="flag.list", actor_username="sam")
    assert [link.subject_id for link in query.subject_links.all()] == [jane.pk]
