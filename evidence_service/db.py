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
from datetime import datetime
from functools import cache

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction

#: Prepare a statement on its second run on a connection (psycopg's prepare threshold).
PREPARE_AFTER = 1


@contextmanager
def cursor() -> Iterator:
    """A cursor on the default connection, wrapped as Django wraps its own (so query
    logging and execute wrappers see every statement)."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        with db.cursor() as plain:
            yield plain
        return
    if not settings.DATABASE_PREPARED_STATEMENTS:
        with db.cursor() as plain:
            _psycopg_timestamps(plain.cursor)
            yield plain
        return
    # As Django's own cursors do: a connection kept from an earlier request is checked first
    # (CONN_HEALTH_CHECKS), so a database restart costs no request an error.
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    # In use further up (a read inside a read), or a connection shared between threads (as
    # in some tests): a cursor of its own.
    kept = None if db.allow_thread_sharing else _kept_cursor(db)
    if kept is None:
        with _bound_cursor(db) as bound, _wrapped(db, bound) as wrapped:
            yield wrapped
        return
    # Not closed on the way out (closing would end it): kept for the connection's next
    # statement. Its rows are read before the next statement runs on it; the last
    # statement's parameters and rows stay in this worker's memory until then, as the
    # request's own objects do until they are collected.
    db._kept_cursor_in_use = True
    try:
        yield _wrapped(db, kept)
    finally:
        db._kept_cursor_in_use = False


def _wrapped(db, bound):
    return db.make_debug_cursor(bound) if db.queries_logged else db.make_cursor(bound)


def _bound_cursor(db):
    """A cursor that binds parameters on the server, on ``db``'s open connection."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    raw_connection = db.connection
    if raw_connection.prepare_threshold is None:  # Django turns preparing off; these statements may
        raw_connection.prepare_threshold = PREPARE_AFTER
    bound = ServerBindingCursor(raw_connection)
    _psycopg_timestamps(bound, built_here=True, db=db)
    return bound


def _kept_cursor(db):
    """The cursor kept for ``db``'s connection, made on its first statement and again when
    the connection or a time zone it was set up for (the session's, Django's) changes; None
    while it is in use. Making a cursor (and choosing its timestamp loader) for every
    statement cost more than most of the statements it ran."""
    if getattr(db, "_kept_cursor_in_use", False):
        return None
    raw_connection = db.connection
    made_for = (raw_connection, settings.USE_TZ, raw_connection.info.timezone, db.timezone)
    kept = getattr(db, "_kept_cursor", None)
    if kept is None or kept[1].closed or not _same(kept[0], made_for):
        kept = (made_for, _bound_cursor(db))
        db._kept_cursor = kept
    return kept[1]


def _same(a: tuple, b: tuple) -> bool:
    return a[0] is b[0] and a[1:] == b[1:]


def _psycopg_timestamps(db_cursor, *, built_here: bool = False, db=None) -> None:
    """Read ``timestamptz`` values on ``db_cursor`` with psycopg's default loader when it
    gives what Django's would: aware datetimes in UTC (``datetime.timezone.utc``). Django
    replaces it on every connection with a Python subclass, in order to set the time zone
    of Django's connection; with the session in that time zone already, the values are the
    same, read several times faster. Otherwise Django's loader stays: for a cursor
    ``built_here`` (not by Django's ``create_cursor``), set up as Django sets up its own.
    Chosen for each cursor made; the kept cursor is made anew when either time zone changes
    (the session's by SET TIME ZONE, Django's by settings changed in tests)."""
    from psycopg.pq import Format

    db = db or connections[DEFAULT_DB_ALIAS]
    raw_connection = db_cursor.connection
    if settings.USE_TZ and raw_connection.info.timezone == db.timezone:
        db_cursor.adapters.register_loader("timestamptz", _default_loader("timestamptz", Format.TEXT))
    elif built_here:
        from django.db.backends.postgresql.psycopg_any import register_tzloader

        loader = raw_connection.adapters.get_loader(raw_connection.adapters.types["timestamptz"].oid, Format.TEXT)
        if db.timezone != getattr(loader, "timezone", None):
            register_tzloader(db.timezone, db_cursor)


@cache
def _default_loader(type_name: str, format):
    import psycopg

    return psycopg.adapters.get_loader(psycopg.adapters.types[type_name].oid, format)


