"""Email notifications to officers, through an outbox.

A notification is a row written in the same transaction as the flag that needs it, so it
exists exactly when the flag does. Only after that transaction commits is a Celery task
queued to send it; if the broker is down at that moment the row simply stays pending and
the periodic task (``detection.resend_pending_notifications``) queues it again later.
Delivery locks the row and marks it sent in one transaction, so a task delivered twice (a
redelivery after a lost acknowledgement, or a copy queued by the periodic task) sends one
email. Each attempt is audited: ``notification.sent`` or ``notification.failed``.

Delivery is at least once: if the mail server accepted the email and the database then
failed to record it, the email goes again on the next attempt.
"""

from __future__ import annotations

import logging
import os
import threading
import unicodedata
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import CharField, OuterRef, Q, Subquery
from django.db.models.functions import Cast
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from audit.services import AuditContext, audit_record
from detection.models import Flag, Notification, NotificationStatus
from evidence_service.db import insert

logger = logging.getLogger(__name__)

#: A notification whose last attempt failed is queued again by the periodic task only after
#: this long without another attempt. Its own task retries with backoff capped at 10 minutes
#: (``retry_backoff_max`` in ``detection/tasks.py``), so a notification still being retried
#: has failed more recently than this; one that has not has lost its task (for instance the
#: broker was down when the retry was queued), and only then does it need a new one.
#: Without this pause every run of the periodic task would start another retry chain.
RESEND_AFTER_FAILURE = timedelta(minutes=15)

#: The most notifications one run of the periodic task queues again.
RESEND_BATCH = 500

#: The broker connection used to queue a notification gives up at once when the broker
#: refuses or does not answer within this many seconds (Celery's own default keeps
#: retrying the connection, which would hold up the request that committed the flag).
ENQUEUE_CONNECT_TIMEOUT_SECONDS = 2

_ERROR_LENGTH = 1000


class NotificationNotDelivered(Exception):
    """The email could not be sent this time; the failure is recorded and committed, and
    the task retries."""


def _system_context(task: str) -> AuditContext:
    return AuditContext(actor=None, via=f"task:{task}")


def site_link(path: str) -> str:
    """The address of one of the service's pages (``/flags/12/``), built on ``SITE_URL``,
    for the people an email goes to: every email carries one."""
    return f"{settings.SITE_URL}/{path.lstrip('/')}"


@transaction.atomic
def notification_queue(
    *,
    recipient,
    subject_line: str,
    body: str,
    flag: Flag | None = None,
    authorisation=None,
) -> Notification:
    """Record an email owed to ``recipient`` (about ``flag`` or ``authorisation``) and
    queue its sending once the caller's transaction commits (never before: a task must
    not look for a row that is not yet visible, or send an email about a flag that was
    rolled back).

    Queuing never fails the caller: if the broker is unreachable at commit, the row stays
    pending for the periodic task. The subject line is made one line of at most 200
    characters, and neither it nor the body keeps control characters from free text (a
    case reference, a reasoning). No audit event of its own: the event of the action that
    asked for it (``flag.raise``, ``authorisation.submit``...) covers it, and each
    delivery attempt is audited. A recipient without an email address still gets the row
    (kept pending, sent once they have one); its delivery attempt records why not."""
    if not recipient.email:
        logger.warning(
            "notification for %s (%s): they have no email address; recorded, sent once they have one",
            recipient.get_username(),
            _header_safe(subject_line),
        )
    notification = Notification(
        recipient=recipient,
        flag=flag,
        authorisation=authorisation,
        subject_line=_header_safe(subject_line),
        body=_body_safe(body),
        status=NotificationStatus.PENDING,
        created_at=timezone.now(),
    )
    # Checked as a form would check it, but for the recipient, flag and authorisation:
    # saved instances, which the foreign keys check anyway (a query each here).
    notification.full_clean(exclude=["recipient", "flag", "authorisation"])
    insert(notification)
    notification_id = notification.pk
    transaction.on_commit(lambda: _enqueue(notification_id))
    return notification


def notify(
    *, recipients: Iterable, subject_line: str, body: str, flag: Flag | None = None, authorisation=None
) -> list[Notification]:
    """The same email to each of ``recipients`` (each once, in the order given)."""
    seen: set[int] = set()
    queued = []
    for recipient in recipients:
        if recipient.pk in seen:
            continue
        seen.add(recipient.pk)
        queued.append(
            notification_queue(
                recipient=recipient, subject_line=subject_line, body=body, flag=flag, authorisation=authorisation
            )
        )
    return queued


