"""The request path's own inserts and reads (evidence_service/db.py) against the ORM."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEvent, AuditSubjectLink
from cases.models import Consent
from evidence_service.db import _batches, cursor, insert, insert_with_links, select, select_joined
from tests.factories import ConsentFactory, SubjectFactory


def test_insert_writes_what_the_orm_reads_back(jane, alice):
    event = AuditEvent(
        occurred_at=timezone.now(),
        actor_id=alice.pk,
        actor_username="alice",
        actor_role="practitioner",
        action="viewing.create",
        outcome="success",
        target_type="viewing",
        target_id="7",
        ip_address="2001:db8::1",
        user_agent="test",
        request_id="r1",
        payload={"viewed_at": "2026-01-01T00:00:00Z", "n": [1, 2], "text": "é"},
        commitment_salt=b"\x00\x01" * 8,
    )
    insert(event)
    other = SubjectFactory()
    links = [AuditSubjectLink(event=event, subject_id=jane.pk), AuditSubjectLink(event=event, subject_id=other.pk)]
    insert(*links)
    assert links[0].pk is not None and links[1].pk == links[0].pk + 1
    stored = AuditEvent.objects.get(pk=event.pk)
    for field in AuditEvent._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(event, field.attname), field.name
    assert sorted(stored.subject_links.values_list("subject_id", flat=True)) == sorted([jane.pk, other.pk])
    with pytest.raises(ValueError):
        insert(event)  # not new any more


def test_insert_refuses_an_unsaved_related_object_as_save_does(jane, alice):
    unsaved = SubjectFactory.build(created_by=alice)
    consent = Consent(subject=unsaved, scope=["all"], granted_at=timezone.now(), evidence="Form", recorded_by=alice)
    with pytest.raises(ValueError, match="unsaved related object 'subject'"):
        insert(consent)
    assert not Consent.objects.exists()
    # Saved after it was assigned: its key is taken up, as save() would.
    unsaved.save()
    insert(consent)
    assert Consent.objects.get(pk=consent.pk).subject_id == unsaved.pk


def test_select_converts_as_the_orm_does(jane):
    made = ConsentFactory(subject=jane, scope=["instagram"], expires_at=timezone.now() + timedelta(days=3))
    (found,) = select(Consent, "c", "FROM cases_consent c WHERE c.id = %s", [made.pk])
    orm = Consent.objects.get(pk=made.pk)
    for field in Consent._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(orm, field.attname), field.name
    assert found.granted_at.tzinfo is not None and found.scope == ["instagram"]
    ((consent, missing),) = select_joined(
        [(Consent, "c"), (Consent, "other")],
        "FROM cases_consent c LEFT JOIN cases_consent other ON other.id = %s WHERE c.id = %s",
        [made.pk + 1000, made.pk],
    )
    assert consent == orm and missing is None


@pytest.mark.postgres
def test_on_postgresql_the_statements_are_prepared_once_per_connection(_postgres_only, jane, settings):
    def prepared() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%cases_subject%"])
            return cursor.fetchone()[0]

    before = prepared()
    for _ in range(3):
        select(type(jane), "s", "FROM cases_subject s WHERE s.id = %s", [jane.pk])
    assert prepared() == before + 1
    settings.DATABASE_PREPARED_STATEMENTS = False
    for _ in range(3):
        select(type(jane), "s2", "FROM cases_subject s2 WHERE s2.id = %s", [jane.pk])
    assert prepared() == before + 1


def _reads_with_psycopg_s_own_loader(db) -> bool:
    """Whether ``db`` reads timestamps with psycopg's own loader (compiled, with its binary
    package) rather than Django's Python one."""
    import psycopg
    from psycopg.pq import Format

    oid = psycopg.adapters.types["timestamptz"].oid
    return db.cursor.adapters.get_loader(oid, Format.TEXT) is psycopg.adapters.get_loader(oid, Format.TEXT)


