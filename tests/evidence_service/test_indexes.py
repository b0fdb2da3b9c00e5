"""The indexes the write-heavy tables carry in the database are the ones the models
declare, and no more: every index is paid for by every insert."""

import pytest
from django.db import connection

from cases.models import Viewing
from detection.models import FlagRecipient, FlagViewing


def _indexes(model) -> dict[str, tuple[list[str], bool]]:
    """Each non-primary index of the model's table: its columns and whether it is unique."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {
        name: (info["columns"], info["unique"])
        for name, info in found.items()
        if (info["index"] or info["unique"]) and not info["primary_key"] and not info.get("foreign_key")
    }


def _by_columns(model) -> list[tuple[str, ...]]:
    return sorted(tuple(columns) for columns, _unique in _indexes(model).values())


@pytest.mark.django_db
def test_a_viewing_s_authorisation_and_consent_are_indexed_only_where_set():
    indexes = _indexes(Viewing)
    assert indexes["viewing_authorisation"] == (["authorisation_id"], False)
    assert indexes["viewing_consent"] == (["consent_id"], False)
    # No other index leads with either column.
    assert [columns for columns in _by_columns(Viewing) if columns[0] in ("authorisation_id", "consent_id")] == [
        ("authorisation_id",),
        ("consent_id",),
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname IN (%s, %s)",
                [Viewing._meta.db_table, "viewing_authorisation", "viewing_consent"],
            )
        else:
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND name IN (%s, %s)",
                [Viewing._meta.db_table, "viewing_authorisation", "viewing_consent"],
            )
        definitions = dict(cursor.fetchall())
    assert "authorisation_id" in definitions["viewing_authorisation"].split("WHERE")[1]
    assert "IS NOT NULL" in definitions["viewing_authorisation"]
    assert "consent_id" in definitions["viewing_consent"].split("WHERE")[1]
    assert "IS NOT NULL" in definitions["viewing_consent"]


@pytest.mark.django_db
def test_a_flag_s_links_and_recipients_are_found_by_flag_through_their_unique_index():
    for model, other in ((FlagViewing, "viewing_id"), (FlagRecipient, "officer_id")):
        assert _by_columns(model).count(("flag_id",)) == 0, model.__name__
        assert (["flag_id", other], True) in _indexes(model).values(), model.__name__


@pytest.mark.postgres
def test_on_postgresql_a_lookup_by_authorisation_or_consent_uses_its_partial_index(_postgres_only):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for column, index in (("authorisation_id", "viewing_authorisation"), ("consent_id", "viewing_consent")):
            # As the ORM sends it, and as a prepared statement's generic plan sees it.
            cursor.execute(f"EXPLAIN SELECT id FROM cases_viewing WHERE {column} = %s", [7])
            assert index in " ".join(row[0] for row in cursor.fetchall()), column
            cursor.execute(f"PREPARE by_column(bigint) AS SELECT id FROM cases_viewing WHERE {column} = $1")
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            cursor.execute("EXPLAIN EXECUTE by_column(7)")
            assert index in " ".join(row[0] for row in cursor.fetchall()), column
            cursor.execute("DEALLOCATE by_column")
            cursor.execute("RESET plan_cache_mode")
