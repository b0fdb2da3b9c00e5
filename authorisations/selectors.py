"""Reads of authorisations: for the API (starting from ``visible_to(user)``), for deciding
whether a viewing is covered, for the central record and for the scheduled jobs.

Coverage is computed from stored times and scope alone, so an authorisation stops covering
at the second it expires or is cancelled, whatever the scheduled jobs have done yet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from authorisations.models import (
    Authorisation,
    AuthorisationReminder,
    AuthorisationRenewal,
    AuthorisationStatus,
    JudicialApproval,
    ReminderKind,
)
from authorisations.periods import add_years
from evidence_service.api.errors import NotFound
from evidence_service.db import select

DETAIL_RELATED = ("case", "applicant", "decided_by", "cancelled_by")


def _detail_prefetches() -> list:
    return [
        "subjects",
        "profiles",
        "reviews__reviewed_by",
        Prefetch(
            "renewals",
            queryset=AuthorisationRenewal.objects.select_related("renewed_by", "judicial_approval__recorded_by"),
        ),
        Prefetch("judicial_approvals", queryset=JudicialApproval.objects.select_related("recorded_by")),
    ]


def authorisation_list(
    *,
    user,
    case_id: int | None = None,
    status: str | None = None,
    type: str | None = None,
    at: datetime | None = None,
) -> QuerySet[Authorisation]:
    """The authorisations ``user`` may see; ``status`` is the effective status at ``at``
    (default now), so one past its expiry is ``expired`` before the scheduled job records it."""
    authorisations = Authorisation.objects.visible_to(user).select_related("case", "applicant")
    if case_id is not None:
        authorisations = authorisations.filter(case_id=case_id)
    if status:
        authorisations = authorisations.with_effective_status(status, at or timezone.now())
    if type:
        authorisations = authorisations.filter(type=type)
    return authorisations


def authorisation_get(*, user, authorisation_id: object) -> Authorisation:
    queryset = (
        Authorisation.objects.visible_to(user).select_related(*DETAIL_RELATED).prefetch_related(*_detail_prefetches())
    )
    try:
        return queryset.get(pk=int(authorisation_id))
    except (ValueError, TypeError, Authorisation.DoesNotExist):
        raise NotFound("authorisation", authorisation_id) from None


# --- Coverage ---------------------------------------------------------------------------------


def _local(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


def authorisation_check_viewing(
    *, authorisation: Authorisation, subject_id: int, profile_id: int, platform: str, at: datetime
) -> list[str]:
    """The reasons ``authorisation`` does not cover a look at ``profile_id`` (of
    ``subject_id``, on ``platform``) at ``at``; empty when it does."""
    problems: list[str] = []
    if authorisation.in_force_at is None:
        problems.append(f"Authorisation {authorisation.urn} has not come into force (status: {authorisation.status}).")
    elif at < authorisation.in_force_at:
        problems.append(
            f"Authorisation {authorisation.urn} came into force later, at {_local(authorisation.in_force_at)}."
        )
    elif authorisation.cancelled_at is not None and authorisation.cancelled_at <= at:
        problems.append(f"Authorisation {authorisation.urn} was cancelled at {_local(authorisation.cancelled_at)}.")
    elif authorisation.expires_at <= at:
        problems.append(f"Authorisation {authorisation.urn} expired at {_local(authorisation.expires_at)}.")
    if not _among(authorisation, "subjects", subject_id):
        problems.append("The person viewed is not a subject of this authorisation.")
    if platform not in (authorisation.platforms or []) and not _among(authorisation, "profiles", profile_id):
        problems.append(f"This {platform} profile is outside the authorisation's profiles and platforms.")
    return problems


def _among(authorisation: Authorisation, scope: str, pk: int) -> bool:
    """Whether ``pk`` is in the authorisation's ``scope`` (subjects or profiles): from those
    prefetched with it, as for a page of viewings, or else one query."""
    prefetched = getattr(authorisation, "_prefetched_objects_cache", {}).get(scope)
    if prefetched is not None:
        return any(row.pk == pk for row in prefetched)
    return getattr(authorisation, scope).filter(pk=pk).exists()


@dataclass(frozen=True)
class AuthorisationCoverage:
    """The authorisations of one person that were in force at some moment of a period,
    with their scope, read in at most two queries; coverage of any look at that person
    within the period is then worked out without going back to the database."""

    authorisations: tuple[Authorisation, ...]  # newest in force first
    profile_ids: dict[int, frozenset[int]]  # authorisation id -> profiles in its scope

    NONE: ClassVar[AuthorisationCoverage]  # for a person known to be in no authorisation

    @classmethod
    def load(
        cls, *, subject_id: int, since: datetime, until: datetime, case_id: int | None = None
    ) -> AuthorisationCoverage:
        # Runs for every viewing logged: a plain statement (the condition of
        # ``AuthorisationQuerySet.in_force_at``, widened to a period) costs a fraction of
        # building the query; tests/cases/test_viewing_reads.py checks the two agree.
        people = Authorisation.subjects.through._meta.db_table
        sql = f"""FROM {Authorisation._meta.db_table} a
                  WHERE a.id IN (SELECT authorisation_id FROM {people} WHERE subject_id = %s)
                    AND a.in_force_at <= %s AND a.expires_at > %s AND (a.cancelled_at IS NULL OR a.cancelled_at > %s)"""
        params: list = [subject_id, until, since, since]
        if case_id is not None:
            sql += " AND a.case_id = %s"
            params.append(case_id)
        authorisations = tuple(select(Authorisation, "a", sql + " ORDER BY a.in_force_at DESC, a.id DESC", params))
        profile_ids: dict[int, set[int]] = {authorisation.pk: set() for authorisation in authorisations}
        if authorisations:
            links = Authorisation.profiles.through.objects.filter(authorisation_id__in=profile_ids)
            for authorisation_id, profile_id in links.values_list("authorisation_id", "profile_id"):
                profile_ids[authorisation_id].add(profile_id)
        return cls(authorisations, {pk: frozenset(ids) for pk, ids in profile_ids.items()})

    def covering(
        self, *, profile_id: int, platform: str, at: datetime, case_id: int | None = None
    ) -> Authorisation | None:
        """The authorisation in force at ``at`` whose scope includes this profile (and, with
        ``case_id``, granted for that case: an authorisation covers only its own case's
        looks), preferring the one that came into force most recently."""
        for authorisation in self.authorisations:
            if case_id is not None and authorisation.case_id != case_id:
                continue
            if authorisation_in_force(authorisation=authorisation, at=at) and (
                platform in (authorisation.platforms or []) or profile_id in self.profile_ids[authorisation.pk]
            ):
                return authorisation
        return None


AuthorisationCoverage.NONE = AuthorisationCoverage((), {})


def authorisation_covering(
    *, subject_id: int, profile_id: int, platform: str, at: datetime, case_id: int | None = None
) -> Authorisation | None:
    """The authorisation in force at ``at`` whose scope includes this profile of this
    person (optionally only one for ``case_id``), preferring the one that came into force
    most recently; None when no authorisation covers the look."""
    coverage = AuthorisationCoverage.load(subject_id=subject_id, since=at, until=at, case_id=case_id)
    return coverage.covering(profile_id=profile_id, platform=platform, at=at, case_id=case_id)


def authorisation_in_force(*, authorisation: Authorisation, at: datetime) -> bool:
    return bool(
        authorisation.in_force_at is not None
        and authorisation.in_force_at <= at < authorisation.expires_at
        and (authorisation.cancelled_at is None or at < authorisation.cancelled_at)
    )


# --- Central record -----------------------------------------------------------------------------


def central_record(
    *, type: str | None = None, status: str | None = None, at: datetime | None = None
) -> QuerySet[Authorisation]:
    """Every authorisation that reached an authorising officer, refusals included
    (drafts never did); ``status`` is the effective status at ``at`` (default now)."""
    records = (
        Authorisation.objects.exclude(status=AuthorisationStatus.DRAFT)
        .select_related(*DETAIL_RELATED)
        .prefetch_related(*_detail_prefetches())
    )
    if type:
        records = records.filter(type=type)
    if status:
        records = records.with_effective_status(status, at or timezone.now())
    return records


URGENCY_NOT_AVAILABLE = {
    "england_and_wales": "Not available: councils in England and Wales may not give urgent oral authorisations "
    "(RIPA s.43(1A)); every authorisation here was given in writing.",
    "scotland": "Not used: this service records written authorisations only.",
}


def authorisation_ended_at(authorisation: Authorisation) -> datetime | None:
    """When the authorisation ended (or, in force, will end on its current expiry): the
    start of its retention period. None while an application awaits a decision."""
    if authorisation.cancelled_at is not None and (
        authorisation.expires_at is None or authorisation.cancelled_at < authorisation.expires_at
    ):
        return authorisation.cancelled_at
    if authorisation.expires_at is not None:
        return authorisation.expires_at
    if authorisation.status in (AuthorisationStatus.REFUSED, AuthorisationStatus.QUASHED):
        decisions = [approval.decided_at for approval in authorisation.judicial_approvals.all()]
        return max([authorisation.decided_at, *decisions], default=None) if authorisation.decided_at else None
    return None


def central_record_entry(authorisation: Authorisation, *, at: datetime | None = None) -> dict:
    """One authorisation as the central record shows it at ``at`` (default now): every
    field inspectors ask for (DOMAIN.md, "Central record of authorisations"), refusals
    included, with its effective status."""
    grant_approval = next((a for a in authorisation.judicial_approvals.all() if a.renewal_id is None), None)
    ended_at = authorisation_ended_at(authorisation)
    officer = authorisation.decided_by
    return {
        "id": authorisation.pk,
        "urn": authorisation.urn,
        "type": authorisation.type,
        "status": authorisation.effective_status(at or timezone.now()),
        "case_reference": authorisation.case.reference,
        "title": authorisation.title,
        "description": authorisation.purpose,
        "subjects": [subject.display_name for subject in authorisation.subjects.all()],
        "applicant": _name(authorisation.applicant),
        "applicant_username": authorisation.applicant.get_username(),
        "submitted_at": authorisation.submitted_at,
        "decision": authorisation.decision or None,
        "decided_at": authorisation.decided_at,
        "date_granted": authorisation.decided_at if authorisation.decision == "granted" else None,
        "authorising_officer": (
            {
                "name": _name(officer),
                "grade": authorisation.officer_grade or officer.grade,
                "username": officer.get_username(),
            }
            if officer
            else None
        ),
        "urgency_used": False,
        "urgency_reason": URGENCY_NOT_AVAILABLE[settings.AUTHORISATION_JURISDICTION],
        "confidential_information_likely": authorisation.confidential_information_likely,
        "officer_directly_involved": authorisation.officer_directly_involved if officer else None,
        "magistrate_approval": _approval_entry(grant_approval),
        "in_force_at": authorisation.in_force_at,
        "expires_at": authorisation.expires_at,
        "reviews": [
            {
                "reviewed_at": review.reviewed_at,
                "reviewed_by": _name(review.reviewed_by),
                "reviewed_by_grade": review.reviewed_by.grade,
                "reviewed_by_username": review.reviewed_by.get_username(),
                "outcome": review.outcome,
                "findings": review.findings,
                "next_review_due": review.next_review_due,
            }
            for review in authorisation.reviews.all()
        ],
        "renewals": [
            {
                "renewed_at": renewal.renewed_at,
                "renewed_by": _name(renewal.renewed_by),
                "renewed_by_username": renewal.renewed_by.get_username(),
                "officer_grade": renewal.officer_grade,
                "previous_expires_at": renewal.previous_expires_at,
                "new_expires_at": renewal.new_expires_at,
                "status": renewal.status,
                "magistrate_approval": _approval_entry(getattr(renewal, "judicial_approval", None)),
            }
            for renewal in authorisation.renewals.all()
        ],
        "cancelled_at": authorisation.cancelled_at,
        "cancelled_by": _name(authorisation.cancelled_by) if authorisation.cancelled_by else None,
        "cancelled_by_grade": authorisation.cancelled_by.grade if authorisation.cancelled_by else None,
        "cancelled_by_username": authorisation.cancelled_by.get_username() if authorisation.cancelled_by else None,
        "ended_at": ended_at,
        "retention_until": add_years(ended_at, settings.AUTHORISATION_RETENTION_YEARS) if ended_at else None,
    }


def _name(user) -> str:
    """An officer's (or applicant's) full name; their username when none is recorded."""
    return user.get_full_name() or user.get_username()


def _approval_entry(approval: JudicialApproval | None) -> dict | None:
    if approval is None:
        return None
    return {
        "court": approval.court,
        "justice": approval.justice,
        "decided_at": approval.decided_at,
        "decision": approval.outcome,
    }


# --- Scheduled work -----------------------------------------------------------------------------


def authorisations_due_to_expire(*, at: datetime) -> list[int]:
    """Ids of authorisations still marked in force whose expiry has passed."""
    return list(
        Authorisation.objects.filter(status=AuthorisationStatus.IN_FORCE, expires_at__lte=at)
        .order_by("expires_at", "id")
        .values_list("id", flat=True)
    )


@dataclass(frozen=True)
class DueReminder:
    authorisation_id: int
    kind: str
    due_at: datetime


def reminders_due(*, at: datetime) -> list[DueReminder]:
    """Reviews overdue and expiries within ``AUTHORISATION_EXPIRY_REMINDER_DAYS`` of
    authorisations in force at ``at``, not yet reminded for that due date."""
    in_force = Authorisation.objects.filter(status=AuthorisationStatus.IN_FORCE).in_force_at(at)
    due: list[DueReminder] = []
    for pk, review_due in in_force.filter(next_review_due__lte=at).values_list("id", "next_review_due"):
        due.append(DueReminder(pk, ReminderKind.REVIEW_OVERDUE, review_due))
    horizon = at + timedelta(days=settings.AUTHORISATION_EXPIRY_REMINDER_DAYS)
    for pk, expires_at in in_force.filter(expires_at__lte=horizon).values_list("id", "expires_at"):
        due.append(DueReminder(pk, ReminderKind.EXPIRY_SOON, expires_at))
    sent = set(
        AuthorisationReminder.objects.filter(authorisation_id__in={item.authorisation_id for item in due}).values_list(
            "authorisation_id", "kind", "due_at"
        )
    )
    return [item for item in due if (item.authorisation_id, item.kind, item.due_at) not in sent]


def reminders_unsent(*, recorded_before: datetime) -> list[int]:
    """Reminders recorded before ``recorded_before`` whose email has not gone yet (the
    queued send was lost or failed), to queue again."""
    return list(
        AuthorisationReminder.objects.filter(sent_at__isnull=True, created_at__lt=recorded_before)
        .order_by("id")
        .values_list("id", flat=True)
    )
