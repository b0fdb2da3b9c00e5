"""The test harness's hold on the database: how ``transaction=True`` tests are cleaned up
after, and how the suite runs as the service's non-owner runtime role.

Emptying the database. Django empties it after each ``transaction=True`` test with
``manage.py flush`` (a TRUNCATE on PostgreSQL, DELETEs on SQLite), which the append-only
tables rightly refuse (audit/append_only.py). So the harness replaces that step for the
test run only: as the tables' owner, in ONE transaction, it drops the append-only
triggers (of the tables with rows), empties every table, puts back the rows the migrations seeded (the log's state,
the first detection policy, content types and permissions) and installs the triggers again
with ``audit.append_only.protect``, the function the migrations use. Another session never
sees the tables unprotected (PostgreSQL's and SQLite's DDL is transactional), and nothing
in the service's own code offers a way round the protection: this module lives in tests/
and is wired in by tests/conftest.py alone. (Dropping a trigger is what any table owner
can do; that is why the service runs as a role that does not own the tables.)

The runtime role. With ``CES_TEST_RUNTIME_ROLE=1`` (PostgreSQL only) the test database is
created and migrated by the owner (the ``DATABASE_URL`` user) as usual; then the login role
``ces_runtime_login_test`` is created if it does not exist (roles are cluster-wide; creating
it again is harmless), ``grant_runtime_role`` gives it what the service gets in production,
and every connection the tests open from then on is that role's. Only this harness keeps
the owner's credentials, to empty the tables between transactional tests and to drop the
test database at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from django.apps import apps
from django.core.management import call_command
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from audit.append_only import APPEND_ONLY_MODELS, protect

RUNTIME_ROLE_ENV = "CES_TEST_RUNTIME_ROLE"
#: A login role of the tests' own (distinct from tests/audit/test_runtime_role.py's NOLOGIN
#: role), so that a run never changes a role a deployment uses.
RUNTIME_ROLE = "ces_runtime_login_test"
#: The copies of the rows the migrations seeded, kept beside the tables they came from.
SEED_PREFIX = "test_seed_"

# The owner's credentials, per database alias, while the tests connect as the runtime role.
_owner_credentials: dict[str, dict[str, str]] = {}
# The tables that had rows once migrated, per alias, and so have a seed copy.
_seeded: dict[str, list[str]] = {}


def runtime_role_requested() -> bool:
    value = os.environ.get(RUNTIME_ROLE_ENV, "")
    if value not in ("", "0", "1"):
        raise ValueError(f"{RUNTIME_ROLE_ENV} must be 1 or 0, not {value!r}")
    return value == "1"


def append_only_tables() -> list[str]:
    return [apps.get_model(label)._meta.db_table for label in APPEND_ONLY_MODELS]


def _lift_sql(vendor: str, table: str) -> list[str]:
    """Drop the triggers ``protect_sql`` installs on ``table``."""
    if vendor == "postgresql":
        return [
            f'DROP TRIGGER IF EXISTS "{table}_append_only" ON "{table}"',
            f'DROP TRIGGER IF EXISTS "{table}_no_truncate" ON "{table}"',
        ]
    return [f'DROP TRIGGER IF EXISTS "{table}_no_update"', f'DROP TRIGGER IF EXISTS "{table}_no_delete"']


@contextmanager
def _as_owner(alias: str) -> Iterator[BaseDatabaseWrapper]:
    """A connection as the tables' owner, in a transaction that commits when the block
    ends: the tests' own connection, or, while they run as the runtime role, a separate
    one with the owner's credentials."""
    connection = connections[alias]
    if alias not in _owner_credentials:
        with transaction.atomic(using=alias):
            yield connection
        return
    owner = connection.__class__({**connection.settings_dict, **_owner_credentials[alias]}, alias=f"{alias}-owner")
    try:
        owner.set_autocommit(False)
        try:
            yield owner
            owner.commit()
        except BaseException:
            owner.rollback()
            raise
    finally:
        owner.close()