def _read_as_the_orm_reads_it(db):
    """Read a timestamp on ``db``, check it is what the ORM's own cursor reads (instant and zone: aware
    datetimes in different zones compare equal, so their text is compared)."""
    query = "SELECT '2026-07-01 12:00:00+00'::timestamptz"
    db.execute(query)
    (value,) = db.fetchone()
    with connection.cursor() as orm:
        orm.execute(query)
        (read_by_orm,) = orm.fetchone()
    assert value.isoformat() == read_by_orm.isoformat()
    return value


@pytest.mark.postgres
@pytest.mark.parametrize("prepared", [True, False])
def test_on_postgresql_timestamps_are_read_by_psycopg_as_django_would(_postgres_only, jane, settings, prepared):
    import datetime

    settings.DATABASE_PREPARED_STATEMENTS = prepared
    with cursor() as db:
        assert _reads_with_psycopg_s_own_loader(db)
    made = ConsentFactory(subject=jane, expires_at=timezone.now() + timedelta(days=3, microseconds=7))
    (found,) = select(Consent, "c", "FROM cases_consent c WHERE c.id = %s", [made.pk])
    orm = Consent.objects.get(pk=made.pk)
    for name in ("granted_at", "expires_at", "recorded_at"):
        value = getattr(found, name)
        assert value == getattr(orm, name) and value.tzinfo is datetime.UTC, name
        assert value.isoformat() == getattr(orm, name).isoformat()


@pytest.mark.postgres
@pytest.mark.parametrize("prepared", [True, False])
def test_django_s_timestamp_loader_is_kept_when_the_session_is_in_another_zone(_postgres_only, settings, prepared):
    settings.DATABASE_PREPARED_STATEMENTS = prepared
    with cursor() as db:
        assert _reads_with_psycopg_s_own_loader(db)
        db.execute("SET LOCAL TIME ZONE 'Europe/London'")  # until the test's transaction ends
    with cursor() as db:  # the same connection, its session now in another zone
        assert not _reads_with_psycopg_s_own_loader(db)
        _read_as_the_orm_reads_it(db)


@pytest.mark.postgres
@pytest.mark.parametrize("prepared", [True, False])
def test_django_s_timestamp_loader_is_kept_without_time_zone_support(_postgres_only, settings, prepared):
    settings.DATABASE_PREPARED_STATEMENTS = prepared
    with cursor() as db:
        assert _reads_with_psycopg_s_own_loader(db)
    settings.USE_TZ = False
    with cursor() as db:
        assert not _reads_with_psycopg_s_own_loader(db)
        assert _read_as_the_orm_reads_it(db).tzinfo is None  # naive, as the ORM gives


def test_many_rows_go_in_batches_that_stay_under_the_parameter_limit(jane, alice, django_assert_max_num_queries):
    event = AuditEvent(
        occurred_at=timezone.now(), action="authorisation.central_record", outcome="success", commitment_salt=b"s" * 16
    )
    insert(event)
    people = [SubjectFactory.build(created_by=alice) for _ in range(1234)]
    for person in people:
        person.created_at = timezone.now()
    insert(*people)  # 2 x 500, then 128 + 64 + 32 + 8 + 2
    assert [person.pk for person in people] == sorted(person.pk for person in people)
    links = [AuditSubjectLink(event=event, subject_id=person.pk) for person in people]
    with django_assert_max_num_queries(7):
        insert(*links)
    assert event.subject_links.count() == 1234 and all(link.pk for link in links)
    assert _batches(1234) == [500, 500, 128, 64, 32, 8, 2] and sum(_batches(777)) == 777


