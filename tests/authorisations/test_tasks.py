"""The scheduled jobs, called directly, with the tasks they queue run in-process."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail

from audit.models import AuditEvent
from audit.services import AuditContext
from authorisations import tasks
from authorisations.models import Authorisation, AuthorisationReminder
from authorisations.services import authorisation_remind, authorisation_review
from detection import tasks as detection_tasks
from detection.models import Notification
from tests.authorisations.conftest import as_user, clock

LONDON = ZoneInfo("Europe/London")
APPROVED = datetime(2026, 1, 10, 14, 0, tzinfo=LONDON)
EXPIRES = datetime(2026, 4, 10, 0, 0, tzinfo=LONDON)
FIRST_REVIEW = APPROVED + timedelta(days=28)


@pytest.fixture(autouse=True)
def eager_tasks(settings):
    """Run queued tasks in-process even when REDIS_URL (as in CI) turns eager mode off
    (Celery reads the Django settings as they stand)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True


@pytest.fixture
def ds(walk, alice, olivia):
    alice.email, olivia.email = "alice@council.example", "olivia@council.example"
    alice.save()
    olivia.save()
    with clock(APPROVED):
        return walk("in_force", type="directed_surveillance")


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Run a task at ``moment``, with the work it queues after commit."""

    def go(task, moment):
        with clock(moment), django_capture_on_commit_callbacks(execute=True):
            return task()

    return go


# --- Expiry -----------------------------------------------------------------------------------------


def test_an_authorisation_past_expiry_is_moved_to_expired_once_even_when_the_job_runs_late(ds, run):
    assert run(tasks.expire_due, EXPIRES - timedelta(seconds=1)) == 0
    assert run(tasks.expire_due, EXPIRES + timedelta(hours=7)) == 1
    ds.refresh_from_db()
    assert ds.status == "expired" and ds.expiry_recorded_at == EXPIRES + timedelta(hours=7)
    event = AuditEvent.objects.get(action="authorisation.expire")
    assert event.actor_username == "" and event.payload["via"] == "task:authorisations.expire_due"
    assert event.payload["recorded_late_by_seconds"] == 7 * 3600
    assert run(tasks.expire_due, EXPIRES + timedelta(hours=8)) == 0
    assert AuditEvent.objects.filter(action="authorisation.expire").count() == 1


def test_a_cancelled_authorisation_is_left_alone_and_others_are_expired(ds, walk, run):
    Authorisation.objects.filter(pk=ds.pk).update(status="cancelled", cancelled_at=APPROVED + timedelta(days=1))
    with clock(APPROVED):
        later = walk("in_force")  # non-RIPA, sixty days
    assert run(tasks.expire_due, EXPIRES + timedelta(days=1)) == 1  # only the non-RIPA one, long expired
    assert Authorisation.objects.get(pk=ds.pk).status == "cancelled"
    assert Authorisation.objects.get(pk=later.pk).status == "expired"


# --- Reminders --------------------------------------------------------------------------------------


def test_overdue_reviews_and_near_expiries_are_reminded_once(ds, run):
    assert run(tasks.send_reminders, FIRST_REVIEW - timedelta(minutes=1)) == 0
    assert mail.outbox == []

    assert run(tasks.send_reminders, FIRST_REVIEW + timedelta(hours=1)) == 1
    assert sorted(address for m in mail.outbox for address in m.to) == [
        "alice@council.example",
        "olivia@council.example",
    ]  # one email each, through the notifications outbox
    for review_mail in mail.outbox:
        assert review_mail.subject.startswith(f"[{ds.urn}] Review overdue")
        assert "Jane" not in review_mail.body  # no names of people under surveillance in email
        assert f"http://127.0.0.1:8000/authorisations/{ds.pk}/" in review_mail.body
    assert run(tasks.send_reminders, FIRST_REVIEW + timedelta(hours=2)) == 0
    assert len(mail.outbox) == 2

    near_expiry = EXPIRES - timedelta(days=13)
    assert run(tasks.send_reminders, near_expiry) == 1  # the review is still overdue but already reminded
    assert [m.subject for m in mail.outbox[2:]] == [f"[{ds.urn}] Expires on 10 April 2026 00:00 BST"] * 2
    assert run(tasks.send_reminders, near_expiry + timedelta(hours=1)) == 0
    assert len(mail.outbox) == 4
    assert Notification.objects.filter(authorisation=ds, status="sent").count() == 4
    events = AuditEvent.objects.filter(action="authorisation.remind").order_by("id")
    assert [e.payload["kind"] for e in events] == ["review_overdue", "expiry_soon"]
    assert events[0].payload["recipients"] == ["olivia", "alice"]


def test_a_new_review_date_is_reminded_afresh(ds, sam, run):
    run(tasks.send_reminders, FIRST_REVIEW + timedelta(hours=1))
    reviewed = FIRST_REVIEW + timedelta(days=1)
    with clock(reviewed):
        authorisation_review(ctx=as_user(sam), authorisation=ds, findings="Continue.", outcome="continue")
    assert run(tasks.send_reminders, reviewed + timedelta(days=27)) == 0
    assert run(tasks.send_reminders, reviewed + timedelta(days=28, minutes=1)) == 1
    assert [m.subject.split("]")[1].split(" since")[0] for m in mail.outbox] == [" Review overdue"] * 4


def test_an_expired_or_cancelled_authorisation_is_not_reminded(ds, run):
    assert run(tasks.send_reminders, EXPIRES + timedelta(minutes=1)) == 0  # expired, though still marked in force
    assert mail.outbox == []


def test_a_reminder_whose_email_was_lost_is_sent_by_the_notifications_resend_job(ds, run):
    # Recorded, but the queued send never happened (e.g. the broker lost it).
    with clock(FIRST_REVIEW + timedelta(hours=1)):
        reminder = authorisation_remind(
            ctx=AuditContext(actor=None, via="test"), authorisation=ds, kind="review_overdue", due_at=FIRST_REVIEW
        )
    assert reminder is not None and mail.outbox == []
    pending = Notification.objects.filter(authorisation=ds, status="pending", subject_line__contains="Review overdue")
    assert pending.count() == 2
    run(detection_tasks.resend_pending_notifications, FIRST_REVIEW + timedelta(hours=2))
    reminded = [m.to[0] for m in mail.outbox if "Review overdue" in m.subject]
    assert sorted(reminded) == ["alice@council.example", "olivia@council.example"]
    assert not pending.exists()
    run(detection_tasks.resend_pending_notifications, FIRST_REVIEW + timedelta(hours=3))
    assert len([m for m in mail.outbox if "Review overdue" in m.subject]) == 2  # sent once each


def test_a_reminder_recorded_before_the_outbox_is_still_sent_once(ds, run):
    # A row from before reminders went through the outbox: recipients' addresses, unsent.
    reminder = AuthorisationReminder.objects.create(
        authorisation=ds,
        kind="review_overdue",
        due_at=FIRST_REVIEW,
        recipients=["alice@council.example"],
        created_at=FIRST_REVIEW,
    )
    run(tasks.send_reminders, FIRST_REVIEW + timedelta(hours=1))
    [legacy] = mail.outbox
    assert legacy.to == ["alice@council.example"] and legacy.subject.startswith(f"[{ds.urn}] Review overdue")
    assert f"http://127.0.0.1:8000/authorisations/{ds.pk}/" in legacy.body
    reminder.refresh_from_db()
    assert reminder.sent_at is not None
    sent = len(mail.outbox)
    assert tasks.send_reminder_email(reminder.pk) is False  # a duplicate delivery sends nothing
    assert len(mail.outbox) == sent


def test_people_without_an_email_address_are_named_in_the_audit_event(ds, olivia, run):
    olivia.email = ""
    olivia.save()
    run(tasks.send_reminders, FIRST_REVIEW + timedelta(hours=1))
    assert mail.outbox[0].to == ["alice@council.example"]
    event = AuditEvent.objects.get(action="authorisation.remind")
    assert (event.payload["recipients"], event.payload["without_email"]) == (["alice"], ["olivia"])


def test_the_jobs_are_on_the_beat_schedule(settings):
    tasks_scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"authorisations.expire_due", "authorisations.send_reminders"} <= tasks_scheduled
