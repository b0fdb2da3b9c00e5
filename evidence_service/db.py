"""Reading and writing rows on the request path without building a query each time.

Building a query with the ORM costs far more than running a small one, and logging a
viewing (most of the service's traffic) needs a dozen small ones; bench/load.py measures
the difference. So:

- ``insert`` does what ``Model.objects.create`` does (each field's ``pre_save`` and
  database preparation, the primary key read back) with an INSERT statement prepared once
  per model. It sends no model signals; the project uses none.
- ``select`` runs a hand-written ``FROM ... WHERE ...`` for every column of a model and
  returns model instances with values converted as the ORM would (time zones, JSON).
- ``cursor`` gives the cursor both use. On PostgreSQL it binds parameters on the server
  and each statement is prepared once per connection, because planning the same small
  statement again and again is most of the database's work for a viewing (the ORM's own
  cursor binds on the client, so nothing it sends is prepared). Behind a connection pooler
  that does not keep sessions (PgBouncer in transaction mode), set
  ``DATABASE_PREPARED_STATEMENTS=0``. Its timestamps are read by psycopg's own loader
  (compiled, with psycopg's binary package) rather than the pure-Python one Django puts in
  its place, when the two give the same values: the session's time zone is the one Django
  uses (UTC). Reading a person's recent looks reads a timestamp per look.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from django.conf import settings
from django.db import connection, models

#: Prepare a statement on its second run on a connection (psycopg's prepare threshold).
PREPARE_AFTER = 1


@contextmanager
def cursor() -> Iterator:
    """A cursor on the default connection, wrapped as Django wraps its own (so query
    logging and execute wrappers see every statement)."""
    if connection.vendor != "postgresql":
        with connection.cursor() as plain:
            yield plain
        return
    if not settings.DATABASE_PREPARED_STATEMENTS:
        with connection.cursor() as plain:
            _psycopg_timestamps(plain.cursor)
            yield plain
        return
    from django.db.backends.postgresql.base import ServerBindingCursor

    # As Django's own cursors do: a connection kept from an earlier request is checked first
    # (CONN_HEALTH_CHECKS), so a database restart costs no request an error.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw_connection = connection.connection
    if raw_connection.prepare_threshold is None:  # Django turns preparing off; these statements may
        raw_connection.prepare_threshold = PREPARE_AFTER
    bound = ServerBindingCursor(raw_connection)
    _psycopg_timestamps(bound, built_here=True)
    wrapped = connection.make_debug_cursor(bound) if connection.queries_logged else connection.make_cursor(bound)
    with wrapped:
        yield wrapped


def _psycopg_timestamps(db_cursor, *, built_here: bool = False) -> None:
    """Read ``timestamptz`` values on ``db_cursor`` with psycopg's default loader when it
    gives what Django's would: aware datetimes in UTC (``datetime.timezone.utc``). Django
    replaces it on every connection with a Python subclass, in order to set the time zone
    of Django's connection; with the session in that time zone already, the values are the
    same, read several times faster. Otherwise Django's loader stays: for a cursor
    ``built_here`` (not by Django's ``create_cursor``), set up as Django sets up its own.
    Checked for each cursor, as the session's time zone (SET TIME ZONE) and Django's
    (settings changed in tests) can change: reading the session's is a libpq lookup."""
    from psycopg.pq import Format

    raw_connection = db_cursor.connection
    if settings.USE_TZ and raw_connection.info.timezone == connection.timezone:
        db_cursor.adapters.register_loader("timestamptz", _default_loader("timestamptz", Format.TEXT))
    elif built_here:
        from django.db.backends.postgresql.psycopg_any import register_tzloader

        loader = raw_connection.adapters.get_loader(raw_connection.adapters.types["timestamptz"].oid, Format.TEXT)
        if connection.timezone != getattr(loader, "timezone", None):
            register_tzloader(connection.timezone, db_cursor)


@cache
def _default_loader(type_name: str, format):
    import psycopg

    return psycopg.adapters.get_loader(psycopg.adapters.types[type_name].oid, format)


@cache
def _insert_statement(
    model: type[models.Model], vendor: str, rows: int, computed: tuple[tuple[str, str], ...] = ()
) -> tuple[str, tuple[models.Field, ...]]:
    """``INSERT`` of ``rows`` rows of every column but the key, returning the key, with a
    parameter for each value but those ``computed`` (attribute name, SQL expression)."""
    meta = model._meta
    fields = tuple(field for field in meta.concrete_fields if not field.primary_key)
    quote = connection.ops.quote_name
    expressions = dict(computed)
    row = "(" + ", ".join(expressions.get(field.attname, "%s") for field in fields) + ")"
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES {', '.join([row] * rows)} RETURNING {quote(meta.pk.column)}"
    )
    return sql, fields


