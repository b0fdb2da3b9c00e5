"""The notification outbox: queued after commit, sent once, failures recorded and retried,
nothing lost when the broker is down. Tasks run in-process here; a real worker and Redis
are in test_notification_worker.py."""

import logging
import smtplib
import socket
import time
from datetime import timedelta
from unittest import mock

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from audit.models import AuditEvent
from detection import notifications
from detection.models import Notification
from detection.notifications import (
    NotificationNotDelivered,
    notification_deliver,
    notification_queue,
    notifications_resend_pending,
)
from detection.tasks import send_notification

LATER = timedelta(minutes=16)  # past RESEND_AFTER_FAILURE


@pytest.fixture(autouse=True)
def eager_tasks(settings):
    """Run queued tasks in-process even when REDIS_URL (as in CI) turns eager mode off."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True


@pytest.fixture
def officer(olivia):
    olivia.email = "olivia@council.example"
    olivia.save()
    return olivia


@pytest.fixture
def queue(officer, django_capture_on_commit_callbacks):
    """Queue a notification to ``officer`` in a transaction and run what it queued after commit."""

    def go(recipient=None):
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                notification = notification_queue(
                    recipient=recipient or officer,
                    subject_line="[N-1] A flag needs your decision",
                    body="A repeat viewing was flagged on case N-1. Decide it at /api/v1/flags/1/.",
                )
        notification.refresh_from_db()
        return notification

    return go


@pytest.fixture
def run_after_commit(django_capture_on_commit_callbacks):
    def go(function, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return function(**kwargs)

    return go


def events(notification, action):
    return AuditEvent.objects.filter(target_type="notification", target_id=str(notification.pk), action=action)


def test_a_queued_notification_is_emailed_once_after_the_transaction_commits(queue, officer):
    notification = queue()

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["olivia@council.example"]
    assert message.subject == "[N-1] A flag needs your decision"
    assert notification.status == "sent" and notification.attempts == 1 and notification.sent_at is not None
    event = events(notification, "notification.sent").get()
    assert event.outcome == "success" and event.actor_username == ""
    assert event.payload["recipient"] == "olivia" and event.payload["via"] == "task:detection.send_notification"
    assert "repeat viewing" not in str(event.payload).lower()  # never the message itself


def test_nothing_is_queued_before_the_transaction_commits(officer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        notification = notification_queue(recipient=officer, subject_line="s", body="b")
        # The task may not run yet: the row is not visible to anyone else.
        assert len(mail.outbox) == 0
    assert len(callbacks) >= 1
    notification.refresh_from_db()
    assert notification.status == "pending" and notification.attempts == 0


def test_a_rolled_back_transaction_leaves_no_notification_and_sends_nothing(
    officer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            notification_queue(recipient=officer, subject_line="s", body="b")
            raise RuntimeError("the flag could not be raised")
    assert not Notification.objects.exists()
    assert len(mail.outbox) == 0


def test_delivering_the_same_notification_twice_sends_one_email(queue):
    notification = queue()

    assert notification_deliver(notification_id=notification.pk) is False
    assert send_notification.apply(args=[notification.pk]).get() is False

    assert len(mail.outbox) == 1
    notification.refresh_from_db()
    assert notification.attempts == 1
    assert events(notification, "notification.sent").count() == 1


def test_a_failing_mail_server_leaves_the_notification_pending_and_a_later_resend_delivers_it(queue, run_after_commit):
    with mock.patch("detection.notifications.send_mail", side_effect=smtplib.SMTPException("421 try again later")):
        notification = queue()

    assert len(mail.outbox) == 0
    assert notification.status == "pending" and notification.attempts == 1
    assert notification.last_error == "SMTPException: 421 try again later"
    failed = events(notification, "notification.failed").get()
    assert failed.outcome == "failed" and failed.payload["will_retry"] is True
    assert failed.payload["error"] == "SMTPException: 421 try again later"

    # Its own task is still retrying with backoff, so the periodic task leaves it alone...
    assert run_after_commit(notifications_resend_pending, older_than_seconds=0) == 0
    # ...until it has not been tried for a while (its task was lost).
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + LATER):
        assert run_after_commit(notifications_resend_pending) == 1

    notification.refresh_from_db()
    assert notification.status == "sent" and notification.attempts == 2 and notification.last_error == ""
    assert len(mail.outbox) == 1
    assert events(notification, "notification.sent").get().payload["attempts"] == 2


def test_a_failed_send_is_committed_before_the_error_is_raised(queue, officer):
    with mock.patch("detection.notifications.send_mail", side_effect=ConnectionRefusedError("no SMTP")):
        notification = queue()
        with pytest.raises(NotificationNotDelivered, match="attempt 2"):
            notification_deliver(notification_id=notification.pk)
    notification.refresh_from_db()
    assert notification.status == "pending" and notification.attempts == 2
    assert events(notification, "notification.failed").count() == 2


def test_on_a_worker_a_failed_send_is_retried_with_backoff(queue):
    with mock.patch("detection.notifications.send_mail", side_effect=smtplib.SMTPException("down")):
        notification = queue()
        # Called as a worker calls it (not eager): the failure goes to Celery's retry.
        with mock.patch.object(send_notification, "retry", side_effect=Retry()) as retry:
            with pytest.raises(Retry):
                send_notification(notification.pk)
    assert isinstance(retry.call_args.kwargs["exc"], NotificationNotDelivered)
    assert 0 <= retry.call_args.kwargs["countdown"] <= 600
    assert send_notification.max_retries is None and send_notification.acks_late is True


def test_a_broker_that_is_down_at_commit_loses_nothing(queue, run_after_commit, caplog):
    with mock.patch.object(send_notification, "apply_async", side_effect=OperationalError("Connection refused")):
        with caplog.at_level(logging.WARNING, logger="detection.notifications"):
            notification = queue()  # the request's commit does not fail
        assert notification.status == "pending" and notification.attempts == 0
        assert "stays pending" in caplog.text
        # The periodic task cannot queue it either while the broker is down; it says so, nothing fails.
        assert run_after_commit(notifications_resend_pending, older_than_seconds=0) == 0

    assert len(mail.outbox) == 0
    assert run_after_commit(notifications_resend_pending, older_than_seconds=0) == 1
    notification.refresh_from_db()
    assert notification.status == "sent"
    assert len(mail.outbox) == 1


def test_the_broker_connection_is_kept_and_made_anew_after_a_failure(queue, caplog):
    with mock.patch.object(send_notification, "apply_async") as publish:
        queue()
        queue()
        used = [call.kwargs["connection"] for call in publish.call_args_list]
        assert used[0] is used[1]  # kept from the first notification

        publish.side_effect = OperationalError("Connection refused")
        with caplog.at_level(logging.WARNING, logger="detection.notifications"):
            notification = queue()
            assert notification.status == "pending" and caplog.text.count("stays pending") == 1
            assert publish.call_args_list[2].kwargs["connection"] is used[0]
            # Each attempt while the broker is away starts on a new connection.
            queue()
        retried = publish.call_args_list[3].kwargs["connection"]
        assert retried is not used[0] and caplog.text.count("stays pending") == 2

        publish.side_effect = None
        queue()
        queue()
        renewed = [call.kwargs["connection"] for call in publish.call_args_list[4:]]
        assert renewed[0] not in (used[0], retried) and renewed[0] is renewed[1]


def test_queueing_gives_up_at_once_when_nothing_listens_on_the_broker_port(queue, settings, caplog):
    # A port bound but not listening refuses connections: a real broker outage on loopback.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="detection.notifications"):
            notification = queue()
        elapsed = time.monotonic() - started
    assert notification.status == "pending" and notification.attempts == 0
    assert "Connection refused" in caplog.text
    assert elapsed < 2


def test_the_periodic_task_skips_new_notifications_and_queues_old_ones(queue, run_after_commit):
    with mock.patch.object(send_notification, "apply_async", side_effect=OperationalError("down")):
        notification = queue()
    assert run_after_commit(notifications_resend_pending, older_than_seconds=60) == 0
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + timedelta(seconds=61)):
        assert run_after_commit(notifications_resend_pending, older_than_seconds=60) == 1
    notification.refresh_from_db()
    assert notification.status == "sent"


def test_a_recipient_without_an_email_address_is_recorded_as_a_failure_and_not_retried(
    queue, officer, run_after_commit
):
    officer.email = ""
    officer.save()

    notification = queue()

    assert notification.status == "pending" and notification.attempts == 1
    assert notification.last_error == "the recipient has no email address"
    assert events(notification, "notification.failed").get().payload["will_retry"] is False
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + LATER):
        assert run_after_commit(notifications_resend_pending) == 0

    # Once the account has an address, the periodic task delivers it.
    officer.email = "olivia@council.example"
    officer.save()
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + LATER):
        assert run_after_commit(notifications_resend_pending) == 1
    notification.refresh_from_db()
    assert notification.status == "sent" and len(mail.outbox) == 1


def test_a_deactivated_recipient_is_not_emailed(queue, officer, run_after_commit):
    officer.is_active = False
    officer.save()

    notification = queue()

    assert notification.status == "pending" and "deactivated" in notification.last_error
    assert len(mail.outbox) == 0
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + LATER):
        assert run_after_commit(notifications_resend_pending) == 0


def test_a_subject_line_is_made_one_line_that_fits(officer, run_after_commit):
    notification = run_after_commit(
        notification_queue, recipient=officer, subject_line="Flag 7 on case\nBcc: x@example.com " + "x" * 300, body="b"
    )
    notification.refresh_from_db()
    assert notification.subject_line.startswith("Flag 7 on case Bcc: x@example.com xxx")
    assert len(notification.subject_line) == 200 and notification.subject_line.endswith("\u2026")
    assert notification.status == "sent" and mail.outbox[0].subject == notification.subject_line


def test_no_control_or_invisible_characters_reach_a_subject_or_a_body(officer, run_after_commit):
    notification = run_after_commit(
        notification_queue,
        recipient=officer,
        subject_line="Flag 7 on case N-1\x1b[2J\u202eevil\x00\u2028x\ty",
        body="Reasoning: first line\r\nsecond\x07 line\u202e\n\tindented\x1b]0;title\x07",
    )
    notification.refresh_from_db()
    assert notification.subject_line == "Flag 7 on case N-1 [2J evil x y"
    assert notification.body == "Reasoning: first line\nsecond line\n\tindented]0;title"
    assert mail.outbox[0].subject == notification.subject_line and mail.outbox[0].body == notification.body


def test_site_link_builds_a_page_address_on_site_url(settings):
    settings.SITE_URL = "https://council.example/evidence"
    assert notifications.site_link("/flags/12/") == "https://council.example/evidence/flags/12/"


def test_the_periodic_task_is_scheduled_every_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["detection-resend-notifications"]
    assert entry == {"task": "detection.resend_pending_notifications", "schedule": 60.0}
    # A notification still being retried by its own task is left to it.
    assert send_notification.retry_backoff_max < notifications.RESEND_AFTER_FAILURE.total_seconds()
