"""Schema fuzzing: schemathesis sends generated requests (valid and invalid) to every
operation in the OpenAPI schema at ``/api/v1/schema/``, signed in in turn as each role with a
real token, and checks each answer: never a 5xx, a documented status code and content
type, a body that matches the documented schema, documented headers.

Everything runs in-process through the WSGI application, on the test database of the run
(SQLite or PostgreSQL): each operation × role is one test in its own rolled-back
transaction, seeded with a case, a person with a profile and consent, a viewing (and the
flags it raises) and an authorisation, so that about half of the generated ids and
references point at objects that exist.

Reproducible: ``derandomize=True`` derives every example from the test itself, and a
failure prints a curl command. ``FUZZ_EXAMPLES`` (default 8) sets how many generated
requests each operation × role gets beyond schemathesis's own boundary and negative cases
(about 13,000 requests in all at the default); ``FUZZ_RANDOM=1`` draws new examples on each
run, for exploring beyond what CI checks.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import Role
from evidence_service.wsgi import application
from tests.factories import CaseFactory, CaseSubjectFactory, ConsentFactory, ProfileFactory, TeamFactory, UserFactory

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
DERANDOMIZE = os.environ.get("FUZZ_RANDOM") != "1"
PASSWORD = "correct-horse-battery"
ROLES = [Role.PRACTITIONER, Role.RIPA_OFFICER, Role.SRO, Role.AUDITOR, Role.ADMIN]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def in_test_transaction(environ, start_response):
    """The WSGI application, run as Django's test client runs it: the request neither
    opens nor closes the database connection, so it runs inside the test's transaction
    (on PostgreSQL, closing the connection would end it)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        body = application(environ, start_response)
        try:
            return [b"".join(body)]
        finally:
            if hasattr(body, "close"):
                body.close()  # fires request_finished
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", in_test_transaction)

#: Ids of the objects seeded for the running test, by kind; the hooks below swap
#: generated ids for these about half of the time.
SEEDED: dict[str, list[int]] = {}
#: Which kind of object the id in a path names, by the path's first segment.
PATH_KINDS = {
    "cases": "case",
    "subjects": "subject",
    "consents": "consent",
    "viewings": "viewing",
    "authorisations": "authorisation",
    "flags": "flag",
}
#: Which kind of object a field of a body or query names.
FIELD_KINDS = {
    "case": "case",
    "subject": "subject",
    "profile": "profile",
    "authorisation": "authorisation",
    "viewing": "viewing",
    "subjects": "subject",
    "profile_ids": "profile",
    "profiles": "profile",
}


def _seeded_or(value, kind: str):
    """A strategy: ``value`` as generated, or (if it looks like an id) a seeded id."""
    ids = SEEDED.get(kind) or []
    if not ids:
        return st.just(value)
    if isinstance(value, bool):
        return st.just(value)
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        cast = str if isinstance(value, str) else int
        return st.sampled_from([value, *[cast(i) for i in ids]])
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return st.sampled_from([value, ids[:1], ids])
    return st.just(value)


def _with_seeded_fields(mapping):
    if not isinstance(mapping, dict):
        return st.just(mapping)
    fields = {key: _seeded_or(value, FIELD_KINDS[key]) for key, value in mapping.items() if key in FIELD_KINDS}
    if not fields:
        return st.just(mapping)
    return st.fixed_dictionaries(fields).map(lambda chosen: {**mapping, **chosen})


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    if not isinstance(path_parameters, dict) or "id" not in path_parameters:
        return st.just(path_parameters)
    first = context.operation.path.strip("/").split("/")[2] if context.operation else ""
    kind = PATH_KINDS.get(first)
    if kind is None:
        return st.just(path_parameters)
    return _seeded_or(path_parameters["id"], kind).map(lambda chosen: {**path_parameters, "id": chosen})


@schema.hook
def flatmap_query(context, query):
    return _with_seeded_fields(query)


@schema.hook
def flatmap_body(context, body):
    return _with_seeded_fields(body)


def _token(username: str) -> str:
    response = APIClient().post("/api/v1/auth/token/", {"username": username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["token"]


@pytest.fixture
def seeded(db):
    """One of everything, made through the API where that records what the service would
    (viewings raise flags; applications get their reference numbers)."""
    north, south = TeamFactory(name="North"), TeamFactory(name="South")
    users = {
        Role.PRACTITIONER: UserFactory(username="alice", role=Role.PRACTITIONER, teams=[north]),
        Role.RIPA_OFFICER: UserFactory(username="olivia", role=Role.RIPA_OFFICER),
        Role.SRO: UserFactory(username="sam", role=Role.SRO),
        Role.AUDITOR: UserFactory(username="audrey", role=Role.AUDITOR),
        Role.ADMIN: UserFactory(username="adam", role=Role.ADMIN),
    }
    bob = UserFactory(username="bob", role=Role.PRACTITIONER, teams=[south])
    alice = users[Role.PRACTITIONER]
    case = CaseFactory(reference="FUZZ-1", team=north, created_by=alice)
    other_case = CaseFactory(reference="FUZZ-2", team=south, created_by=bob)
    jane = CaseSubjectFactory(case=case, subject__display_name="Jane Doe", subject__created_by=alice).subject
    profile = ProfileFactory(subject=jane, platform="instagram", handle="jane.doe", created_by=alice)
    consent = ConsentFactory(subject=jane, scope=["facebook"], recorded_by=alice)

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {_token('alice')}")
    viewing = client.post(
        "/api/v1/viewings/",
        {
            "case": case.pk,
            "profile": profile.pk,
            "purpose": "locate_person",
            "justification": "To tell her about the hearing",
            "access_method": "council_overt_account",
            "interaction": "none",
            "information_recorded": "The town she lives in",
            "third_party_information": "",
        },
        format="json",
    )
    assert viewing.status_code == 201, viewing.content
    application = client.post(
        "/api/v1/authorisations/",
        {
            "type": "non_ripa",
            "case": case.pk,
            "title": "Locating J",
            "subjects": [jane.pk],
            "platforms": ["instagram"],
            "purpose": "To find where J is living so that the court papers can be served.",
            "information_sought": "The town J now lives in.",
            "necessity": "J has left the last known address.",
            "proportionality": "Public posts over four weeks only.",
            "alternatives_considered": "Letters; calls to relatives.",
            "collateral_intrusion": "Friends' comments may be seen; nothing about them is recorded.",
            "confidential_information_likely": False,
        },
        format="json",
    )
    assert application.status_code == 201, application.content
    flags = [flag["id"] for flag in viewing.json().get("flags", []) if isinstance(flag, dict) and "id" in flag]
    SEEDED.clear()
    SEEDED.update(
        {
            "case": [case.pk, other_case.pk],
            "subject": [jane.pk],
            "profile": [profile.pk],
            "consent": [consent.pk],
            "viewing": [viewing.json()["id"]],
            "authorisation": [application.json()["id"]],
            "flag": flags,
        }
    )
    yield users
    SEEDED.clear()


@pytest.fixture(params=ROLES, ids=[role.value for role in ROLES])
def signed_in(request, seeded):
    """The Authorization header of a real token for a user with the role."""
    return {"Authorization": f"Token {_token(seeded[request.param].username)}"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=DERANDOMIZE,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
def test_every_operation_answers_as_documented_for_every_role(case, signed_in):
    case.call_and_validate(headers=signed_in, checks=CHECKS)