@cache
def _select_list(model: type[models.Model], vendor: str, alias: str, only: tuple[str, ...] | None = None):
    quote = connection.ops.quote_name
    fields = model._meta.concrete_fields if only is None else [model._meta.get_field(name) for name in only]
    columns = ", ".join(f"{alias}.{quote(field.column)}" for field in fields)
    converters = []
    for position, field in enumerate(fields):
        column = field.get_col(alias)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((position, found, column))
    return columns, tuple(field.attname for field in fields), tuple(converters)


def _rows(model, alias, only, from_where, params, extra) -> tuple[tuple[str, ...], list[list]]:
    columns, names, converters = _select_list(model, connection.vendor, alias, only)
    more = "".join(f", {expression}" for expression in (extra or {}).values())
    with cursor() as db:
        # As for the ORM's raw queries: each parameter prepared for the database by its
        # type (on SQLite, an aware datetime becomes UTC text, as stored).
        db.execute(f"SELECT {columns}{more} {from_where}", [connection.ops.adapt_unknown_value(p) for p in params])
        rows = [list(row) for row in db.fetchall()]
    for values in rows:
        for position, found, column in converters:
            for converter in found:
                values[position] = converter(values[position], column, connection)
    return names, rows


def select(
    model: type[models.Model], alias: str, from_where: str, params: list, extra: dict[str, str] | None = None
) -> list:
    """Instances of ``model`` from ``SELECT <every column of alias> <from_where>``, where
    ``from_where`` names the model's table as ``alias``. ``extra`` maps attribute names to
    further SQL expressions (integers or text: their values are not converted)."""
    names, rows = _rows(model, alias, None, from_where, params, extra)
    instances = []
    width = len(names)
    for row in rows:
        instance = model.from_db(connection.alias, names, row[:width])
        for name, value in zip(extra or {}, row[width:], strict=True):
            setattr(instance, name, value)
        instances.append(instance)
    return instances


def select_joined(
    parts: list[tuple[type[models.Model], str]], from_where: str, params: list, extra: tuple[str, ...] = ()
) -> list[tuple]:
    """For each row of ``SELECT <every column of each (model, alias)> <from_where>``, a
    tuple of instances, one per part; a part whose primary key is NULL (an outer join that
    found nothing) is None. One statement where the ORM would need one per model. ``extra``
    SQL expressions are selected after the parts and their values (not converted) follow
    the instances in each tuple."""
    lists = [_select_list(model, connection.vendor, alias) for model, alias in parts]
    more = "".join(f", {expression}" for expression in extra)
    with cursor() as db:
        db.execute(
            f"SELECT {', '.join(columns for columns, _names, _converters in lists)}{more} {from_where}",
            [connection.ops.adapt_unknown_value(p) for p in params],
        )
        rows = db.fetchall()
    found = []
    for row in rows:
        instances, start = [], 0
        for (model, _alias), (_columns, names, converters) in zip(parts, lists, strict=True):
            values = list(row[start : start + len(names)])
            start += len(names)
            if values[names.index(model._meta.pk.attname)] is None:
                instances.append(None)
                continue
            for position, convert, column in converters:
                for converter in convert:
                    values[position] = converter(values[position], column, connection)
            instances.append(model.from_db(connection.alias, names, values))
        found.append((*instances, *row[start:]))
    return found


def select_values(
    model: type[models.Model],
    alias: str,
    fields: tuple[str, ...],
    from_where: str,
    params: list,
    extra: dict[str, str] | None = None,
) -> list[list]:
    """Rows of ``fields`` of ``model`` (converted as the ORM would), then of the ``extra``
    expressions (not converted), without making model instances: for reads of many rows."""
    return _rows(model, alias, fields, from_where, params, extra)[1]


#: Most rows sent in one INSERT (PostgreSQL binds at most 65,535 parameters a statement).
MAX_ROWS = 500


