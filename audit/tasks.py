"""Periodic work on the audit log (thin: the logic is in audit/log.py)."""

from celery import shared_task

from audit.health import record_beat
from audit.log import integrate


@shared_task(name="audit.tasks.audit_integrate", ignore_result=True)
def audit_integrate() -> int:
    """Sequence events that committed out of id order and sign what is unsigned.
    Safe to run concurrently, late or twice: a busy integrator is skipped. Beat sends it
    every 2 seconds, so it also records that beat and a worker are running (``/healthz``)."""
    record_beat()
    result = integrate(sweep=True)
    return result.appended if result else 0
