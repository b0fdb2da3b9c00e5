"""Scheduled work on authorisations (Celery beat, hourly): thin tasks over the services.
All are idempotent and safe to run late or twice: expiries are recorded once (coverage
never waited for them), and reminders are recorded once per due date."""

from __future__ import annotations

import smtplib
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from audit.services import AuditContext
from authorisations import selectors, services
from authorisations.models import Authorisation
from evidence_service.api.errors import Conflict

#: A reminder still unsent this long after it was recorded is queued again.
RESEND_AFTER = timedelta(minutes=15)


@shared_task(name="authorisations.expire_due")
def expire_due() -> int:
    """Move authorisations past their expiry to ``expired``."""
    ctx = AuditContext(actor=None, via="task:authorisations.expire_due")
    now = timezone.now()
    expired = 0
    for pk in selectors.authorisations_due_to_expire(at=now):
        try:
            services.authorisation_expire(ctx=ctx, authorisation=Authorisation(pk=pk), at=now)
        except Conflict:  # renewed, cancelled or expired meanwhile
            continue
        expired += 1
    return expired


@shared_task(name="authorisations.send_reminders")
def send_reminders() -> int:
    """Remind the authorising officer and the applicant of overdue reviews and of
    expiries within ``AUTHORISATION_EXPIRY_REMINDER_DAYS``; queue again any reminder
    whose email was lost."""
    ctx = AuditContext(actor=None, via="task:authorisations.send_reminders")
    now = timezone.now()
    recorded = 0
    for due in selectors.reminders_due(at=now):
        reminder = services.authorisation_remind(
            ctx=ctx, authorisation=Authorisation(pk=due.authorisation_id), kind=due.kind, due_at=due.due_at, at=now
        )
        recorded += reminder is not None
    for reminder_id in selectors.reminders_unsent(recorded_before=now - RESEND_AFTER):
        send_reminder_email.delay(reminder_id)
    return recorded


@shared_task(
    name="authorisations.send_reminder_email",
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=True,
    max_retries=8,
)
def send_reminder_email(reminder_id: int) -> bool:
    return services.reminder_send(reminder_id=reminder_id)
