from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from authorisations.models import Authorisation, JudicialApproval
from tests.authorisations.conftest import clock

URL = "/api/v1/authorisations/"
LONDON = ZoneInfo("Europe/London")


def approval(decided_at, outcome="approved", **overrides):
    payload = {
        "court": "Leeds Magistrates' Court",
        "justice": "J. Smith JP",
        "decided_at": decided_at.isoformat(),
        "outcome": outcome,
        "notes": "Approved on the papers.",
    }
    payload.update(overrides)
    return payload


@pytest.mark.parametrize(
    ("kind", "fields", "expires"),
    [
        ("directed_surveillance", {}, datetime(2026, 5, 12, 0, 0, tzinfo=LONDON)),
        ("chis", {}, datetime(2027, 2, 12, 0, 0, tzinfo=LONDON)),
        ("chis", {"juvenile_source": True}, datetime(2026, 6, 12, 0, 0, tzinfo=LONDON)),
    ],
    ids=["ds-3-months", "chis-12-months", "juvenile-chis-4-months"],
)
def test_the_magistrates_approval_brings_it_into_force_for_its_statutory_period(
    sam, walk, client_for, kind, fields, expires
):
    granted = datetime(2026, 2, 11, 9, 0, tzinfo=LONDON)
    with clock(granted):
        authorisation = walk("awaiting_judicial_approval", type=kind, by=sam, **fields)
    hearing = datetime(2026, 2, 12, 10, 30, tzinfo=LONDON)
    with clock(hearing + timedelta(hours=2)):
        response = client_for(sam).post(f"{URL}{authorisation.pk}/judicial-approval/", approval(hearing), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["judicial_approvals"][0]["court"] == "Leeds Magistrates' Court"
    authorisation.refresh_from_db()
    assert (authorisation.status, authorisation.in_force_at, authorisation.expires_at) == ("in_force", hearing, expires)
    assert authorisation.next_review_due == hearing + timedelta(days=28)
    event = AuditEvent.objects.get(action="authorisation.judicial_approval")
    assert (event.actor_username, event.payload["outcome"], event.payload["court"]) == (
        "sam",
        "approved",
        "Leeds Magistrates' Court",
    )


@pytest.mark.parametrize("outcome", ["refused", "quashed"])
def test_a_magistrates_refusal_or_quashing_ends_the_application(olivia, walk, client_for, outcome):
    authorisation = walk("awaiting_judicial_approval", type="directed_surveillance")
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/judicial-approval/", approval(timezone.now(), outcome), format="json"
    )
    assert response.status_code == 201 and response.json()["status"] == outcome
    authorisation.refresh_from_db()
    assert authorisation.in_force_at is None and authorisation.status == outcome
    second = client_for(olivia).post(
        f"{URL}{authorisation.pk}/judicial-approval/", approval(timezone.now()), format="json"
    )
    assert second.status_code == 409 and second.json()["current_status"] == outcome
    assert JudicialApproval.objects.count() == 1


def test_a_non_ripa_authorisation_has_no_magistrate(olivia, walk, client_for):
    authorisation = walk("in_force")
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/judicial-approval/", approval(timezone.now()), format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "no_judicial_approval"


def test_the_decision_cannot_be_in_the_future_or_before_the_grant(olivia, walk, client_for):
    authorisation = walk("awaiting_judicial_approval", type="directed_surveillance")
    client = client_for(olivia)
    for when in (timezone.now() + timedelta(hours=1), authorisation.decided_at - timedelta(minutes=1)):
        response = client.post(f"{URL}{authorisation.pk}/judicial-approval/", approval(when), format="json")
        assert response.status_code == 400 and list(response.json()["fields"]) == ["decided_at"]
    response = client.post(
        f"{URL}{authorisation.pk}/judicial-approval/", approval(timezone.now(), "maybe", court=""), format="json"
    )
    assert response.status_code == 400 and set(response.json()["fields"]) == {"outcome", "court"}
    assert Authorisation.objects.get(pk=authorisation.pk).status == "awaiting_judicial_approval"
    assert not JudicialApproval.objects.exists()


def test_a_submitted_application_is_not_yet_before_a_magistrate(olivia, walk, client_for):
    authorisation = walk("submitted", type="directed_surveillance")
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/judicial-approval/", approval(timezone.now()), format="json"
    )
    assert response.status_code == 409 and response.json()["current_status"] == "submitted"


def test_the_applicant_may_not_record_the_magistrates_decision(alice, walk, client_for):
    authorisation = walk("awaiting_judicial_approval", type="directed_surveillance")
    response = client_for(alice).post(
        f"{URL}{authorisation.pk}/judicial-approval/", approval(timezone.now()), format="json"
    )
    assert response.status_code == 403
    assert Authorisation.objects.get(pk=authorisation.pk).status == "awaiting_judicial_approval"
    assert AuditEvent.objects.filter(action="request.denied", actor_username="alice").exists()