def _batches(count: int) -> list[int]:
    """Row counts to send ``count`` rows in: full batches, then powers of two, so that
    only a few statements per model are ever prepared."""
    sizes = [MAX_ROWS] * (count // MAX_ROWS)
    rest = count % MAX_ROWS
    while rest:
        size = 1 << (rest.bit_length() - 1)
        sizes.append(size)
        rest -= size
    return sizes


def insert(*instances: models.Model) -> None:
    """Insert new instances of one model (in as few statements as the limits allow) and
    set their primary keys."""
    if not instances:
        return
    model = type(instances[0])
    for instance in instances:
        if type(instance) is not model or not instance._state.adding:
            raise ValueError("insert() takes new instances of one model")
    if not connection.features.can_return_rows_from_bulk_insert:  # SQLite before 3.35
        for instance in instances:
            instance.save(force_insert=True)
        return
    start = 0
    for size in _batches(len(instances)):
        batch = instances[start : start + size]
        start += size
        sql, fields = _insert_statement(model, connection.vendor, size)
        params = []
        for instance in batch:
            params.extend(field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields)
        with cursor() as db:
            db.execute(sql, params)
            keys = [row[0] for row in db.fetchall()]
        for instance, key in zip(batch, keys, strict=True):
            instance.pk = key
            instance._state.adding = False
            instance._state.db = connection.alias


def insert_with_links(
    instance: models.Model,
    link_model: type[models.Model],
    link_field: str,
    values: list,
    *,
    before: models.Model | None = None,
    key_into: str = "",
) -> None:
    """Insert a new ``instance`` and, for each of ``values`` (integers), a ``link_model``
    row pointing at it through its foreign key and holding the value in ``link_field``
    (e.g. an audit event and the people it touched). ``before``, a new instance of another
    model, is inserted first; with ``key_into``, its primary key, as text, becomes
    ``instance``'s ``key_into`` field (e.g. a viewing, then the audit event that records it).
    On PostgreSQL one statement, whatever the number of links; elsewhere one ``insert`` each.
    The links' own keys are not read back."""
    model = type(instance)
    foreign_key = next(
        field for field in link_model._meta.concrete_fields if field.is_relation and field.related_model is model
    )
    value_field = link_model._meta.get_field(link_field)
    for new in (instance, before):
        if new is not None and not new._state.adding:
            raise ValueError("insert_with_links() takes new instances")
    if connection.vendor != "postgresql":
        if before is not None:
            insert(before)
            if key_into:
                setattr(instance, key_into, str(before.pk))
        insert(instance)
        insert(*[link_model(**{foreign_key.attname: instance.pk, value_field.attname: value}) for value in values])
        return
    quote = connection.ops.quote_name
    key = quote(model._meta.pk.column)
    parts, params = [], []
    if before is not None:
        before_sql, before_fields = _insert_statement(type(before), connection.vendor, 1)
        parts.append(f"first AS ({before_sql})")
        params += [field.get_db_prep_save(field.pre_save(before, True), connection) for field in before_fields]
        # The first row's key, read from its RETURNING, in place of the field's parameter.
        computed = {key_into: f"(SELECT {quote(type(before)._meta.pk.column)} FROM first)::text"} if key_into else {}
    else:
        computed = {}
    sql, fields = _insert_statement(model, connection.vendor, 1, tuple(computed.items()))
    parts.append(f"parent AS ({sql})")
    params += [
        field.get_db_prep_save(field.pre_save(instance, True), connection)
        for field in fields
        if field.attname not in computed
    ]
    if values:
        parts.append(
            f"links AS (INSERT INTO {quote(link_model._meta.db_table)} "
            f"({quote(foreign_key.column)}, {quote(value_field.column)}) "
            f"SELECT parent.{key}, link.value FROM parent, "
            "unnest(%s::bigint[]) WITH ORDINALITY AS link(value, position) ORDER BY link.position)"
        )
        params.append([int(value) for value in values])
    returned = f"parent.{key}" + (f", first.{quote(type(before)._meta.pk.column)}" if before is not None else "")
    with cursor() as db:
        db.execute(
            f"WITH {', '.join(parts)} SELECT {returned} FROM parent{', first' if before is not None else ''}", params
        )
        row = db.fetchone()
    if before is not None:
        before.pk = row[1]
        before._state.adding = False
        before._state.db = connection.alias
        if key_into:
            setattr(instance, key_into, str(before.pk))
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = connection.alias
