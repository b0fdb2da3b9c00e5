"""Database-level protection that makes tables append-only.

On PostgreSQL a trigger rejects every UPDATE and DELETE row by row, and another rejects
TRUNCATE; both are set to fire ALWAYS, so a session running with
``session_replication_role = replica`` does not skip them. On SQLite, BEFORE UPDATE and
BEFORE DELETE triggers abort the statement (SQLite has no TRUNCATE; a DELETE without a
WHERE clause fires the trigger too). Only someone who can drop triggers (a database
superuser) can get round this, and the tamper-evident Merkle log exists for that case.

The table owner can still switch triggers off, so in production the service should run
as a role that does not own the tables: ``manage.py grant_runtime_role ROLE`` (run as the
owner, after migrating) gives such a role SELECT and INSERT only on these tables.

Caution for future migrations: when Django rebuilds a SQLite table (some ALTERs), the
triggers are dropped with the old table; such a migration must call ``protect`` again.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

#: Every append-only model (the migrations install the protection table by table).
APPEND_ONLY_MODELS = (
    "audit.AuditEvent",
    "audit.AuditSubjectLink",
    "audit.AuditLeaf",
    "audit.AuditTreeNode",
    "audit.AuditCheckpoint",
    "cases.Viewing",
    "detection.DetectionPolicy",
    "detection.FlagViewing",
)

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION case_evidence_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
"""


def protect_sql(vendor: str, table: str) -> list[str]:
    if vendor == "postgresql":
        return [
            PG_FUNCTION,
            f'DROP TRIGGER IF EXISTS "{table}_append_only" ON "{table}";',
            f'DROP TRIGGER IF EXISTS "{table}_no_truncate" ON "{table}";',
            f'CREATE TRIGGER "{table}_append_only" BEFORE UPDATE OR DELETE ON "{table}" '
            "FOR EACH ROW EXECUTE FUNCTION case_evidence_reject_change();",
            f'CREATE TRIGGER "{table}_no_truncate" BEFORE TRUNCATE ON "{table}" '
            "FOR EACH STATEMENT EXECUTE FUNCTION case_evidence_reject_change();",
            f'ALTER TABLE "{table}" ENABLE ALWAYS TRIGGER "{table}_append_only";',
            f'ALTER TABLE "{table}" ENABLE ALWAYS TRIGGER "{table}_no_truncate";',
        ]
    if vendor == "sqlite":
        statements = []
        for operation in ("UPDATE", "DELETE"):
            name = f"{table}_no_{operation.lower()}"
            statements += [
                f'DROP TRIGGER IF EXISTS "{name}";',
                f'CREATE TRIGGER "{name}" BEFORE {operation} ON "{table}" BEGIN '
                f"SELECT RAISE(ABORT, 'table {table} is append-only: {operation} is not allowed'); END;",
            ]
        return statements
    raise NotImplementedError(f"append-only protection is not implemented for {vendor}")


def protect(connection: BaseDatabaseWrapper, *tables: str) -> None:
    with connection.cursor() as cursor:
        for table in tables:
            for statement in protect_sql(connection.vendor, table):
                cursor.execute(statement)


def protect_models(*models):
    """A ``RunPython`` forward function that protects the given models' tables."""

    def forward(apps, schema_editor):
        tables = [apps.get_model(label)._meta.db_table for label in models]
        protect(schema_editor.connection, *tables)

    return forward
