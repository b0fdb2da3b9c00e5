import pytest

from audit.models import AuditEvent
from cases.models import Case


def test_practitioner_opens_a_case_for_their_team(alice, north, client_for):
    response = client_for(alice).post(
        "/api/v1/cases/", {"reference": "C-100", "title": "Smith family", "team": north.pk}, format="json"
    )
    assert response.status_code == 201
    case = Case.objects.get(pk=response.json()["id"])
    assert (case.reference, case.team, case.status, case.created_by) == ("C-100", north, "open", alice)
    event = AuditEvent.objects.get(action="case.create")
    assert (event.target_type, event.target_id, event.case_id) == ("case", str(case.pk), case.pk)


def test_practitioner_cannot_open_a_case_for_another_team(alice, south, client_for):
    response = client_for(alice).post(
        "/api/v1/cases/", {"reference": "C-101", "title": "x", "team": south.pk}, format="json"
    )
    assert response.status_code == 404
    assert "team" in response.json()["fields"]
    assert not Case.objects.exists()
    assert AuditEvent.objects.filter(action="request.denied", actor_username="alice").exists()


def test_a_duplicate_reference_answers_409_naming_the_field(alice, north, north_case, client_for):
    response = client_for(alice).post(
        "/api/v1/cases/", {"reference": north_case.reference, "title": "x", "team": north.pk}, format="json"
    )
    assert response.status_code == 409
    assert "reference" in response.json()["fields"]
    assert Case.objects.count() == 1
    assert AuditEvent.objects.filter(action="request.conflict", actor_username="alice").count() == 1


def test_missing_fields_are_named(alice, client_for):
    response = client_for(alice).post("/api/v1/cases/", {"title": "x"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"reference", "team"}


def test_practitioner_lists_only_their_teams_cases_and_the_list_is_audited(alice, north_case, south_case, client_for):
    response = client_for(alice).get("/api/v1/cases/")
    assert response.status_code == 200
    assert [case["reference"] for case in response.json()["results"]] == ["N-1"]
    event = AuditEvent.objects.get(action="case.list")
    assert event.payload["case_ids"] == [north_case.pk]


def test_practitioner_cannot_see_another_teams_case(alice, south_case, client_for):
    response = client_for(alice).get(f"/api/v1/cases/{south_case.pk}/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    denied = AuditEvent.objects.get(action="request.denied")
    assert (denied.target_type, denied.target_id, denied.payload["status"]) == ("case", str(south_case.pk), 404)
    assert not AuditEvent.objects.filter(action="case.read").exists()


def test_reading_a_case_shows_its_subjects_and_is_audited(alice, north_case, jane, client_for):
    response = client_for(alice).get(f"/api/v1/cases/{north_case.pk}/")
    assert response.status_code == 200
    assert response.json()["subjects"] == [
        {"subject": jane.pk, "display_name": "Jane Doe", "relationship": "service_user"}
    ]
    event = AuditEvent.objects.get(action="case.read")
    assert event.case_id == north_case.pk
    assert [link.subject_id for link in event.subject_links.all()] == [jane.pk]


def test_officers_read_any_case_but_cannot_open_one(olivia, north, north_case, south_case, client_for):
    client = client_for(olivia)
    assert client.get(f"/api/v1/cases/{south_case.pk}/").status_code == 200
    assert len(client.get("/api/v1/cases/").json()["results"]) == 2
    response = client.post("/api/v1/cases/", {"reference": "O-1", "title": "x", "team": north.pk}, format="json")
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="request.denied", actor_username="olivia").count() == 1


@pytest.mark.parametrize("who", ["audrey", "adam"])
def test_auditors_and_admins_may_not_use_the_case_api(who, request, north_case, client_for):
    client = client_for(request.getfixturevalue(who))
    assert client.get("/api/v1/cases/").status_code == 403
    assert client.get(f"/api/v1/cases/{north_case.pk}/").status_code == 403


def test_closing_a_case_is_audited_and_a_second_close_answers_409(alice, north_case, client_for):
    client = client_for(alice)
    response = client.post(f"/api/v1/cases/{north_case.pk}/close/")
    assert response.status_code == 200 and response.json()["status"] == "closed"
    north_case.refresh_from_db()
    assert north_case.status == "closed" and north_case.closed_by == alice
    assert AuditEvent.objects.filter(action="case.close", case_id=north_case.pk).count() == 1
    again = client.post(f"/api/v1/cases/{north_case.pk}/close/")
    assert again.status_code == 409
    assert again.json()["current_status"] == "closed"


def test_practitioner_cannot_close_another_teams_case(alice, south_case, client_for):
    assert client_for(alice).post(f"/api/v1/cases/{south_case.pk}/close/").status_code == 404
    south_case.refresh_from_db()
    assert south_case.status == "open"
    assert AuditEvent.objects.filter(action="request.denied", target_id=str(south_case.pk)).count() == 1


def test_case_list_pages_with_a_cursor(alice, north, client_for):
    from tests.factories import CaseFactory

    for n in range(5):
        CaseFactory(reference=f"P-{n}", team=north, created_by=alice)
    client = client_for(alice)
    first = client.get("/api/v1/cases/?limit=2").json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()
    refs = [c["reference"] for page in (first, second, third) for c in page["results"]]
    assert refs == ["P-4", "P-3", "P-2", "P-1", "P-0"]
    assert third["next"] is None


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=abc", "cursor=%%%", "cursor=WzEsMl0", "cursor=WyJ4Il0", "status=pending"]
)
def test_bad_paging_or_filters_answer_400_naming_the_field(alice, north_case, client_for, query):
    response = client_for(alice).get(f"/api/v1/cases/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()["fields"]
