"""Every endpoint x every role x inside / outside the caller's scope -> the expected answer,
and every refusal written to the audit log.

"ok" means access control let the request through: any answer other than 401, 403 and 404
(a 400 for a body the action does not accept, or a 409 for a state it does not allow,
counts, since it comes from the action itself). Nothing may answer 5xx. The roles:
alice (practitioner in North, which owns every object here), bob (practitioner in South:
outside the scope), olivia (RIPA officer the flag is routed to), sam (SRO), audrey
(auditor), adam (admin) and anonymous.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit import keys
from audit import log as audit_log
from audit.models import AuditEvent
from audit.services import AuditContext
from cases.services import ViewingDetails, viewing_log
from detection.models import Flag
from tests.authorisations.conftest import application_payload
from tests.factories import AuthorisationFactory, ConsentFactory

OK = "ok"
ROLES = ("alice", "bob", "olivia", "sam", "audrey", "adam", "anonymous")


def expect(alice=OK, bob=OK, olivia=OK, sam=OK, audrey=OK, adam=OK, anonymous=401):
    return {
        "alice": alice,
        "bob": bob,
        "olivia": olivia,
        "sam": sam,
        "audrey": audrey,
        "adam": adam,
        "anonymous": anonymous,
    }


CASE_READERS_ONLY = dict(audrey=403, adam=403)
PRACTITIONER_WRITE_IN_SCOPE = dict(bob=404, olivia=403, sam=403, audrey=403, adam=403)
NORTH_READ = dict(bob=404, audrey=403, adam=403)
AUDIT_ONLY = dict(alice=403, bob=403, olivia=403, adam=403)
OFFICER_DECISION = dict(alice=403, bob=403, audrey=403, adam=403)


@dataclass
class World:
    north: object
    case: object
    subject: object
    profile: object
    consent: object
    viewing: object
    authorisation: object
    flag: object


def viewing_body(world: World, **extra):
    return {
        "case": world.case.pk,
        "profile": world.profile.pk,
        "purpose": "safeguarding_assessment",
        "justification": "Checking the address before a visit",
        "access_method": "logged_out_public",
        "interaction": "none",
        "information_recorded": "",
        "third_party_information": "",
        **extra,
    }


# (name, method, url(world), body(world) or None, expectations)
ENDPOINTS = [
    ("me", "get", lambda w: "/api/v1/me/", None, expect()),
    ("teams", "get", lambda w: "/api/v1/teams/", None, expect()),
    ("logout", "post", lambda w: "/api/v1/auth/logout/", None, expect()),
    ("case list", "get", lambda w: "/api/v1/cases/", None, expect(**CASE_READERS_ONLY)),
    (
        "case create",
        "post",
        lambda w: "/api/v1/cases/",
        lambda w: {"reference": "M-1", "title": "t", "team": w.north.pk},
        expect(**PRACTITIONER_WRITE_IN_SCOPE),
    ),
    ("case read", "get", lambda w: f"/api/v1/cases/{w.case.pk}/", None, expect(**NORTH_READ)),
    ("case close", "post", lambda w: f"/api/v1/cases/{w.case.pk}/close/", None, expect(**PRACTITIONER_WRITE_IN_SCOPE)),
    (
        "subject add",
        "post",
        lambda w: f"/api/v1/cases/{w.case.pk}/subjects/",
        lambda w: {"display_name": "Kim", "relationship": "parent"},
        expect(**PRACTITIONER_WRITE_IN_SCOPE),
    ),
    ("subject read", "get", lambda w: f"/api/v1/subjects/{w.subject.pk}/", None, expect(**NORTH_READ)),
    (
        "profile create",
        "post",
        lambda w: f"/api/v1/subjects/{w.subject.pk}/profiles/",
        lambda w: {"platform": "x", "handle": "kimk"},
        expect(**PRACTITIONER_WRITE_IN_SCOPE),
    ),
    (
        "consent create",
        "post",
        lambda w: f"/api/v1/subjects/{w.subject.pk}/consents/",
        lambda w: {
            "scope": ["all"],
            "granted_at": (timezone.now() - timedelta(days=1)).isoformat(),
            "evidence": "Signed form on the case file",
            "given_by": "subject",
            "given_by_name": "Jane Doe",
            "method": "written",
        },
        expect(**PRACTITIONER_WRITE_IN_SCOPE),
    ),
    (
        "consent confirm",
        "post",
        lambda w: f"/api/v1/consents/{w.consent.pk}/confirm/",
        lambda w: {"note": "Checked the signed form"},
        expect(alice=403, bob=403, audrey=403, adam=403),
    ),
    (
        "consent withdraw",
        "post",
        lambda w: f"/api/v1/consents/{w.consent.pk}/withdraw/",
        lambda w: {},
        expect(**PRACTITIONER_WRITE_IN_SCOPE),
    ),
    ("viewing list", "get", lambda w: "/api/v1/viewings/", None, expect(**CASE_READERS_ONLY)),
    ("viewing log", "post", lambda w: "/api/v1/viewings/", viewing_body, expect(**PRACTITIONER_WRITE_IN_SCOPE)),
    ("viewing check", "post", lambda w: "/api/v1/viewings/check/", viewing_body, expect(**PRACTITIONER_WRITE_IN_SCOPE)),
    ("viewing read", "get", lambda w: f"/api/v1/viewings/{w.viewing.pk}/", None, expect(**NORTH_READ)),
    (
        "viewing supersede",
        "post",
        lambda w: f"/api/v1/viewings/{w.viewing.pk}/supersede/",
        lambda w: viewing_body(w, reason="Wrong purpose"),
        expect(**PRACTITIONER_WRITE_IN_SCOPE),
    ),
    ("authorisation list", "get", lambda w: "/api/v1/authorisations/", None, expect(**CASE_READERS_ONLY)),
    (
        "authorisation apply",
        "post",
        lambda w: "/api/v1/authorisations/",
        lambda w: application_payload(w.case, [w.subject]),
        expect(**PRACTITIONER_WRITE_IN_SCOPE),
    ),
    (
        "authorisation read",
        "get",
        lambda w: f"/api/v1/authorisations/{w.authorisation.pk}/",
        None,
        expect(**NORTH_READ),
    ),
    (
        "authorisation submit",
        "post",
        lambda w: f"/api/v1/authorisations/{w.authorisation.pk}/submit/",
        lambda w: {},
        expect(**PRACTITIONER_WRITE_IN_SCOPE),
    ),
    *[
        (
            f"authorisation {action}",
            "post",
            (lambda a: lambda w: f"/api/v1/authorisations/{w.authorisation.pk}/{a}/")(action),
            lambda w: {},
            expect(**OFFICER_DECISION),
        )
        for action in ("grant", "refuse", "judicial-approval", "reviews", "renew", "cancel")
    ],
    (
        "central record",
        "get",
        lambda w: "/api/v1/authorisations/central-record/",
        None,
        expect(alice=403, bob=403, adam=403),
    ),
    ("policy read", "get", lambda w: "/api/v1/policy/", None, expect(alice=403, bob=403, adam=403)),
    (
        "policy change",
        "put",
        lambda w: "/api/v1/policy/",
        lambda w: {},
        expect(alice=403, bob=403, olivia=403, audrey=403, adam=403),
    ),
    ("flag list", "get", lambda w: "/api/v1/flags/", None, expect(**CASE_READERS_ONLY)),
    ("flag read", "get", lambda w: f"/api/v1/flags/{w.flag.pk}/", None, expect(**NORTH_READ)),
    (
        "flag decide",
        "post",
        lambda w: f"/api/v1/flags/{w.flag.pk}/decide/",
        lambda w: {"outcome": "no_authorisation_needed", "reasoning": "A single look before a visit"},
        expect(sam=403, **OFFICER_DECISION),
    ),  # routed to olivia only (medium severity)
    ("audit events", "get", lambda w: "/api/v1/audit/events/", None, expect(**AUDIT_ONLY)),
    (
        "access history",
        "get",
        lambda w: f"/api/v1/audit/access-history/?subject={w.subject.pk}",
        None,
        expect(**AUDIT_ONLY),
    ),
    ("checkpoint", "get", lambda w: "/api/v1/audit/checkpoint/", None, expect(**AUDIT_ONLY)),
    (
        "inclusion proof",
        "get",
        lambda w: "/api/v1/audit/proof/inclusion/?index=0&tree_size=1",
        None,
        expect(**AUDIT_ONLY),
    ),
    (
        "consistency proof",
        "get",
        lambda w: "/api/v1/audit/proof/consistency/?first=1&second=2",
        None,
        expect(**AUDIT_ONLY),
    ),
    ("entries", "get", lambda w: "/api/v1/audit/entries/?start=0&end=2", None, expect(**AUDIT_ONLY)),
    ("export", "get", lambda w: "/api/v1/audit/export/?start=0&end=2", None, expect(**AUDIT_ONLY)),
]


@pytest.fixture
def world(alice, bob, carol, olivia, sam, audrey, adam, north, north_case, jane, jane_profile, settings, tmp_path):
    settings.AUDIT_SIGNING_KEY = None
    settings.AUDIT_SIGNING_KEY_PATH = tmp_path / "audit-signing.key"
    settings.DATA_DIR = tmp_path
    keys.signer.cache_clear()
    viewing = viewing_log(
        ctx=AuditContext(actor=alice),
        details=ViewingDetails(
            case=north_case,
            profile=jane_profile,
            purpose="evidence_gathering",
            justification="Before the hearing",
            access_method="logged_out_public",
            interaction="none",
            information_recorded="",
            third_party_information="",
        ),
    )
    flag = Flag.objects.get()
    assert list(flag.recipients.values_list("officer__username", flat=True)) == ["olivia"]
    authorisation = AuthorisationFactory(case=north_case, applicant=alice, subjects=[jane])
    audit_log.integrate(force_checkpoint=True)
    yield World(north, north_case, jane, jane_profile, ConsentFactory(subject=jane), viewing, authorisation, flag)
    keys.signer.cache_clear()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[endpoint[0] for endpoint in ENDPOINTS])
def test_access_matrix(endpoint, role, world, request, client_for):
    name, method, url, body, expectations = endpoint
    client = APIClient() if role == "anonymous" else client_for(request.getfixturevalue(role))
    denied_before = AuditEvent.objects.filter(action="request.denied").count()
    kwargs = {"format": "json"} if body else {}
    response = getattr(client, method)(url(world), body(world) if body else None, **kwargs)
    expected = expectations[role]
    assert response.status_code < 500, response.content
    if expected == OK:
        assert response.status_code not in (401, 403, 404), (name, role, response.status_code, response.content)
        assert AuditEvent.objects.filter(action="request.denied").count() == denied_before
    else:
        assert response.status_code == expected, (name, role, response.status_code, response.content)
        assert response.json()["code"]
        refusal = AuditEvent.objects.filter(action="request.denied").order_by("-id").first()
        assert AuditEvent.objects.filter(action="request.denied").count() == denied_before + 1
        assert refusal.payload["status"] == expected and refusal.payload["path"] == url(world).split("?")[0]
        assert refusal.actor_username == ("" if role == "anonymous" else role)
