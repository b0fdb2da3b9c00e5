"""``transaction=True`` tests commit for real, and the harness empties the database after
them as the tables' owner (tests/db_harness.py) without leaving the append-only tables
unprotected: outside the harness, UPDATE, DELETE and TRUNCATE are still refused, and so is
Django's own ``flush``."""

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent, AuditLeaf, AuditLogState
from audit.services import AuditContext, audit_record
from detection.models import DetectionPolicy
from tests import db_harness

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _own_data_dir(settings, tmp_path):
    """The log's witness copy of its newest checkpoint is kept in DATA_DIR, outside the
    database: each test keeps its own."""
    settings.DATA_DIR = tmp_path


def raw(sql):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)


def record(action="case.read"):
    with transaction.atomic():
        return audit_record(ctx=AuditContext.command("test"), action=action, subject_ids=[7])


def installed_triggers():
    """The append-only triggers in the catalogue, with how they fire (PostgreSQL: 'A' is
    ALWAYS; SQLite's triggers have no such state)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal")
            return dict(cursor.fetchall())
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return {name: "A" for (name,) in cursor.fetchall()}


def expected_triggers():
    suffixes = ("append_only", "no_truncate") if connection.vendor == "postgresql" else ("no_update", "no_delete")
    return {f"{table}_{suffix}" for table in db_harness.append_only_tables() for suffix in suffixes}


def test_a_transactional_test_commits_what_it_writes():
    event = record()
    # Committed: the log sequenced it once its transaction ended (after commit).
    assert AuditLeaf.objects.filter(event_id=event.pk).exists()


def test_the_next_transactional_test_starts_from_the_migrated_database():
    assert not AuditEvent.objects.exists() and not AuditLeaf.objects.exists()
    assert AuditLogState.objects.filter(pk=1).exists()
    # The migrations' versions: the defaults, and issue 18's LATE_ENTRIES.
    assert sorted(DetectionPolicy.objects.values_list("version", flat=True)) == [1, 2]


def test_emptying_as_the_owner_leaves_every_append_only_table_protected():
    record()
    db_harness.empty_database()
    assert not AuditEvent.objects.exists() and DetectionPolicy.objects.filter(version=1).exists()
    triggers = installed_triggers()
    assert expected_triggers() <= set(triggers)
    assert {triggers[name] for name in expected_triggers()} == {"A"}
    # And they bite: rows written after the emptying cannot be changed or removed.
    event = record()
    for statement in (
        f"UPDATE audit_auditevent SET action = 'case.create' WHERE id = {event.pk}",
        "DELETE FROM audit_auditevent",
        "DELETE FROM audit_auditleaf",
        "UPDATE detection_detectionpolicy SET note = 'x'",
        "DELETE FROM detection_detectionpolicy",
    ):
        with pytest.raises(DatabaseError, match="append-only|permission denied"):
            raw(statement)
    if connection.vendor == "postgresql":
        for table in db_harness.append_only_tables():
            with pytest.raises(DatabaseError, match="append-only|permission denied"):
                raw(f'TRUNCATE "{table}" CASCADE')
    assert AuditEvent.objects.get(pk=event.pk).action == "case.read"


def test_djangos_own_flush_is_still_refused():
    """The harness replaces the test runner's flush; ``manage.py flush`` itself, the way
    anyone outside the harness would empty the tables, fails and changes nothing."""
    event = record()
    with pytest.raises(CommandError):
        call_command("flush", interactive=False, verbosity=0)
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_tests_connect_as_the_runtime_role_exactly_when_asked_and_it_cannot_lift_the_protection():
    if not db_harness.runtime_role_requested():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_user")
                assert cursor.fetchone()[0] != db_harness.RUNTIME_ROLE
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == db_harness.RUNTIME_ROLE
    for table in db_harness.append_only_tables():
        with pytest.raises(DatabaseError, match="must be owner|permission denied"):
            raw(f'DROP TRIGGER "{table}_append_only" ON "{table}"')
