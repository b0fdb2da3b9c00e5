"""Reads of the audit log for auditors and the SRO."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from accounts.models import Role
from audit.models import AuditEvent, AuditSubjectLink
from cases.coverage import consent_counts, covered_by_values, needs_confirmation
from cases.models import Subject, Viewing
from detection.selectors import policy_rules_in_force
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


def narrow_by_actor_range(*, actor: str | None = None, since=None, until=None, **_other) -> bool:
    """Whether a page of events is best found from the actor's date range first (the
    (actor, occurred_at, id) index, read without the table) rather than by walking the
    actor's events in sequence order: so whenever both an actor and a date bound are given."""
    return bool(actor) and (since is not None or until is not None)


#: The columns of an access history's viewings and events (plain rows, not model
#: instances: a person's history can run to hundreds of rows).
HISTORY_VIEWING_FIELDS = (
    "id",
    "viewed_at",
    "recorded_at",
    "practitioner__username",
    "practitioner__role",
    "case_id",
    "case__reference",
    "profile__platform",
    "profile__url",
    "purpose",
    "purpose_detail",
    "justification",
    "access_method",
    "interaction",
    "consent_id",
    "authorisation_id",
    "supersedes_id",
    # What covered each look (cases.coverage), in the same statement.
    "practitioner_id",
    "consent__given_by",
    "consent__method",
    "consent__status",
    "consent__granted_at",
    "consent__recorded_at",
    "consent__recorded_by_id",
    "consent__withdrawn_at",
    "consent__scope",
    "covering_authorisation_id",
    "covering_authorisation__urn",
    "covering_authorisation__case_id",
)
HISTORY_EVENT_FIELDS = (
    "id",
    "occurred_at",
    "actor_username",
    "actor_role",
    "action",
    "outcome",
    "target_type",
    "target_id",
    "case_id",
)


@dataclass(frozen=True)
class AccessHistory:
    subject: dict[str, Any]
    viewings: list[dict[str, Any]]
    events: list[dict[str, Any]]


def access_history(*, subject_id: int, events_page=None, covered: bool | None = None) -> AccessHistory:
    """Every viewing of a person's profiles, and the recorded actions that touched their
    records (reads, lists, changes), oldest first: four queries, whatever the length of the
    history. Each viewing carries ``covered_by`` (cases.coverage); ``covered`` keeps only the
    looks that were (true) or were not (false) covered. ``events_page`` turns the events (a
    queryset in sequence order) into the rows to show, e.g. one keyset page of them; by
    default all of them."""
    subject = Subject.objects.filter(pk=subject_id).values("id", "display_name", "external_id").first()
    if subject is None:
        raise NotFound("subject", subject_id, field="subject")
    viewings = list(
        Viewing.objects.filter(subject_id=subject_id).order_by("viewed_at", "id").values(*HISTORY_VIEWING_FIELDS)
    )
    confirmation_needed = needs_confirmation(policy_rules_in_force())
    for viewing in viewings:
        viewing["covered_by"] = _covered_by(viewing, confirmation_needed)
    if covered is not None:
        viewings = [viewing for viewing in viewings if viewing["covered_by"]["covered"] is covered]
    events = AuditEvent.objects.touching_subject(subject_id).order_by("id").values(*HISTORY_EVENT_FIELDS)
    return AccessHistory(
        subject=subject, viewings=viewings, events=list(events_page(events) if events_page else events)
    )


def _covered_by(row: dict[str, Any], confirmation_needed: bool) -> dict[str, Any]:
    consent_ok, consent_why = consent_counts(
        consent_id=row["consent_id"],
        status=row["consent__status"],
        recorded_by_id=row["consent__recorded_by_id"],
        withdrawn_at=row["consent__withdrawn_at"],
        viewed_at=row["viewed_at"],
        practitioner_id=row["practitioner_id"],
        confirmation_needed=confirmation_needed,
        logged_at=row["recorded_at"] if row["supersedes_id"] is None else None,
    )
    return covered_by_values(
        consent=None
        if row["consent_id"] is None
        else {
            "id": row["consent_id"],
            "given_by": row["consent__given_by"] or None,
            "method": row["consent__method"] or None,
            "status": row["consent__status"],
            "granted_at": row["consent__granted_at"],
            "recorded_at": row["consent__recorded_at"],
            "withdrawn_at": row["consent__withdrawn_at"],
            "scope": [str(platform) for platform in row["consent__scope"] or []],
        },
        consent_ok=consent_ok,
        consent_why=consent_why,
        authorisation=None
        if row["covering_authorisation_id"] is None
        else {
            "id": row["covering_authorisation_id"],
            "urn": row["covering_authorisation__urn"],
            "case": row["covering_authorisation__case_id"],
        },
        cited_authorisation_id=row["authorisation_id"],
        platform=row["profile__platform"],
    )


#: The columns of an event in the auditor's event list (``subjects`` are read separately).
EVENT_LIST_FIELDS = (
    "id",
    "occurred_at",
    "actor_id",
    "actor_username",
    "actor_role",
    "action",
    "outcome",
    "target_type",
    "target_id",
    "case_id",
    "ip_address",
    "user_agent",
    "request_id",
    "payload",
    "leaf__index",
)


def subjects_of_events(event_ids: list[int]) -> dict[int, list[int]]:
    """The people each event touched, sorted, in one query."""
    subjects: dict[int, list[int]] = {event_id: [] for event_id in event_ids}
    links = AuditSubjectLink.objects.filter(event_id__in=event_ids).order_by("event_id", "subject_id")
    for event_id, subject_id in links.values_list("event_id", "subject_id"):
        subjects[event_id].append(subject_id)
    return subjects
