"""Reads of the audit log for auditors and the SRO."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from accounts.models import Role
from audit.models import AuditEvent
from cases.models import Subject, Viewing
from evidence_service.api.errors import NotFound

AUDIT_READERS = (Role.AUDITOR, Role.SRO)


def audit_events(
    *,
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    case: int | None = None,
    subject: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if actor:
        events = events.filter(actor_username=actor)
    if action:
        events = events.filter(action=action)
    if target_type:
        events = events.filter(target_type=target_type)
    if target_id:
        events = events.filter(target_id=target_id)
    if case is not None:
        events = events.filter(case_id=case)
    if subject is not None:
        events = events.touching_subject(subject)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    if until is not None:
        events = events.filter(occurred_at__lt=until)
    return events


@dataclass(frozen=True)
class AccessHistory:
    subject: Subject
    viewings: list[Viewing]
    events: list[AuditEvent]


def access_history(*, subject_id: int) -> AccessHistory:
    """Every viewing of a person's profiles, and every recorded action that touched
    their records (reads, lists, changes), oldest first."""
    subject = Subject.objects.filter(pk=subject_id).first()
    if subject is None:
        raise NotFound("subject", subject_id, field="subject")
    viewings = list(
        Viewing.objects.filter(subject=subject)
        .select_related("case", "profile", "practitioner", "consent", "authorisation")
        .order_by("viewed_at", "id")
    )
    events = list(AuditEvent.objects.touching_subject(subject.pk).order_by("id"))
    return AccessHistory(subject=subject, viewings=viewings, events=events)
