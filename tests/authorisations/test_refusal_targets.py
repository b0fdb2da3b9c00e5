"""A refusal raised without a target of its own (an officer who works on the case, a step
out of order, a role that may not act) is recorded against the object the URL names: its
type and id, its case, and its people, so that it is found by target, by case and in each
person's access history."""

from datetime import timedelta

from django.utils import timezone

from audit.models import AuditEvent
from tests.authorisations.conftest import GRANT


def last_refusal(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-id").first()


def placed(event: AuditEvent) -> tuple:
    return (
        event.target_type,
        event.target_id,
        event.case_id,
        sorted(event.subject_links.values_list("subject_id", flat=True)),
    )


def test_a_grant_by_an_officer_on_the_case_is_recorded_against_the_authorisation(
    olivia, north, walk, client_for, north_case, jane
):
    olivia.teams.add(north)
    authorisation = walk("submitted", by=None)
    body = {**GRANT, "review_interval_days": 28, "expires_at": (timezone.now() + timedelta(days=60)).isoformat()}
    response = client_for(olivia).post(f"/api/v1/authorisations/{authorisation.pk}/grant/", body, format="json")
    assert response.status_code == 403 and response.json()["code"] == "works_on_the_case"
    event = last_refusal("request.denied")
    assert placed(event) == ("authorisation", str(authorisation.pk), north_case.pk, [jane.pk])


def test_a_step_out_of_order_is_recorded_against_the_authorisation(alice, walk, client_for, north_case, jane):
    authorisation = walk("submitted")
    response = client_for(alice).post(f"/api/v1/authorisations/{authorisation.pk}/submit/")
    assert response.status_code == 409
    event = last_refusal("request.conflict")
    assert placed(event) == ("authorisation", str(authorisation.pk), north_case.pk, [jane.pk])


def test_a_refused_read_is_found_in_the_persons_access_history(bob, audrey, client_for, jane, north_case):
    assert client_for(bob).get(f"/api/v1/subjects/{jane.pk}/").status_code == 404
    assert client_for(bob).post(f"/api/v1/cases/{north_case.pk}/close/").status_code == 404
    history = client_for(audrey).get("/api/v1/audit/access-history/", {"subject": jane.pk}).json()
    denied = [e for e in history["events"] if e["action"] == "request.denied" and e["actor"] == "bob"]
    assert [(e["target_type"], e["target_id"]) for e in denied] == [("subject", str(jane.pk))]
    closing = last_refusal("request.denied")
    assert placed(closing) == ("case", str(north_case.pk), north_case.pk, [])


def test_a_refusal_about_an_object_that_does_not_exist_names_only_the_url(alice, client_for):
    response = client_for(alice).get("/api/v1/viewings/987654/")
    assert response.status_code == 404
    assert placed(last_refusal("request.denied"))[:3] == ("viewing", "987654", None)
