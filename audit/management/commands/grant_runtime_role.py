"""python manage.py grant_runtime_role ROLE   (PostgreSQL; run as the tables' owner)

Gives the role the service runs as exactly what it needs: SELECT and INSERT on the
append-only tables (audit log, Merkle tree, checkpoints, viewings), full row access on the
others, and the sequences. A role that does not own the tables cannot switch their
triggers off or ALTER them, so the append-only protection then holds against the
service's own database credentials too. Run it again after each migration."""

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from psycopg import sql

from audit.append_only import APPEND_ONLY_MODELS


class Command(BaseCommand):
    help = "Grant a non-owner PostgreSQL role the privileges the service needs (append-only where it must be)."

    def add_arguments(self, parser):
        parser.add_argument("role")

    def handle(self, *args, role, **options):
        if connection.vendor != "postgresql":
            raise CommandError("grant_runtime_role is for PostgreSQL.")
        append_only = {apps.get_model(label)._meta.db_table for label in APPEND_ONLY_MODELS}
        tables = sorted({model._meta.db_table for model in apps.get_models(include_auto_created=True)})
        existing = set(connection.introspection.table_names())
        grantee = sql.Identifier(role)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            if cursor.fetchone() is None:
                raise CommandError(f"There is no role {role!r}; create it first (CREATE ROLE ... LOGIN PASSWORD ...).")
            cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(grantee))
            for table in tables:
                if table not in existing:
                    continue
                privileges = "SELECT, INSERT" if table in append_only else "SELECT, INSERT, UPDATE, DELETE"
                cursor.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), grantee))
                cursor.execute(sql.SQL("GRANT " + privileges + " ON {} TO {}").format(sql.Identifier(table), grantee))
            cursor.execute(sql.SQL("GRANT SELECT ON django_migrations TO {}").format(grantee))
            cursor.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(grantee))
        self.stdout.write(
            self.style.SUCCESS(
                f"{role}: SELECT, INSERT only on {len(append_only)} append-only tables; "
                f"full row access on the other {len(existing & set(tables)) - len(append_only)}."
            )
        )
