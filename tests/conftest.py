import os

import pytest
from django.db import connection
from django.test import TransactionTestCase
from rest_framework.test import APIClient

from accounts.models import Role
from audit.models import AuditEvent
from tests import db_harness
from tests.factories import CaseFactory, CaseSubjectFactory, ProfileFactory, TeamFactory, UserFactory


def pytest_collection_modifyitems(config, items):
    """``postgres`` tests skip on SQLite locally; in CI (CES_REQUIRE_POSTGRES=1) running
    them anywhere but PostgreSQL is a failure, so a misconfigured CI cannot pass by
    skipping them."""
    for item in items:
        if item.get_closest_marker("postgres"):
            item.fixturenames.append("_postgres_only")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database as pytest-django makes it (created and migrated by the owner), its
    seeded rows copied for ``db_harness.empty_database``; with CES_TEST_RUNTIME_ROLE=1, the
    tests then connect as the runtime role (tests/db_harness.py)."""
    with django_db_blocker.unblock():
        db_harness.snapshot_seeds()
        if db_harness.runtime_role_requested():
            db_harness.connect_as_runtime_role()
    yield
    with django_db_blocker.unblock():
        db_harness.connect_as_owner()


@pytest.fixture(scope="session", autouse=True)
def _transactional_tests_empty_the_database_as_owner():
    """After a ``transaction=True`` test, the harness empties the database as the owner
    instead of Django's flush, which the append-only tables refuse (tests/db_harness.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TransactionTestCase, "_fixture_teardown", db_harness.fixture_teardown)
        yield


@pytest.fixture
def _postgres_only(db):
    if connection.vendor != "postgresql":
        if os.environ.get("CES_REQUIRE_POSTGRES") == "1":
            pytest.fail("CES_REQUIRE_POSTGRES=1 but the tests are not running on PostgreSQL")
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


@pytest.fixture
def north(db):
    return TeamFactory(name="North")


@pytest.fixture
def south(db):
    return TeamFactory(name="South")


@pytest.fixture
def alice(north):
    """A practitioner in North."""
    return UserFactory(username="alice", role=Role.PRACTITIONER, teams=[north])


@pytest.fixture
def bob(south):
    """A practitioner in South."""
    return UserFactory(username="bob", role=Role.PRACTITIONER, teams=[south])


@pytest.fixture
def carol(north):
    """Another practitioner in North."""
    return UserFactory(username="carol", role=Role.PRACTITIONER, teams=[north])


@pytest.fixture
def olivia(db):
    return UserFactory(username="olivia", role=Role.RIPA_OFFICER)


@pytest.fixture
def sam(db):
    return UserFactory(username="sam", role=Role.SRO)


@pytest.fixture
def audrey(db):
    return UserFactory(username="audrey", role=Role.AUDITOR)


@pytest.fixture
def adam(db):
    return UserFactory(username="adam", role=Role.ADMIN)


@pytest.fixture
def client_for():
    """An API client authenticated with a real token obtained through the login API."""

    def make(user, password="correct-horse-battery"):
        client = APIClient()
        response = client.post("/api/v1/auth/token/", {"username": user.username, "password": password}, format="json")
        assert response.status_code == 200, response.content
        client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
        return client

    return make


@pytest.fixture
def north_case(alice, north):
    return CaseFactory(reference="N-1", team=north, created_by=alice)


@pytest.fixture
def south_case(bob, south):
    return CaseFactory(reference="S-1", team=south, created_by=bob)


@pytest.fixture
def jane(north_case):
    """A person linked to North's case, with an Instagram profile."""
    link = CaseSubjectFactory(
        case=north_case, subject__display_name="Jane Doe", subject__created_by=north_case.created_by
    )
    return link.subject


@pytest.fixture
def jane_profile(jane):
    return ProfileFactory(
        subject=jane, platform="instagram", handle="jane.doe", url="https://www.instagram.com/jane.doe/"
    )


@pytest.fixture
def last_event():
    def get(action=None):
        events = AuditEvent.objects.order_by("-id")
        if action:
            events = events.filter(action=action)
        return events.first()

    return get