@pytest.mark.parametrize("people", [0, 1, 3, 700])
def test_an_event_and_its_links_go_in_together(people, alice, django_assert_max_num_queries):
    subjects = [SubjectFactory(created_by=alice).pk for _ in range(min(people, 3))]
    subjects += [subjects[-1] + n for n in range(1, people - len(subjects) + 1)]  # links need no person row
    event = AuditEvent(occurred_at=timezone.now(), action="viewing.list", outcome="success", commitment_salt=b"s" * 16)
    # One statement on PostgreSQL, whatever the number of links (elsewhere, insert() twice).
    with django_assert_max_num_queries(1 if connection.vendor == "postgresql" else 1 + people):
        insert_with_links(event, AuditSubjectLink, "subject_id", subjects)
    assert event.pk is not None and not event._state.adding
    assert AuditEvent.objects.get(pk=event.pk).action == "viewing.list"
    links = list(AuditSubjectLink.objects.filter(event=event).order_by("id").values_list("subject_id", flat=True))
    assert links == subjects  # in the order given
    with pytest.raises(ValueError):
        insert_with_links(event, AuditSubjectLink, "subject_id", subjects)  # not new any more


@pytest.mark.parametrize("people", [0, 2])
def test_a_row_and_the_event_recording_it_go_in_together(people, alice, django_assert_max_num_queries):
    person = SubjectFactory.build(created_by=alice)
    person.created_at = timezone.now()
    event = AuditEvent(
        occurred_at=timezone.now(),
        action="subject.create",
        target_type="subject",
        outcome="success",
        commitment_salt=b"s" * 16,
    )
    subjects = list(range(10**6, 10**6 + people))
    with django_assert_max_num_queries(1 if connection.vendor == "postgresql" else 2 + people):
        insert_with_links(event, AuditSubjectLink, "subject_id", subjects, before=person, key_into="target_id")
    assert person.pk is not None and event.pk is not None
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.target_id == event.target_id == str(person.pk)
    assert type(person).objects.get(pk=person.pk).display_name == person.display_name
    assert list(stored.subject_links.order_by("id").values_list("subject_id", flat=True)) == subjects


def test_a_row_written_alongside_an_event_keeps_the_event_target(alice, django_assert_max_num_queries):
    person = SubjectFactory.build(created_by=alice)
    person.created_at = timezone.now()
    event = AuditEvent(
        occurred_at=timezone.now(),
        action="flag.absorb",
        target_type="flag",
        target_id="42",
        outcome="success",
        commitment_salt=b"s" * 16,
    )
    with django_assert_max_num_queries(1 if connection.vendor == "postgresql" else 3):
        insert_with_links(event, AuditSubjectLink, "subject_id", [7], before=person)
    assert person.pk is not None and event.pk is not None
    assert AuditEvent.objects.get(pk=event.pk).target_id == event.target_id == "42"
    assert type(person).objects.filter(pk=person.pk).exists()


def test_an_event_recorded_alongside_a_new_row_names_its_own_target(alice, django_assert_max_num_queries):
    from audit.services import AuditContext, audit_record

    person = SubjectFactory.build(created_by=alice)
    person.created_at = timezone.now()
    events_before = AuditEvent.objects.count()
    with django_assert_max_num_queries(1 if connection.vendor == "postgresql" else 3):
        event = audit_record(
            ctx=AuditContext(actor=alice),
            action="flag.absorb",
            target_type="flag",
            target_id="flag-42",
            subject_ids=[9],
            alongside=person,
        )
    assert person.pk is not None and type(person).objects.filter(pk=person.pk).exists()
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.target_type, stored.target_id) == ("flag", "flag-42")  # not the new row's key
    assert list(stored.subject_links.values_list("subject_id", flat=True)) == [9]
    assert AuditEvent.objects.count() == events_before + 1


def test_an_event_takes_a_new_target_or_a_row_alongside_not_both(alice):
    from audit.services import AuditContext, audit_record

    first, second = (SubjectFactory.build(created_by=alice) for _ in range(2))
    events_before = AuditEvent.objects.count()
    # A mistake in the call fails the caller's transaction (no savepoint of its own): each
    # is made here in a savepoint of the test's.
    with pytest.raises(ValueError, match="not both"), transaction.atomic():
        audit_record(ctx=AuditContext(actor=alice), action="subject.create", target=first, alongside=second)
    with pytest.raises(ValueError, match="not both"), transaction.atomic():
        audit_record(ctx=AuditContext(actor=alice), action="subject.create", target=first, target_id="7")
    assert AuditEvent.objects.count() == events_before and first.pk is None and second.pk is None


