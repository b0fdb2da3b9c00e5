"""What ``/healthz`` knows about the audit log: whether events are being sequenced into the
Merkle tree, and (with a broker) whether the periodic tasks Celery beat sends are being run.
Each reading is one or two indexed single-row queries: it is polled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from audit.models import AuditEvent, AuditLogState, Heartbeat

BEAT = "beat"


def record_beat() -> None:
    """Called by the periodic audit task (audit/tasks.py): beat sent it and a worker runs it."""
    now = timezone.now()
    if not Heartbeat.objects.filter(name=BEAT).update(at=now):
        Heartbeat.objects.bulk_create([Heartbeat(name=BEAT, at=now)], ignore_conflicts=True)


@dataclass(frozen=True)
class AuditHealth:
    oldest_unsequenced_seconds: float | None  # the oldest event waiting for a leaf index
    beat_seconds: float | None  # since the periodic task last ran (None: no broker)

    def reasons(self) -> list[str]:
        limit = settings.AUDIT_HEALTH_MAX_LAG_SECONDS
        found = []
        if self.oldest_unsequenced_seconds is not None and self.oldest_unsequenced_seconds > limit:
            found.append("audit_sequencing_stalled")
        if self.beat_seconds is not None and self.beat_seconds > limit:
            found.append("beat_stalled")
        return found


def _age(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else max(0.0, (now - moment).total_seconds())


def audit_health() -> AuditHealth:
    now = timezone.now()
    beat_seconds = None
    if settings.REDIS_URL:
        last = Heartbeat.objects.filter(name=BEAT).values_list("at", flat=True).first()
        if last is None:
            # Beat has never run here: start counting its silence now, in the database (so a
            # restart does not reset it). A beat that never starts is reported after the limit.
            Heartbeat.objects.bulk_create([Heartbeat(name=BEAT, at=now)], ignore_conflicts=True)
            last = now
        beat_seconds = _age(last, now)
    state = AuditLogState.objects.filter(pk=1).values_list("max_event_id", "scan_from_event_id").first()
    max_event_id, scan_from = state or (0, 0)
    # Events above the highest one sequenced are all waiting: the first of them is the oldest
    # (ids are given in time order; a primary-key read).
    above = AuditEvent.objects.filter(id__gt=max_event_id).order_by("id")
    waiting = [above.values_list("occurred_at", flat=True).first()]
    if beat_seconds is not None and beat_seconds <= settings.AUDIT_HEALTH_MAX_LAG_SECONDS:
        # Events that committed after higher-numbered ones wait below it for the sweep, which
        # looks back from ``scan_from_event_id`` (kept a grace period behind by that same sweep,
        # so this range is short while beat runs). Only a late event older than the limit counts.
        cutoff = now - timedelta(seconds=settings.AUDIT_HEALTH_MAX_LAG_SECONDS)
        waiting.append(
            AuditEvent.objects.filter(id__gt=scan_from, id__lte=max_event_id, occurred_at__lt=cutoff, leaf__isnull=True)
            .order_by("id")
            .values_list("occurred_at", flat=True)
            .first()
        )
    oldest = min((moment for moment in waiting if moment is not None), default=None)
    return AuditHealth(oldest_unsequenced_seconds=_age(oldest, now), beat_seconds=beat_seconds)