@cache
def _insert_statement(
    model: type[models.Model], vendor: str, rows: int, computed: tuple[tuple[str, str], ...] = ()
) -> tuple[str, tuple[models.Field, ...]]:
    """``INSERT`` of ``rows`` rows of every column but the key, returning the key, with a
    parameter for each value but those ``computed`` (attribute name, SQL expression); and
    the fields whose values are the parameters, in order (for each row)."""
    meta = model._meta
    fields = tuple(field for field in meta.concrete_fields if not field.primary_key)
    quote = connection.ops.quote_name
    expressions = dict(computed)
    row = "(" + ", ".join(expressions.get(field.attname, "%s") for field in fields) + ")"
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES {', '.join([row] * rows)} RETURNING {quote(meta.pk.column)}"
    )
    return sql, tuple(field for field in fields if field.attname not in expressions)


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
    conn = connections[DEFAULT_DB_ALIAS]
    columns, names, converters = _select_list(model, conn.vendor, alias, only)
    more = "".join(f", {expression}" for expression in (extra or {}).values())
    with cursor() as db:
        # As for the ORM's raw queries: each parameter prepared for the database by its
        # type (on SQLite, an aware datetime becomes UTC text, as stored).
        db.execute(f"SELECT {columns}{more} {from_where}", [conn.ops.adapt_unknown_value(p) for p in params])
        rows = [list(row) for row in db.fetchall()]
    for values in rows:
        for position, found, column in converters:
            for converter in found:
                values[position] = converter(values[position], column, conn)
    return names, rows


