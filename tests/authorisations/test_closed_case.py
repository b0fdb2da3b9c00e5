"""No application goes forward on a closed case: not submitted, granted or renewed."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.services import AuditContext
from authorisations.models import Authorisation
from cases.services import case_close
from tests.authorisations.conftest import GRANT

URL = "/api/v1/authorisations/"


@pytest.mark.parametrize(
    "state, who, step, body",
    [
        ("draft", "alice", "submit", {}),
        ("submitted", "olivia", "grant", {**GRANT, "review_interval_days": 28}),
        ("in_force", "olivia", "renew", {"officer_grade": "Head of Service", "statement": "Still needed."}),
    ],
)
def test_no_step_forward_on_a_closed_case(request, walk, client_for, north_case, state, who, step, body):
    authorisation = walk(state)
    case_close(ctx=AuditContext(actor=request.getfixturevalue("alice")), case=north_case)
    later = (timezone.now() + timedelta(days=120)).isoformat()
    if step in ("grant", "renew"):
        body = {**body, "expires_at": later}
    response = client_for(request.getfixturevalue(who)).post(f"{URL}{authorisation.pk}/{step}/", body, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "case_closed" and response.json()["current_status"] == state
    assert Authorisation.objects.get(pk=authorisation.pk).status == state
