"""Index changes for migrations that must not stall the service: the viewing and audit tables
grow without end and every request writes to them.

- Creating an index on PostgreSQL is done ``CONCURRENTLY`` (writes go on meanwhile), which
  needs a migration with ``atomic = False``; dropping one takes only a brief lock.
- Turning off a foreign key's own index goes through ``SeparateDatabaseAndState``: Django's
  ``AlterField`` would drop and re-add the foreign key (checking every row under lock) and,
  on SQLite, rebuild the table.
"""

from __future__ import annotations

from django.db import models
from django.db.migrations import RunPython


def _add(schema_editor, model, index: models.Index) -> None:
    if schema_editor.connection.vendor == "postgresql":
        # An interrupted earlier run can leave an invalid index of that name behind.
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(index.name)}")
        schema_editor.add_index(model, index, concurrently=True)
    else:
        schema_editor.add_index(model, index)


def _remove(schema_editor, model, index: models.Index) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(model, index, concurrently=True)
    else:
        schema_editor.remove_index(model, index)


def replace_index(label: str, old: models.Index | None, new: models.Index | None) -> RunPython:
    """Create ``new`` and then drop ``old`` (either may be None) without blocking writes.
    The database side only: pair it with the state's ``AddIndex``/``RemoveIndex``."""

    def forward(apps, schema_editor):
        model = apps.get_model(label)
        if new is not None:
            _add(schema_editor, model, new)
        if old is not None:
            _remove(schema_editor, model, old)

    def reverse(apps, schema_editor):
        model = apps.get_model(label)
        if old is not None:
            _add(schema_editor, model, old)
        if new is not None:
            _remove(schema_editor, model, new)

    return RunPython(forward, reverse)


def drop_column_indexes(label: str, columns: list[str], keep: tuple[str, ...] = ()) -> RunPython:
    """Drop the single-column indexes Django made for these foreign key columns (and only
    those: not the foreign keys, nor the indexes that lead with the column, nor those named
    in ``keep``). The database side only: pair it with the state's
    ``AlterField(..., db_index=False)``. In a migration with ``atomic = False`` on
    PostgreSQL, both ways run ``CONCURRENTLY``: without the lock that would queue every
    read and write of the table behind any transaction still using it."""

    def concurrently(schema_editor) -> dict:
        if schema_editor.connection.vendor == "postgresql" and not schema_editor.atomic_migration:
            return {"concurrently": True}
        return {}

    def forward(apps, schema_editor):
        model = apps.get_model(label)
        for column in columns:
            for name in schema_editor._constraint_names(
                model, [column], index=True, unique=False, primary_key=False, exclude=set(keep)
            ):
                schema_editor.execute(schema_editor._delete_index_sql(model, name, **concurrently(schema_editor)))

    def reverse(apps, schema_editor):
        model = apps.get_model(label)
        for column in columns:
            field = next(field for field in model._meta.concrete_fields if field.column == column)
            schema_editor.execute(schema_editor._create_index_sql(model, fields=[field], **concurrently(schema_editor)))

    return RunPython(forward, reverse)