#: Unicode categories never kept from free text in an email: control characters, invisible
#: formatting (bidirectional overrides and the like) and line or paragraph separators.
_UNSAFE_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")


def _header_safe(subject_line: str) -> str:
    """One line (a line break in a header makes every send fail, so it would be retried
    forever) without control characters, that fits the column: an email's subject is not
    worth failing a flag over."""
    cleaned = "".join(" " if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in subject_line)
    line = " ".join(cleaned.split())
    limit = Notification._meta.get_field("subject_line").max_length
    return line if len(line) <= limit else line[: limit - 1] + "\u2026"


def _body_safe(body: str) -> str:
    """The body's lines as written, without any other control or invisible formatting
    character (a carriage return, an escape sequence, a bidirectional override)."""
    lines = body.replace("\r\n", "\n").split("\n")
    return "\n".join(
        "".join(ch for ch in line if ch == "\t" or unicodedata.category(ch) not in _UNSAFE_CATEGORIES) for line in lines
    )


def _enqueue(notification_id: int) -> bool:
    """Queue the sending task; True if the broker took it. Failures are logged, never
    raised: the notification is in the outbox either way. After a failure the next
    notification starts on a new connection. (A kept connection that Redis closed, as on
    a restart, is reconnected by the Redis client itself:
    tests/detection/test_notification_worker.py.)"""
    from detection.tasks import send_notification

    try:
        connection = _broker_connection(send_notification.app)
        send_notification.apply_async(args=[notification_id], connection=connection, retry=False)
    except Exception:
        _drop_broker_connection()
        logger.warning(
            "notification %s: its task could not be queued; it stays pending for the periodic task to queue again",
            notification_id,
            exc_info=True,
        )
        return False
    return True


#: This process's (and thread's) connection to the broker for queuing notifications.
_broker = threading.local()


def _broker_connection(app):
    """The connection to queue on.

    A connection of its own that does not retry: Celery's pooled connection retries an
    unreachable broker for seconds (or forever, depending on the version) even with
    retry=False, which would hold the request up after its commit. It is kept for the
    process's next notification (connecting, opening a channel and declaring the queue
    cost more than the rest of raising a flag did) and made anew after any failure, or in
    a process forked from the one that made it, or for another broker (settings changed)."""
    made_for = (os.getpid(), app.conf.broker_write_url or app.conf.broker_url)
    kept = getattr(_broker, "connection", None)
    if kept is not None and _broker.made_for == made_for:
        return kept
    _drop_broker_connection()
    connection = app.connection_for_write(
        connect_timeout=ENQUEUE_CONNECT_TIMEOUT_SECONDS,
        transport_options={"max_retries": 0, "socket_timeout": ENQUEUE_CONNECT_TIMEOUT_SECONDS},
    )
    _broker.connection, _broker.made_for = connection, made_for
    return connection


def _drop_broker_connection() -> None:
    connection = getattr(_broker, "connection", None)
    _broker.connection = None
    if connection is not None and _broker.made_for[0] == os.getpid():
        try:
            connection.release()
        except Exception:  # already broken; nothing more to free
            logger.debug("closing a failed broker connection", exc_info=True)


def notification_deliver(*, notification_id: int) -> bool:
    """Send a pending notification's email once. True if it was sent now; False if it was
    already sent (a duplicate or redelivered task), does not exist, or cannot be sent to
    this recipient at all (no email address, account deactivated: recorded as a failure
    and not retried, since retrying cannot help until someone fixes the account; the
    periodic task picks it up again once it has an address and is active).

    Any error while sending is recorded (attempt counted, ``last_error``, a
    ``notification.failed`` event), committed, and then raised as
    ``NotificationNotDelivered`` so that the task retries."""
    ctx = _system_context("detection.send_notification")
    with transaction.atomic():
        # The lock makes concurrent copies of the task wait here; the second then sees it sent.
        notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if notification is None or notification.status == NotificationStatus.SENT:
            return False
        recipient = notification.recipient
        notification.attempts += 1
        undeliverable = _undeliverable_reason(recipient)
        if undeliverable:
            _record_failure(ctx=ctx, notification=notification, error=undeliverable, permanent=True)
            logger.warning("notification %s not sent: %s", notification.pk, undeliverable)
            return False
        try:
            send_mail(
                notification.subject_line,
                notification.body,
                settings.DEFAULT_FROM_EMAIL,
                [recipient.email],
                fail_silently=False,
            )
        except Exception as exc:  # SMTP, network, a bad backend: all worth another attempt
            cause = exc
            error = f"{type(exc).__name__}: {exc}"
            _record_failure(ctx=ctx, notification=notification, error=error, permanent=False)
        else:
            notification.status = NotificationStatus.SENT
            notification.sent_at = timezone.now()
            notification.last_error = ""
            notification.save(update_fields=["status", "sent_at", "attempts", "last_error"])
            _audit(ctx=ctx, action="notification.sent", notification=notification, outcome=Outcome.SUCCESS)
            return True
    # Raised only once the failure above has committed, so it is kept whatever the task does next.
    raise NotificationNotDelivered(
        f"notification {notification_id} not sent (attempt {notification.attempts}): {error}"
    ) from cause


