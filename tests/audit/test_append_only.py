"""The audit log (and the viewings table) cannot be changed or emptied with raw SQL."""

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent, AuditSubjectLink
from audit.services import AuditContext, audit_record
from cases.models import Viewing

TABLES = [AuditEvent._meta.db_table, AuditSubjectLink._meta.db_table]


@pytest.fixture
def event(alice):
    with transaction.atomic():
        return audit_record(ctx=AuditContext(actor=alice), action="case.read", subject_ids=[7], payload={"a": 1})


def raw(sql, params=()):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_raw_sql_cannot_update_an_event(event):
    with pytest.raises(DatabaseError, match="append-only"):
        raw(f"UPDATE {TABLES[0]} SET action = 'case.create' WHERE id = %s", [event.pk])
    event.refresh_from_db()
    assert event.action == "case.read"


def test_raw_sql_cannot_delete_an_event(event):
    with pytest.raises(DatabaseError, match="append-only"):
        raw(f"DELETE FROM {TABLES[0]} WHERE id = %s", [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize("table", TABLES)
def test_raw_sql_cannot_delete_every_row(event, table):
    with pytest.raises(DatabaseError, match="append-only"):
        raw(f"DELETE FROM {table}")
    assert AuditEvent.objects.count() == 1 and AuditSubjectLink.objects.count() == 1


def test_the_orm_cannot_delete_or_update_either(event):
    with pytest.raises(DatabaseError):
        with transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).update(outcome="failed")
    with pytest.raises(DatabaseError):
        with transaction.atomic():
            AuditSubjectLink.objects.all().delete()


def test_viewings_cannot_be_edited_or_deleted(alice, north_case, jane_profile):
    from django.utils import timezone

    now = timezone.now()
    viewing = Viewing.objects.create(
        case=north_case,
        profile=jane_profile,
        subject=jane_profile.subject,
        practitioner=alice,
        viewed_at=now,
        recorded_at=now,
        purpose="safeguarding_assessment",
        justification="j",
        access_method="logged_out_public",
        interaction="none",
    )
    with pytest.raises(DatabaseError, match="append-only"):
        raw(f"UPDATE {Viewing._meta.db_table} SET justification = 'rewritten' WHERE id = %s", [viewing.pk])
    with pytest.raises(DatabaseError, match="append-only"):
        raw(f"DELETE FROM {Viewing._meta.db_table}")
    viewing.refresh_from_db()
    assert viewing.justification == "j"


@pytest.mark.postgres
@pytest.mark.parametrize("table", TABLES + [Viewing._meta.db_table])
def test_truncate_is_rejected_on_postgresql(event, table):
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            # Run the deferred foreign-key checks of this test's inserts first; PostgreSQL
            # refuses TRUNCATE while they are pending, which would hide what is tested here.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f'TRUNCATE "{table}" CASCADE')
    assert AuditEvent.objects.count() == 1


@pytest.mark.postgres
def test_a_replica_session_role_does_not_skip_the_protection(event):
    """Triggers that fire ALWAYS still fire when session_replication_role is replica
    (which disables ordinary triggers, e.g. during logical replication)."""
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(f"DELETE FROM {TABLES[0]} WHERE id = %s", [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.postgres
def test_the_triggers_are_installed_as_always(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal AND c.relname = ANY(%s)",
            [TABLES + [Viewing._meta.db_table]],
        )
        rows = cursor.fetchall()
    assert len(rows) == 6
    assert {enabled for _table, _name, enabled in rows} == {"A"}
