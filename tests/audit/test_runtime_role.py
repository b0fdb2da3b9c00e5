"""With the service running as a role that does not own the tables, even raw SQL and
ALTER TABLE cannot get round the append-only protection."""

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from audit.services import AuditContext, audit_record

ROLE = "ces_runtime_test"


@pytest.fixture
def runtime_role(_postgres_only):
    with connection.cursor() as cursor:
        cursor.execute(f"DO $$ BEGIN CREATE ROLE {ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    call_command("grant_runtime_role", ROLE)
    return ROLE


def as_role(role, statement, params=()):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {role}")
        cursor.execute(statement, params)


@pytest.mark.postgres
def test_the_runtime_role_may_append_but_not_rewrite_or_unprotect(runtime_role):
    with transaction.atomic():
        event = audit_record(ctx=AuditContext.command("test"), action="case.read")
    as_role(runtime_role, "SELECT count(*) FROM audit_auditevent")
    as_role(
        runtime_role,
        "INSERT INTO audit_auditevent (occurred_at, actor_username, actor_role, action, outcome, target_type,"
        " target_id, user_agent, request_id, payload) VALUES (now(), '', '', 'case.read', 'success', '', '', '',"
        " '', '{}')",
    )
    for statement in (
        "UPDATE audit_auditevent SET action = 'x.y'",
        "DELETE FROM audit_auditleaf",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER USER",
        "ALTER TABLE cases_viewing DISABLE TRIGGER ALL",
        "TRUNCATE audit_auditcheckpoint",
    ):
        with pytest.raises(DatabaseError, match="permission denied|must be owner"):
            as_role(runtime_role, statement)
    assert AuditEvent.objects.get(pk=event.pk).action == "case.read"
    # Ordinary tables stay writable.
    as_role(runtime_role, "UPDATE cases_case SET title = title")


@pytest.mark.postgres
def test_the_runtime_role_may_record_that_beat_ran_and_read_the_health_of_the_log(runtime_role):
    """The worker records the heartbeat /healthz reads (audit/health.py), as the runtime role."""
    as_role(runtime_role, "INSERT INTO audit_heartbeat (name, at) VALUES ('beat', now())")
    as_role(runtime_role, "UPDATE audit_heartbeat SET at = now() WHERE name = 'beat'")
    as_role(runtime_role, "SELECT max_event_id, scan_from_event_id FROM audit_auditlogstate WHERE id = 1")