def snapshot_seeds(alias: str = "default") -> None:
    """Copy the rows the migrations left (run once the test database is migrated)."""
    connection = connections[alias]
    seeded = []
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        for table in connection.introspection.django_table_names(only_existing=True, include_views=False):
            copy = connection.ops.quote_name(SEED_PREFIX + table)
            cursor.execute(f"DROP TABLE IF EXISTS {copy}")
            cursor.execute(f"SELECT 1 FROM {connection.ops.quote_name(table)} LIMIT 1")
            if cursor.fetchone() is not None:
                cursor.execute(f"CREATE TABLE {copy} AS SELECT * FROM {connection.ops.quote_name(table)}")
                seeded.append(table)
    _seeded[alias] = seeded


def empty_database(alias: str = "default") -> None:
    """Empty every table as the owner, the seeded rows put back, the append-only
    protection lifted and reinstalled inside the same transaction. Only the tables with
    rows are touched (DELETE, which on small tables is much cheaper than TRUNCATE)."""
    with _as_owner(alias) as owner:
        vendor, quote = owner.vendor, owner.ops.quote_name
        tables = owner.introspection.django_table_names(only_existing=True, include_views=False)
        with owner.cursor() as cursor:
            if vendor == "postgresql":
                # Never wait for ever on a session a test left inside a transaction.
                cursor.execute("SET LOCAL lock_timeout = '15s'")
            cursor.execute(
                " UNION ALL ".join(f"SELECT '{table}' WHERE EXISTS (SELECT 1 FROM {quote(table)})" for table in tables)
            )
            filled = [table for (table,) in cursor.fetchall()]
            protected = [table for table in append_only_tables() if table in filled]
            for table in protected:
                for statement in _lift_sql(vendor, table):
                    cursor.execute(statement)
            for table in filled:
                cursor.execute(f"DELETE FROM {quote(table)}")
            for table in _seeded.get(alias, []):
                cursor.execute(f"INSERT INTO {quote(table)} SELECT * FROM {quote(SEED_PREFIX + table)}")
            if vendor == "postgresql":
                # The deferred foreign-key checks run now: a trigger cannot be created on a
                # table with checks still pending.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        protect(owner, *protected)


def fixture_teardown(test_case) -> None:
    """Replaces ``TransactionTestCase._fixture_teardown`` (Django's flush) in the tests."""
    for alias in test_case._databases_names(include_mirrors=False):
        empty_database(alias)


def connect_as_runtime_role() -> str:
    """Create the runtime login role if need be, grant it what ``grant_runtime_role``
    grants (on the test database), and make every later connection that role's."""
    alias = "default"  # grant_runtime_role works on the default database
    connection = connections[alias]
    if connection.vendor != "postgresql":
        raise RuntimeError(f"{RUNTIME_ROLE_ENV}=1 needs PostgreSQL (set DATABASE_URL)")
    with connection.cursor() as cursor:
        cursor.execute(
            f"DO $$ BEGIN CREATE ROLE {RUNTIME_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
        cursor.execute(f"ALTER ROLE {RUNTIME_ROLE} LOGIN")
    call_command("grant_runtime_role", RUNTIME_ROLE, verbosity=0)
    settings_dict = connection.settings_dict
    _owner_credentials[alias] = {"USER": settings_dict["USER"], "PASSWORD": settings_dict["PASSWORD"]}
    connections.close_all()
    settings_dict.update(USER=RUNTIME_ROLE, PASSWORD="")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        user, superuser = cursor.fetchone()
    if user != RUNTIME_ROLE or superuser:
        raise RuntimeError(f"the tests should connect as the non-superuser {RUNTIME_ROLE}, not {user}")
    return RUNTIME_ROLE


def connect_as_owner(alias: str = "default") -> None:
    """Back to the owner's credentials (before the test database is dropped)."""
    credentials = _owner_credentials.pop(alias, None)
    if credentials is not None:
        connections.close_all()
        connections[alias].settings_dict.update(credentials)