def select(
    model: type[models.Model], alias: str, from_where: str, params: list, extra: dict[str, str] | None = None
) -> list:
    """Instances of ``model`` from ``SELECT <every column of alias> <from_where>``, where
    ``from_where`` names the model's table as ``alias``. ``extra`` maps attribute names to
    further SQL expressions (integers or text: their values are not converted)."""
    conn = connections[DEFAULT_DB_ALIAS]
    names, rows = _rows(model, alias, None, from_where, params, extra)
    instances = []
    width = len(names)
    for row in rows:
        instance = model.from_db(conn.alias, names, row[:width])
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
    conn = connections[DEFAULT_DB_ALIAS]
    lists = [_select_list(model, conn.vendor, alias) for model, alias in parts]
    more = "".join(f", {expression}" for expression in extra)
    with cursor() as db:
        db.execute(
            f"SELECT {', '.join(columns for columns, _names, _converters in lists)}{more} {from_where}",
            [conn.ops.adapt_unknown_value(p) for p in params],
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
                    values[position] = converter(values[position], column, conn)
            instances.append(model.from_db(conn.alias, names, values))
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


#: Django's own field types whose ``get_db_prep_save`` gives PostgreSQL a value of the exact
#: types listed as it is (``to_python`` and ``get_prep_value`` return such a value unchanged
#: and the backend adapts it to itself); an aware ``datetime`` likewise for ``DateTimeField``.
_SENT_AS_IS = {
    models.CharField: (str, type(None)),
    models.TextField: (str, type(None)),
    models.SlugField: (str, type(None)),
    models.EmailField: (str, type(None)),
    models.URLField: (str, type(None)),
    # Not the other integer fields: Django sends their values typed (psycopg's Int4, Int8).
    models.AutoField: (int, type(None)),
    models.BigAutoField: (int, type(None)),
    models.BooleanField: (bool, type(None)),
    models.DateTimeField: (datetime, type(None)),
}


def _sent_as_is(field: models.Field) -> tuple[type, ...]:
    """The exact types of value that ``field`` sends to PostgreSQL unchanged (a datetime
    only if aware), or () where its ``pre_save`` or preparation must run."""
    if type(field) in (models.ForeignKey, models.OneToOneField):
        return _sent_as_is(field.target_field)
    if type(field) is models.DateTimeField and (field.auto_now or field.auto_now_add):
        return ()
    return _SENT_AS_IS.get(type(field), ())


@cache
def _preparation(fields: tuple[models.Field, ...]) -> tuple[tuple[models.Field, str, tuple[type, ...]], ...]:
    return tuple((field, field.attname, _sent_as_is(field)) for field in fields)


def _values_to_save(instance: models.Model, fields: tuple[models.Field, ...], conn) -> list:
    """``field.get_db_prep_save(field.pre_save(instance, True), conn)`` for each field, as
    ``Model.save`` sends them, with the call left out where it would return the value
    unchanged (on PostgreSQL: a string of a text field, an integer key, an aware
    datetime...). A new instance's fields are many and mostly such; writing a viewing
    prepares some thirty."""
    if conn.vendor != "postgresql":
        return [field.get_db_prep_save(field.pre_save(instance, True), conn) for field in fields]
    state = instance.__dict__
    values = []
    for field, attname, as_is in _preparation(fields):
        value = state.get(attname, _MISSING)
        kind = type(value)
        if kind in as_is and (kind is not datetime or value.utcoffset() is not None):
            values.append(value)
        else:
            values.append(field.get_db_prep_save(field.pre_save(instance, True), conn))
    return values


_MISSING = object()


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
    conn = connections[DEFAULT_DB_ALIAS]
    if not instances:
        return
    model = type(instances[0])
    for instance in instances:
        if type(instance) is not model or not instance._state.adding:
            raise ValueError("insert() takes new instances of one model")
        # As save() does: a related object not yet saved is refused (it would be written
        # as NULL), and the key of one saved since it was assigned is taken up.
        instance._prepare_related_fields_for_save(operation_name="insert")
    if not conn.features.can_return_rows_from_bulk_insert:  # SQLite before 3.35
        for instance in instances:
            instance.save(force_insert=True)
        return
    start = 0
    for size in _batches(len(instances)):
        batch = instances[start : start + size]
        start += size
        sql, fields = _insert_statement(model, conn.vendor, size)
        params = []
        for instance in batch:
            params.extend(_values_to_save(instance, fields, conn))
        with cursor() as db:
            db.execute(sql, params)
            keys = [row[0] for row in db.fetchall()]
        for instance, key in zip(batch, keys, strict=True):
            instance.pk = key
            instance._state.adding = False
            instance._state.db = conn.alias


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
    conn = connections[DEFAULT_DB_ALIAS]
    model = type(instance)
    for new in (instance, before):
        if new is not None and not new._state.adding:
            raise ValueError("insert_with_links() takes new instances")
    if conn.vendor != "postgresql":
        foreign_key, value_field = _link_fields(model, link_model, link_field)
        if before is not None:
            insert(before)
            if key_into:
                setattr(instance, key_into, str(before.pk))
        insert(instance)
        insert(*[link_model(**{foreign_key.attname: instance.pk, value_field.attname: value}) for value in values])
        return
    sql, before_fields, fields = _linked_insert_statement(
        model, link_model, link_field, type(before) if before is not None else None, key_into, bool(values), conn.vendor
    )
    params = _values_to_save(before, before_fields, conn) if before is not None else []
    params += _values_to_save(instance, fields, conn)
    if values:
        params.append([int(value) for value in values])
    with cursor() as db:
        db.execute(sql, params)
        row = db.fetchone()
    if before is not None:
        before.pk = row[1]
        before._state.adding = False
        before._state.db = conn.alias
        if key_into:
            setattr(instance, key_into, str(before.pk))
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = conn.alias


def _link_fields(model: type[models.Model], link_model: type[models.Model], link_field: str):
    """The link model's foreign key to ``model``, and its field named ``link_field``."""
    foreign_key = next(
        field for field in link_model._meta.concrete_fields if field.is_relation and field.related_model is model
    )
    return foreign_key, link_model._meta.get_field(link_field)


@cache
def _linked_insert_statement(
    model: type[models.Model],
    link_model: type[models.Model],
    link_field: str,
    before_model: type[models.Model] | None,
    key_into: str,
    with_links: bool,
    vendor: str,
) -> tuple[str, tuple[models.Field, ...], tuple[models.Field, ...]]:
    """The statement of ``insert_with_links`` on PostgreSQL, and the fields whose values are
    its parameters: the first row's (if any), then the row's; the links' values follow."""
    foreign_key, value_field = _link_fields(model, link_model, link_field)
    quote = connection.ops.quote_name
    key = quote(model._meta.pk.column)
    parts = []
    before_fields: tuple[models.Field, ...] = ()
    computed = {}
    if before_model is not None:
        before_sql, before_fields = _insert_statement(before_model, vendor, 1)
        parts.append(f"first AS ({before_sql})")
        if key_into:
            # The first row's key, read from its RETURNING, in place of the field's parameter.
            computed = {key_into: f"(SELECT {quote(before_model._meta.pk.column)} FROM first)::text"}
    sql, fields = _insert_statement(model, vendor, 1, tuple(computed.items()))
    parts.append(f"parent AS ({sql})")
    if with_links:
        parts.append(
            f"links AS (INSERT INTO {quote(link_model._meta.db_table)} "
            f"({quote(foreign_key.column)}, {quote(value_field.column)}) "
            f"SELECT parent.{key}, link.value FROM parent, "
            "unnest(%s::bigint[]) WITH ORDINALITY AS link(value, position) ORDER BY link.position)"
        )
    returned = f"parent.{key}" + (f", first.{quote(before_model._meta.pk.column)}" if before_model is not None else "")
    statement = f"WITH {', '.join(parts)} SELECT {returned} FROM parent{', first' if before_model is not None else ''}"
    return statement, before_fields, fields


@contextmanager
def read_only() -> Iterator[None]:
    """Run the block inside the caller's transaction so that it can leave nothing behind:
    in a savepoint that is always rolled back, however the block ends, and on PostgreSQL
    marked read-only, so that the database refuses any write in it (``SET TRANSACTION READ
    ONLY`` in a savepoint lasts until the savepoint is rolled back; the transaction may then
    write again, e.g. the audit event of what was read)."""
    db = connections[DEFAULT_DB_ALIAS]
    if not db.in_atomic_block:
        raise RuntimeError("read_only() runs inside a transaction")
    savepoint = transaction.savepoint()
    try:
        if db.vendor == "postgresql":
            with db.cursor() as plain:
                plain.execute("SET TRANSACTION READ ONLY")
        yield
    finally:
        transaction.savepoint_rollback(savepoint)
