"""Delivery of flag notifications (thin: the logic is in detection/notifications.py)."""

from __future__ import annotations

import logging

from celery import shared_task

from detection.notifications import NotificationNotDelivered, notification_deliver, notifications_resend_pending

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="detection.send_notification",
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    # Retried until delivered, as SPEC asks; the outbox row records every attempt.
    max_retries=None,
    # Acknowledged only once it has run, so a worker lost mid-send leaves the message to
    # be delivered again (the row lock and the sent status make that harmless).
    acks_late=True,
    ignore_result=True,
)
def send_notification(self, notification_id: int) -> bool:
    try:
        return notification_deliver(notification_id=notification_id)
    except NotificationNotDelivered:
        if self.request.is_eager:
            # Run in-process (no broker): a retry here would run again at once, without
            # backoff and without end. The failure is recorded and the notification stays
            # pending in the outbox for ``resend_pending_notifications``.
            logger.warning("notification %s not sent; left pending in the outbox", notification_id, exc_info=True)
            return False
        raise


@shared_task(name="detection.resend_pending_notifications", ignore_result=True)
def resend_pending_notifications() -> int:
    """Queue again the notifications whose task was lost (Celery beat, every 30 seconds)."""
    return notifications_resend_pending()