def _undeliverable_reason(recipient) -> str:
    if not recipient.is_active:
        return "the recipient's account is deactivated"
    if not recipient.email:
        return "the recipient has no email address"
    return ""


def _record_failure(*, ctx: AuditContext, notification: Notification, error: str, permanent: bool) -> None:
    notification.last_error = error[:_ERROR_LENGTH]
    notification.save(update_fields=["attempts", "last_error"])
    _audit(
        ctx=ctx,
        action="notification.failed",
        notification=notification,
        outcome=Outcome.FAILED,
        extra={"error": notification.last_error, "will_retry": not permanent},
    )


def _audit(
    *, ctx: AuditContext, action: str, notification: Notification, outcome: str, extra: dict | None = None
) -> None:
    # Who it went to and about which flag or authorisation; never the message itself (the
    # flag or authorisation holds it).
    case_id, subject_ids = None, []
    if notification.flag_id:
        flag = Flag.objects.filter(pk=notification.flag_id).values("case_id", "subject_id").first()
        case_id, subject_ids = flag["case_id"], [flag["subject_id"]]
    elif notification.authorisation_id:
        authorisation = notification.authorisation
        case_id, subject_ids = authorisation.case_id, list(authorisation.subjects.values_list("id", flat=True))
    audit_record(
        ctx=ctx,
        action=action,
        outcome=outcome,
        target_type="notification",
        target_id=notification.pk,
        case_id=case_id,
        subject_ids=subject_ids,
        payload={
            "flag": notification.flag_id,
            "authorisation": notification.authorisation_id,
            "recipient": notification.recipient.get_username(),
            "recipient_id": notification.recipient_id,
            "attempts": notification.attempts,
            **(extra or {}),
        },
    )


def notifications_resend_pending(
    *, older_than_seconds: int = 60, failed_longer_ago_than: timedelta = RESEND_AFTER_FAILURE
) -> int:
    """Queue again every notification still pending ``older_than_seconds`` after it was
    recorded (its task was lost: the broker was down at commit, or dropped the message),
    skipping those whose last failure is more recent than ``failed_longer_ago_than``
    (their own task is still retrying) and those that cannot be sent (recipient without an
    address, or deactivated). Returns how many were queued; stops at the first that the
    broker refuses (the rest would be refused too, and the next run tries again).

    Safe to run late, twice or concurrently: delivery sends each notification once."""
    now = timezone.now()
    last_failure = (
        AuditEvent.objects.filter(
            target_type="notification",
            target_id=Cast(OuterRef("pk"), output_field=CharField()),
            action="notification.failed",
        )
        .order_by("-id")
        .values("occurred_at")[:1]
    )
    due = (
        Notification.objects.filter(
            status=NotificationStatus.PENDING,
            created_at__lte=now - timedelta(seconds=older_than_seconds),
            recipient__is_active=True,
        )
        .exclude(recipient__email="")
        .annotate(last_failed_at=Subquery(last_failure))
        .filter(Q(last_failed_at__isnull=True) | Q(last_failed_at__lte=now - failed_longer_ago_than))
        .order_by("id")
        .values_list("id", flat=True)[:RESEND_BATCH]
    )
    queued = 0
    for notification_id in list(due):
        if not _enqueue(notification_id):
            break
        queued += 1
    if queued:
        logger.info("queued %s pending notification(s) again", queued)
    return queued