@pytest.mark.postgres
def test_on_postgresql_one_cursor_is_kept_per_connection_and_made_anew_when_it_must_be(_postgres_only, settings):
    def bound(wrapper):
        return wrapper.cursor

    settings.DATABASE_PREPARED_STATEMENTS = True
    with cursor() as first:
        first.execute("SELECT 1")
        assert first.fetchone() == (1,)
        with cursor() as inner:  # a read inside a read gets a cursor of its own
            assert bound(inner) is not bound(first)
            inner.execute("SELECT 2")
            assert inner.fetchone() == (2,)
        assert first.fetchone() is None  # the outer cursor's results were left alone
    kept = bound(first)
    with cursor() as again:
        assert bound(again) is kept and not kept.closed
    # The session's time zone changed: a cursor set up for it.
    with cursor() as db:
        db.execute("SET LOCAL TIME ZONE 'Europe/London'")
    with cursor() as db:
        assert bound(db) is not kept and not _reads_with_psycopg_s_own_loader(db)
        _read_as_the_orm_reads_it(db)
    with cursor() as db:
        db.execute("SET LOCAL TIME ZONE 'UTC'")
    with cursor() as db:
        assert _reads_with_psycopg_s_own_loader(db)
        kept = bound(db)


@pytest.mark.postgres
def test_on_postgresql_a_cursor_kept_for_another_connection_is_not_used(_postgres_only, settings):
    settings.DATABASE_PREPARED_STATEMENTS = True
    with cursor() as db:
        kept = db.cursor
    made_for, _cursor = connection._kept_cursor
    # As after a reconnection: the cursor kept is for a connection this one is not.
    connection._kept_cursor = ((object(), *made_for[1:]), kept)
    with cursor() as db:
        assert db.cursor is not kept and db.cursor.connection is connection.connection
        db.execute("SELECT 3")
        assert db.fetchone() == (3,)
    kept.close()  # and one closed is made anew
    connection._kept_cursor = (made_for, kept)
    with cursor() as db:
        assert db.cursor is not kept and not db.cursor.closed


def test_values_are_sent_as_model_save_prepares_them(settings):
    """The preparation left out for values sent as they are gives what Django's own gives:
    every field of the project's models, with every kind of value, on this database."""
    import datetime as dt
    import warnings

    from django.apps import apps

    from evidence_service.db import _values_to_save

    samples = [
        None,
        "",
        "text",
        "7",
        7,
        0,
        -1,
        True,
        False,
        3.5,
        dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 7, 1, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        dt.datetime(2026, 7, 1, 12, 0),  # naive
        dt.date(2026, 7, 1),
        {"a": [1, 2]},
        [1, 2],
        b"bytes",
    ]
    sent_as_is = compared = 0
    for model in apps.get_models():
        if model._meta.app_label not in {"accounts", "cases", "audit", "authorisations", "detection", "tlog"}:
            continue
        for field in model._meta.concrete_fields:
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                continue  # set by pre_save, to the moment: never sent as it is
            for sample in samples:
                instance = model()
                instance.__dict__[field.attname] = sample
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a naive datetime
                    try:
                        expected = field.get_db_prep_save(field.pre_save(instance, True), connection)
                    except Exception:  # noqa: BLE001, S112 - a value Django's own preparation refuses
                        continue
                    (got,) = _values_to_save(instance, (field,), connection)
                assert type(got) is type(expected), (model.__name__, field.name, sample)
                assert getattr(got, "obj", got) == getattr(expected, "obj", expected), (model.__name__, field.name)
                if isinstance(expected, dt.datetime):
                    assert got.utcoffset() == expected.utcoffset(), (model.__name__, field.name, sample)
                compared += 1
                sent_as_is += got is sample
    assert compared > 500
    if connection.vendor == "postgresql":
        assert sent_as_is > 200  # the shortcut is taken
