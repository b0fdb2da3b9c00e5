"""Every write about authorisations: one service per transition of the lifecycle

    draft → submitted → refused
                      → granted → awaiting_judicial_approval → in_force | refused | quashed
                                  (RIPA types in England and Wales)
                                → in_force (non-RIPA, or Scotland)
    in_force → expired | cancelled; reviews and renewals along the way.

Each service checks who is acting, locks the authorisation, checks the current state
(409 ``invalid_state`` with ``current_status`` otherwise), validates, saves and records
its audit event in one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import AuditContext, audit_record
from authorisations import notifications, permissions
from authorisations.models import (
    RIPA_TYPES,
    Authorisation,
    AuthorisationReminder,
    AuthorisationRenewal,
    AuthorisationReview,
    AuthorisationStatus,
    AuthorisationType,
    Decision,
    JudicialApproval,
    JudicialOutcome,
    ReminderKind,
    RenewalStatus,
    ReviewOutcome,
)
from authorisations.periods import add_months_to_moment, period_end, statutory_months
from authorisations.selectors import authorisation_in_force
from cases.models import Case, CaseStatus, Profile, Subject
from cases.profiles import PLATFORM_CHOICES
from core.services import service
from evidence_service.api.errors import Conflict, Forbidden, InvalidInput

URN_CODES = {
    AuthorisationType.DIRECTED_SURVEILLANCE: "DS",
    AuthorisationType.CHIS: "CHIS",
    AuthorisationType.NON_RIPA: "NR",
}
MAX_REVIEW_INTERVAL_DAYS = 365
NON_RIPA_ROUTE = (
    'Apply with type "non_ripa" instead: an internal authorisation on necessity and proportionality '
    "(Article 8 ECHR), decided by a RIPA officer or the SRO and kept in the same central record."
)


def _needs_judicial_approval(authorisation_type: str) -> bool:
    return authorisation_type in RIPA_TYPES and settings.AUTHORISATION_JURISDICTION == "england_and_wales"


def _subject_ids(authorisation: Authorisation) -> list[int]:
    return list(authorisation.subjects.values_list("id", flat=True))


def _lock(authorisation: Authorisation) -> Authorisation:
    return Authorisation.objects.select_for_update().get(pk=authorisation.pk)


def _effective_status(authorisation: Authorisation, at: datetime) -> str:
    """The status, with an expiry the scheduled job has not recorded yet taken into
    account (``in_force`` past its expiry is ``expired``), as the API reports it."""
    return authorisation.effective_status(at)


def _invalid_state(authorisation: Authorisation, doing: str, at: datetime) -> Conflict:
    current = _effective_status(authorisation, at)
    label = AuthorisationStatus(current).label.lower()
    return Conflict(
        f"Authorisation {authorisation.urn} cannot be {doing}: it is {label}.",
        code="invalid_state",
        extra={"current_status": current},
    )


def _require_status(authorisation: Authorisation, allowed: tuple[str, ...], doing: str, at: datetime) -> None:
    if _effective_status(authorisation, at) not in allowed:
        raise _invalid_state(authorisation, doing, at)


def _require_officer(ctx: AuditContext, authorisation: Authorisation) -> None:
    refusal = permissions.why_cannot_decide(ctx.actor, authorisation)
    if refusal is not None:
        code, reason = refusal
        raise Forbidden(reason, code=code)


def _require_senior_officer(ctx: AuditContext, authorisation: Authorisation) -> None:
    if reason := permissions.why_needs_senior_officer(ctx.actor, authorisation):
        raise Forbidden(reason, code="senior_officer_required")


def _require_not_involved(directly_involved: bool) -> None:
    if directly_involved:
        raise Forbidden(
            "An authorising officer directly involved in the investigation may not decide on it; "
            "ask another authorising officer.",
            code="directly_involved",
            fields={"directly_involved": "You declared that you are directly involved."},
        )


def _officer_grade(ctx: AuditContext, given: str) -> str:
    """The grade the officer gives, or else the one on their account."""
    return (given or "").strip() or getattr(ctx.actor, "grade", "")


def _blank(problems: dict[str, str], **values: str) -> None:
    for name, value in values.items():
        if not (value or "").strip():
            problems[name] = "This field may not be blank."


# --- Applications -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Application:
    """What a practitioner asks to be authorised (the Home Office form's fields)."""

    type: str
    subject_ids: list[int]
    profile_ids: list[int] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    title: str = ""
    purpose: str = ""
    information_sought: str = ""
    planned_activity: str = ""
    necessity: str = ""
    proportionality: str = ""
    alternatives_considered: str = ""
    collateral_intrusion: str = ""
    confidential_information_likely: bool = False
    crime_purpose: bool = False
    offence: str = ""
    offence_max_sentence_months: int | None = None
    underage_sale_offence: bool = False
    juvenile_source: bool = False
    vulnerable_source: bool = False


def _ripa_problems(application: Application | Authorisation) -> dict[str, str]:
    """Why this application cannot be authorised under RIPA by a council in England and
    Wales (empty when it can, or for ``non_ripa``). Scotland has no such threshold here."""
    if application.type not in RIPA_TYPES or settings.AUTHORISATION_JURISDICTION != "england_and_wales":
        return {}
    if not application.crime_purpose:
        return {
            "crime_purpose": "A council may authorise surveillance or a CHIS under RIPA only to prevent or "
            "detect crime (or prevent disorder); safeguarding on its own is not a RIPA purpose."
        }
    if not (application.offence or "").strip():
        return {"offence": "Name the offence being investigated."}
    threshold = settings.AUTHORISATION_CRIME_THRESHOLD_MONTHS
    months = application.offence_max_sentence_months
    if (
        application.type == AuthorisationType.DIRECTED_SURVEILLANCE
        and not application.underage_sale_offence
        and (months is None or months < threshold)
    ):
        return {
            "offence_max_sentence_months": f"Directed surveillance can be authorised under RIPA only for an offence "
            f"with a maximum sentence of at least {threshold} months' imprisonment, or a listed under-age sale "
            "offence."
        }
    return {}


def _check_application(case: Case, application: Application) -> tuple[dict[str, str], list, list]:
    problems: dict[str, str] = {}
    if application.type not in AuthorisationType.values:
        problems["type"] = f"Choose one of {', '.join(AuthorisationType.values)}."
    subject_ids = list(dict.fromkeys(application.subject_ids))
    subjects = list(Subject.objects.filter(pk__in=subject_ids, case_links__case=case).distinct())
    if not subject_ids:
        problems["subjects"] = "Name at least one person the authorisation is about."
    elif missing := sorted(set(subject_ids) - {subject.pk for subject in subjects}):
        problems["subjects"] = f"Not people on case {case.reference}: {', '.join(map(str, missing))}."
    profile_ids = list(dict.fromkeys(application.profile_ids))
    profiles = list(Profile.objects.filter(pk__in=profile_ids, subject_id__in=[s.pk for s in subjects]))
    if missing := sorted(set(profile_ids) - {profile.pk for profile in profiles}):
        problems["profiles"] = f"Not profiles of the subjects named: {', '.join(map(str, missing))}."
    platforms = list(dict.fromkeys(application.platforms))
    if unknown := [p for p in platforms if p not in PLATFORM_CHOICES]:
        problems["platforms"] = f"Unknown platform(s): {', '.join(map(str, unknown))}."
    if not platforms and not profile_ids:
        problems["platforms"] = "Name the platforms or the profiles in scope."
    _blank(
        problems,
        purpose=application.purpose,
        information_sought=application.information_sought,
        necessity=application.necessity,
        proportionality=application.proportionality,
        alternatives_considered=application.alternatives_considered,
        collateral_intrusion=application.collateral_intrusion,
    )
    if application.type != AuthorisationType.CHIS:
        for name in ("juvenile_source", "vulnerable_source"):
            if getattr(application, name):
                problems[name] = "Only a CHIS application has a source."
    if application.offence_max_sentence_months is not None and application.offence_max_sentence_months < 0:
        problems["offence_max_sentence_months"] = "Must not be negative."
    return problems, subjects, profiles


@service
def authorisation_create(*, ctx: AuditContext, case: Case, application: Application) -> Authorisation:
    """A practitioner's application, saved as a draft with its unique reference number.
    Directed surveillance or a CHIS that RIPA cannot authorise is refused here, pointing
    to the non-RIPA route."""
    if not permissions.can_apply(ctx.actor, case):
        raise Forbidden(f"Only practitioners in the team that owns case {case.reference} may apply.")
    if case.status == CaseStatus.CLOSED:
        raise Conflict(f"Case {case.reference} is closed.", code="case_closed", fields={"case": "The case is closed."})
    problems, subjects, profiles = _check_application(case, application)
    if problems:
        raise InvalidInput("The application is incomplete.", fields=problems)
    if ripa := _ripa_problems(application):
        raise InvalidInput(
            f"This cannot be authorised under RIPA. {next(iter(ripa.values()))} {NON_RIPA_ROUTE}",
            code="ripa_not_available",
            fields=ripa,
        )
    authorisation = Authorisation(
        urn=f"PENDING-{uuid.uuid4().hex[:24]}",
        type=application.type,
        case=case,
        applicant=ctx.actor,
        title=application.title.strip() or case.title,
        platforms=list(dict.fromkeys(application.platforms)),
        purpose=application.purpose.strip(),
        information_sought=application.information_sought.strip(),
        planned_activity=application.planned_activity.strip(),
        necessity=application.necessity.strip(),
        proportionality=application.proportionality.strip(),
        alternatives_considered=application.alternatives_considered.strip(),
        collateral_intrusion=application.collateral_intrusion.strip(),
        confidential_information_likely=application.confidential_information_likely,
        crime_purpose=application.crime_purpose,
        offence=application.offence.strip(),
        offence_max_sentence_months=application.offence_max_sentence_months,
        underage_sale_offence=application.underage_sale_offence,
        juvenile_source=application.juvenile_source,
        vulnerable_source=application.vulnerable_source,
    )
    authorisation.full_clean(exclude=["case", "applicant"])
    authorisation.save()
    year = timezone.localtime(authorisation.created_at).year
    authorisation.urn = f"{URN_CODES[authorisation.type]}-{year}-{authorisation.pk:05d}"
    authorisation.save(update_fields=["urn"])
    authorisation.subjects.set(subjects)
    authorisation.profiles.set(profiles)
    audit_record(
        ctx=ctx,
        action="authorisation.create",
        target_type="authorisation",
        target_id=authorisation.pk,
        case_id=case.pk,
        subject_ids=[subject.pk for subject in subjects],
        payload={
            "urn": authorisation.urn,
            "type": authorisation.type,
            "title": authorisation.title,
            "profile_ids": [profile.pk for profile in profiles],
            "platforms": authorisation.platforms,
            "purpose": authorisation.purpose,
            "confidential_information_likely": authorisation.confidential_information_likely,
            "crime_purpose": authorisation.crime_purpose,
            "offence": authorisation.offence,
            "offence_max_sentence_months": authorisation.offence_max_sentence_months,
            "underage_sale_offence": authorisation.underage_sale_offence,
            "juvenile_source": authorisation.juvenile_source,
            "vulnerable_source": authorisation.vulnerable_source,
        },
    )
    return authorisation


def _require_case_open(authorisation: Authorisation) -> None:
    """No application goes forward on a closed case: submitted, granted or renewed."""
    case = authorisation.case
    if case.status == CaseStatus.CLOSED:
        raise Conflict(
            f"Case {case.reference} is closed.",
            code="case_closed",
            extra={"current_status": authorisation.status},
        )


@service
def authorisation_submit(*, ctx: AuditContext, authorisation: Authorisation) -> Authorisation:
    """The applicant sends their draft to the authorising officers."""
    authorisation = _lock(authorisation)
    if ctx.actor is None or authorisation.applicant_id != ctx.actor.pk:
        raise Forbidden("Only the applicant may submit their application.")
    now = timezone.now()
    _require_status(authorisation, (AuthorisationStatus.DRAFT,), "submitted", now)
    _require_case_open(authorisation)
    authorisation.status = AuthorisationStatus.SUBMITTED
    authorisation.submitted_at = now
    authorisation.save(update_fields=["status", "submitted_at"])
    notified = notifications.notify_submitted(authorisation)
    audit_record(
        ctx=ctx,
        action="authorisation.submit",
        target_type="authorisation",
        target_id=authorisation.pk,
        case_id=authorisation.case_id,
        subject_ids=_subject_ids(authorisation),
        payload={"urn": authorisation.urn, "notified": [officer.username for officer in notified]},
    )
    return authorisation


# --- Decisions ----------------------------------------------------------------------------------


@service
def authorisation_grant(
    *,
    ctx: AuditContext,
    authorisation: Authorisation,
    officer_grade: str,
    statement: str,
    limits: str,
    review_interval_days: int,
    expires_at: datetime | None = None,
    directly_involved: bool = False,
) -> Authorisation:
    """The authorising officer grants a submitted application. A RIPA authorisation in
    England and Wales then awaits a magistrate's approval; a non-RIPA one (or any in
    Scotland) is in force at once. The officer sets a non-RIPA authorisation's expiry
    (at most ``AUTHORISATION_NON_RIPA_MAX_MONTHS`` months)."""
    authorisation = _lock(authorisation)
    _require_officer(ctx, authorisation)
    _require_not_involved(directly_involved)
    now = timezone.now()
    _require_status(authorisation, (AuthorisationStatus.SUBMITTED,), "granted", now)
    _require_senior_officer(ctx, authorisation)
    _require_case_open(authorisation)
    if ripa := _ripa_problems(authorisation):
        raise Conflict(
            f"This cannot be granted under RIPA. {next(iter(ripa.values()))} Refuse it; the applicant may "
            f"apply again under the non-RIPA route. {NON_RIPA_ROUTE}",
            code="ripa_not_available",
            fields=ripa,
        )
    problems: dict[str, str] = {}
    officer_grade = _officer_grade(ctx, officer_grade)
    _blank(problems, officer_grade=officer_grade, statement=statement, limits=limits)
    if not 1 <= review_interval_days <= MAX_REVIEW_INTERVAL_DAYS:
        problems["review_interval_days"] = f"Give a number of days from 1 to {MAX_REVIEW_INTERVAL_DAYS}."
    if authorisation.type == AuthorisationType.NON_RIPA:
        latest = add_months_to_moment(now, settings.AUTHORISATION_NON_RIPA_MAX_MONTHS)
        if expires_at is None:
            problems["expires_at"] = "Set the date and time a non-RIPA authorisation ends."
        elif expires_at <= now:
            problems["expires_at"] = "Must be in the future."
        elif expires_at > latest:
            problems["expires_at"] = (
                f"A non-RIPA authorisation may last at most {settings.AUTHORISATION_NON_RIPA_MAX_MONTHS} months "
                f"(until {timezone.localtime(latest).isoformat()})."
            )
    elif expires_at is not None:
        problems["expires_at"] = "The expiry of a RIPA authorisation is set by statute; leave this out."
    if problems:
        raise InvalidInput("The grant cannot be recorded.", fields=problems)
    authorisation.decision = Decision.GRANTED
    authorisation.decided_by = ctx.actor
    authorisation.decided_at = now
    authorisation.officer_grade = officer_grade.strip()
    authorisation.officer_statement = statement.strip()
    authorisation.limits = limits.strip()
    authorisation.officer_directly_involved = False
    authorisation.review_interval_days = review_interval_days
    if _needs_judicial_approval(authorisation.type):
        authorisation.status = AuthorisationStatus.AWAITING_JUDICIAL_APPROVAL
    else:
        months = statutory_months(authorisation_type=authorisation.type, juvenile_source=authorisation.juvenile_source)
        authorisation.status = AuthorisationStatus.IN_FORCE
        authorisation.in_force_at = now
        authorisation.expires_at = expires_at if months is None else period_end(start=now, months=months)
        authorisation.next_review_due = now + timedelta(days=review_interval_days)
    authorisation.full_clean(exclude=["case", "applicant", "decided_by", "cancelled_by"])
    authorisation.save()
    audit_record(
        ctx=ctx,
        action="authorisation.grant",
        target_type="authorisation",
        target_id=authorisation.pk,
        case_id=authorisation.case_id,
        subject_ids=_subject_ids(authorisation),
        payload={
            "urn": authorisation.urn,
            "officer_grade": authorisation.officer_grade,
            "statement": authorisation.officer_statement,
            "limits": authorisation.limits,
            "review_interval_days": review_interval_days,
            "status": authorisation.status,
            "in_force_at": authorisation.in_force_at,
            "expires_at": authorisation.expires_at,
            "jurisdiction": settings.AUTHORISATION_JURISDICTION,
        },
    )
    notifications.notify_decided(authorisation, actor=ctx.actor)
    return authorisation


@service
def authorisation_refuse(
    *,
    ctx: AuditContext,
    authorisation: Authorisation,
    officer_grade: str,
    statement: str,
    directly_involved: bool = False,
) -> Authorisation:
    """The authorising officer refuses a submitted application; the refusal stays in the
    central record."""
    authorisation = _lock(authorisation)
    _require_officer(ctx, authorisation)
    _require_not_involved(directly_involved)
    now = timezone.now()
    _require_status(authorisation, (AuthorisationStatus.SUBMITTED,), "refused", now)
    problems: dict[str, str] = {}
    officer_grade = _officer_grade(ctx, officer_grade)
    _blank(problems, officer_grade=officer_grade, statement=statement)
    if problems:
        raise InvalidInput("The refusal cannot be recorded.", fields=problems)
    authorisation.status = AuthorisationStatus.REFUSED
    authorisation.decision = Decision.REFUSED
    authorisation.decided_by = ctx.actor
    authorisation.decided_at = now
    authorisation.officer_grade = officer_grade.strip()
    authorisation.officer_statement = statement.strip()
    authorisation.officer_directly_involved = False
    authorisation.save(
        update_fields=[
            "status",
            "decision",
            "decided_by",
            "decided_at",
            "officer_grade",
            "officer_statement",
            "officer_directly_involved",
        ]
    )
    audit_record(
        ctx=ctx,
        action="authorisation.refuse",
        target_type="authorisation",
        target_id=authorisation.pk,
        case_id=authorisation.case_id,
        subject_ids=_subject_ids(authorisation),
        payload={"urn": authorisation.urn, "officer_grade": authorisation.officer_grade, "statement": statement},
    )
    notifications.notify_decided(authorisation, actor=ctx.actor)
    return authorisation


# --- Magistrate approval --------------------------------------------------------------------------


@service
def authorisation_record_judicial_approval(
    *,
    ctx: AuditContext,
    authorisation: Authorisation,
    court: str,
    justice: str,
    decided_at: datetime,
    outcome: str,
    notes: str = "",
) -> JudicialApproval:
    """Record a magistrate's decision on the grant awaiting approval, or else on the
    renewal awaiting approval. Approval of a grant brings it into force from the time of
    the decision; approval of a renewal moves the expiry on to the renewal's. A refusal
    or quashing of a renewal leaves the authorisation in force until its old expiry."""
    authorisation = _lock(authorisation)
    _require_officer(ctx, authorisation)
    now = timezone.now()
    if authorisation.type not in RIPA_TYPES or settings.AUTHORISATION_JURISDICTION != "england_and_wales":
        raise Conflict(
            "Magistrate approval applies only to directed surveillance and CHIS authorisations in England and Wales.",
            code="no_judicial_approval",
            extra={"current_status": _effective_status(authorisation, now)},
        )
    renewal = None
    if authorisation.status != AuthorisationStatus.AWAITING_JUDICIAL_APPROVAL:
        renewal = (
            authorisation.renewals.select_for_update().filter(status=RenewalStatus.AWAITING_JUDICIAL_APPROVAL).first()
        )
        if renewal is None or authorisation.status not in (AuthorisationStatus.IN_FORCE, AuthorisationStatus.EXPIRED):
            raise _invalid_state(authorisation, "put before a magistrate (nothing is awaiting approval)", now)
    problems: dict[str, str] = {}
    _blank(problems, court=court, justice=justice)
    if outcome not in JudicialOutcome.values:
        problems["outcome"] = f"Choose one of {', '.join(JudicialOutcome.values)}."
    earliest = renewal.renewed_at if renewal else authorisation.decided_at
    if decided_at > now:
        problems["decided_at"] = "The magistrate's decision cannot be in the future."
    elif decided_at < earliest:
        problems["decided_at"] = "The magistrate's decision cannot precede the authorising officer's."
    elif renewal is not None and decided_at >= renewal.previous_expires_at:
        problems["decided_at"] = "The authorisation had expired by then; an expired authorisation cannot be renewed."
    if problems:
        raise InvalidInput("The magistrate's decision cannot be recorded.", fields=problems)
    approval = JudicialApproval(
        authorisation=authorisation,
        renewal=renewal,
        court=court.strip(),
        justice=justice.strip(),
        decided_at=decided_at,
        outcome=outcome,
        notes=notes.strip(),
        recorded_by=ctx.actor,
        recorded_at=now,
    )
    approval.full_clean(exclude=["authorisation", "renewal", "recorded_by"])
    approval.save()
    reinstated = False
    if renewal is None:
        if outcome == JudicialOutcome.APPROVED:
            months = statutory_months(
                authorisation_type=authorisation.type, juvenile_source=authorisation.juvenile_source
            )
            authorisation.status = AuthorisationStatus.IN_FORCE
            authorisation.in_force_at = decided_at
            authorisation.expires_at = period_end(start=decided_at, months=months)
            authorisation.next_review_due = decided_at + timedelta(days=authorisation.review_interval_days or 0)
        else:
            authorisation.status = (
                AuthorisationStatus.QUASHED if outcome == JudicialOutcome.QUASHED else AuthorisationStatus.REFUSED
            )
    else:
        renewal.status = {
            JudicialOutcome.APPROVED: RenewalStatus.APPROVED,
            JudicialOutcome.REFUSED: RenewalStatus.REFUSED,
            JudicialOutcome.QUASHED: RenewalStatus.QUASHED,
        }[outcome]
        renewal.save(update_fields=["status"])
        if outcome == JudicialOutcome.APPROVED:
            authorisation.expires_at = renewal.new_expires_at
            if authorisation.status == AuthorisationStatus.EXPIRED:
                # The scheduled job recorded the old expiry before this approval (given
                # before it) was entered: the authorisation never lapsed.
                authorisation.status = AuthorisationStatus.IN_FORCE
                authorisation.expiry_recorded_at = None
                reinstated = True
    authorisation.save()
    audit_record(
        ctx=ctx,
        action="authorisation.judicial_approval",
        target_type="authorisation",
        target_id=authorisation.pk,
        case_id=authorisation.case_id,
        subject_ids=_subject_ids(authorisation),
        payload={
            "urn": authorisation.urn,
            "renewal_id": renewal.pk if renewal else None,
            "court": approval.court,
            "justice": approval.justice,
            "decided_at": decided_at,
            "outcome": outcome,
            "status": authorisation.status,
            "in_force_at": authorisation.in_force_at,
            "expires_at": authorisation.expires_at,
            "reinstated": reinstated,
        },
    )
    notifications.notify_judicial_outcome(authorisation, outcome=outcome, renewal=renewal, actor=ctx.actor)
    return approval


# --- Reviews, renewals, cancellation, expiry -----------------------------------------------------


@dataclass(frozen=True)
class Cancellation:
    reason: str
    information_obtained: str
    material_direction: str
    staff_told_to_stop_at: datetime | None


def _cancellation_problems(
    cancellation: Cancellation, now: datetime, granted_at: datetime | None, prefix: str = ""
) -> dict[str, str]:
    problems: dict[str, str] = {}
    _blank(
        problems,
        reason=cancellation.reason,
        information_obtained=cancellation.information_obtained,
        material_direction=cancellation.material_direction,
    )
    if cancellation.staff_told_to_stop_at is None:
        problems["staff_told_to_stop_at"] = "Say when staff were told to stop."
    elif cancellation.staff_told_to_stop_at > now:
        problems["staff_told_to_stop_at"] = "Tell staff to stop before recording the cancellation."
    elif granted_at is not None and cancellation.staff_told_to_stop_at < granted_at:
        problems["staff_told_to_stop_at"] = "Cannot be before the authorisation was granted."
    return {f"{prefix}{name}": message for name, message in problems.items()}


@service
def authorisation_cancel(
    *, ctx: AuditContext, authorisation: Authorisation, cancellation: Cancellation
) -> Authorisation:
    """Cancel as soon as the authorisation is no longer necessary or proportionate. It
    stops covering viewings from this moment; a renewal still awaiting approval is
    withdrawn."""
    authorisation = _lock(authorisation)
    _require_officer(ctx, authorisation)
    now = timezone.now()
    _require_status(
        authorisation,
        (AuthorisationStatus.GRANTED, AuthorisationStatus.AWAITING_JUDICIAL_APPROVAL, AuthorisationStatus.IN_FORCE),
        "cancelled",
        now,
    )
    problems = _cancellation_problems(cancellation, now, authorisation.decided_at)
    if problems:
        raise InvalidInput("The cancellation cannot be recorded.", fields=problems)
    authorisation.status = AuthorisationStatus.CANCELLED
    authorisation.cancelled_at = now
    authorisation.cancelled_by = ctx.actor
    authorisation.cancellation_reason = cancellation.reason.strip()
    authorisation.information_obtained = cancellation.information_obtained.strip()
    authorisation.material_direction = cancellation.material_direction.strip()
    authorisation.staff_told_to_stop_at = cancellation.staff_told_to_stop_at
    authorisation.next_review_due = None
    authorisation.save()
    withdrawn = list(
        authorisation.renewals.filter(status=RenewalStatus.AWAITING_JUDICIAL_APPROVAL).values_list("id", flat=True)
    )
    authorisation.renewals.filter(pk__in=withdrawn).update(status=RenewalStatus.WITHDRAWN)
    audit_record(
        ctx=ctx,
        action="authorisation.cancel",
        target_type="authorisation",
        target_id=authorisation.pk,
        case_id=authorisation.case_id,
        subject_ids=_subject_ids(authorisation),
        payload={
            "urn": authorisation.urn,
            "cancelled_at": now,
            "reason": authorisation.cancellation_reason,
            "information_obtained": authorisation.information_obtained,
            "material_direction": authorisation.material_direction,
            "staff_told_to_stop_at": authorisation.staff_told_to_stop_at,
            "withdrawn_renewal_ids": withdrawn,
        },
    )
    notifications.notify_cancelled(authorisation, actor=ctx.actor)
    return authorisation


@service
def authorisation_review(
    *,
    ctx: AuditContext,
    authorisation: Authorisation,
    findings: str,
    outcome: str,
    next_review_due: datetime | None = None,
    cancellation: Cancellation | None = None,
) -> AuthorisationReview:
    """An authorising officer reviews an authorisation in force. ``continue`` sets the
    next review (by default one review interval on); ``cancel`` cancels it now, with the
    cancellation's details, in the same transaction."""
    authorisation = _lock(authorisation)
    _require_officer(ctx, authorisation)
    now = timezone.now()
    _require_status(authorisation, (AuthorisationStatus.IN_FORCE,), "reviewed", now)
    problems: dict[str, str] = {}
    _blank(problems, findings=findings)
    if outcome not in ReviewOutcome.values:
        problems["outcome"] = f"Choose one of {', '.join(ReviewOutcome.values)}."
    elif outcome == ReviewOutcome.CONTINUE:
        if next_review_due is None and authorisation.review_interval_days:
            next_review_due = now + timedelta(days=authorisation.review_interval_days)
        if next_review_due is None:
            problems["next_review_due"] = "Set the date of the next review."
        elif next_review_due <= now:
            problems["next_review_due"] = "The next review must be in the future."
        elif next_review_due > now + timedelta(days=MAX_REVIEW_INTERVAL_DAYS):
            problems["next_review_due"] = f"Review at least every {MAX_REVIEW_INTERVAL_DAYS} days."
        if cancellation is not None:
            problems["cancellation"] = "Only a review that cancels gives cancellation details."
    elif cancellation is None:
        problems["cancellation"] = "A review that cancels needs the cancellation's details."
    else:
        next_review_due = None
        problems.update(_cancellation_problems(cancellation, now, authorisation.decided_at, prefix="cancellation."))
    if problems:
        raise InvalidInput("The review cannot be recorded.", fields=problems)
    review = AuthorisationReview(
        authorisation=authorisation,
        reviewed_by=ctx.actor,
        reviewed_at=now,
        findings=findings.strip(),
        outcome=outcome,
        next_review_due=next_review_due,
    )
    review.full_clean(exclude=["authorisation", "reviewed_by"])
    review.save()
    if outcome == ReviewOutcome.CONTINUE:
        authorisation.next_review_due = next_review_due
        authorisation.save(update_fields=["next_review_due"])
    audit_record(
        ctx=ctx,
        action="authorisation.review",
        target_type="authorisation",
        target_id=authorisation.pk,
        case_id=authorisation.case_id,
        subject_ids=_subject_ids(authorisation),
        payload={
            "urn": authorisation.urn,
            "review_id": review.pk,
            "findings": review.findings,
            "outcome": outcome,
            "next_review_due": next_review_due,
        },
    )
    if outcome == ReviewOutcome.CANCEL:
        authorisation_cancel(ctx=ctx, authorisation=authorisation, cancellation=cancellation)
    return review


@service
def authorisation_renew(
    *,
    ctx: AuditContext,
    authorisation: Authorisation,
    officer_grade: str,
    statement: str,
    expires_at: datetime | None = None,
) -> AuthorisationRenewal:
    """Renew an authorisation in force before it expires; the new expiry runs from the
    old one. A RIPA renewal in England and Wales waits for a magistrate's approval, and
    until then the authorisation stays in force on its old expiry; any other renewal takes
    effect at once. A non-RIPA renewal's expiry is set by the officer (at most
    ``AUTHORISATION_NON_RIPA_MAX_MONTHS`` months beyond the old one)."""
    authorisation = _lock(authorisation)
    _require_officer(ctx, authorisation)
    now = timezone.now()
    _require_status(authorisation, (AuthorisationStatus.IN_FORCE,), "renewed", now)
    _require_senior_officer(ctx, authorisation)
    _require_case_open(authorisation)
    if authorisation.renewals.filter(status=RenewalStatus.AWAITING_JUDICIAL_APPROVAL).exists():
        raise Conflict(
            "A renewal of this authorisation is already awaiting a magistrate's approval.",
            code="renewal_pending",
            extra={"current_status": authorisation.status},
        )
    problems: dict[str, str] = {}
    officer_grade = _officer_grade(ctx, officer_grade)
    _blank(problems, officer_grade=officer_grade, statement=statement)
    old_expiry = authorisation.expires_at
    months = statutory_months(authorisation_type=authorisation.type, juvenile_source=authorisation.juvenile_source)
    if months is None:
        latest = add_months_to_moment(old_expiry, settings.AUTHORISATION_NON_RIPA_MAX_MONTHS)
        if expires_at is None:
            problems["expires_at"] = "Set the date and time the renewed authorisation ends."
        elif expires_at <= old_expiry:
            problems["expires_at"] = "Must be after the current expiry."
        elif expires_at > latest:
            problems["expires_at"] = (
                f"A renewal may add at most {settings.AUTHORISATION_NON_RIPA_MAX_MONTHS} months "
                f"(until {timezone.localtime(latest).isoformat()})."
            )
        new_expiry = expires_at
    else:
        if expires_at is not None:
            problems["expires_at"] = "The expiry of a RIPA renewal is set by statute; leave this out."
        new_expiry = period_end(start=old_expiry, months=months)
    if problems:
        raise InvalidInput("The renewal cannot be recorded.", fields=problems)
    pending = _needs_judicial_approval(authorisation.type)
    renewal = AuthorisationRenewal(
        authorisation=authorisation,
        renewed_by=ctx.actor,
        renewed_at=now,
        officer_grade=officer_grade.strip(),
        statement=statement.strip(),
        previous_expires_at=old_expiry,
        new_expires_at=new_expiry,
        status=RenewalStatus.AWAITING_JUDICIAL_APPROVAL if pending else RenewalStatus.APPROVED,
    )
    renewal.full_clean(exclude=["authorisation", "renewed_by"])
    renewal.save()
    if not pending:
        authorisation.expires_at = new_expiry
        authorisation.save(update_fields=["expires_at"])
    audit_record(
        ctx=ctx,
        action="authorisation.renew",
        target_type="authorisation",
        target_id=authorisation.pk,
        case_id=authorisation.case_id,
        subject_ids=_subject_ids(authorisation),
        payload={
            "urn": authorisation.urn,
            "renewal_id": renewal.pk,
            "officer_grade": renewal.officer_grade,
            "statement": renewal.statement,
            "previous_expires_at": old_expiry,
            "new_expires_at": new_expiry,
            "status": renewal.status,
        },
    )
    return renewal


@service
def authorisation_expire(
    *, ctx: AuditContext, authorisation: Authorisation, at: datetime | None = None
) -> Authorisation:
    """Record that an authorisation in force has passed its expiry. Coverage never
    waits for this: it is bookkeeping, safe to run late or twice (the second time
    answers 409 with the current status)."""
    authorisation = _lock(authorisation)
    now = timezone.now()
    at = at or now
    if authorisation.status != AuthorisationStatus.IN_FORCE or authorisation.expires_at > at:
        raise Conflict(
            f"Authorisation {authorisation.urn} is not due to expire.",
            code="invalid_state",
            extra={"current_status": authorisation.status},
        )
    authorisation.status = AuthorisationStatus.EXPIRED
    authorisation.expiry_recorded_at = now
    authorisation.next_review_due = None
    authorisation.save(update_fields=["status", "expiry_recorded_at", "next_review_due"])
    audit_record(
        ctx=ctx,
        action="authorisation.expire",
        target_type="authorisation",
        target_id=authorisation.pk,
        case_id=authorisation.case_id,
        subject_ids=_subject_ids(authorisation),
        payload={
            "urn": authorisation.urn,
            "expires_at": authorisation.expires_at,
            "recorded_late_by_seconds": int((now - authorisation.expires_at).total_seconds()),
        },
    )
    notifications.notify_expired(authorisation)
    return authorisation


# --- Reminders ----------------------------------------------------------------------------------


@service
def authorisation_remind(
    *, ctx: AuditContext, authorisation: Authorisation, kind: str, due_at: datetime, at: datetime | None = None
) -> AuthorisationReminder | None:
    """Record a reminder (review overdue, or expiry soon) for the authorising officer who
    granted the authorisation and the applicant, and queue its email after commit. Once
    per authorisation, kind and due moment: None when already reminded or no longer due."""
    authorisation = _lock(authorisation)
    now = timezone.now()
    at = at or now
    if authorisation.status != AuthorisationStatus.IN_FORCE or not authorisation_in_force(
        authorisation=authorisation, at=at
    ):
        return None
    if kind == ReminderKind.REVIEW_OVERDUE:
        still_due = authorisation.next_review_due == due_at and due_at <= at
    elif kind == ReminderKind.EXPIRY_SOON:
        horizon = at + timedelta(days=settings.AUTHORISATION_EXPIRY_REMINDER_DAYS)
        still_due = authorisation.expires_at == due_at and due_at <= horizon
    else:
        raise ValueError(f"unknown reminder kind {kind!r}")
    if not still_due:
        return None
    people = [user for user in (authorisation.decided_by, authorisation.applicant) if user is not None]
    recipients = list(dict.fromkeys(user.email for user in people if user.email))
    try:
        with transaction.atomic():
            reminder = AuthorisationReminder.objects.create(
                authorisation=authorisation,
                kind=kind,
                due_at=due_at,
                recipients=recipients,
                created_at=now,
                # Handed to the notifications outbox below, in this transaction: one email
                # to each person, sent and retried from there.
                sent_at=now,
            )
    except IntegrityError:  # reminded already (perhaps by a concurrent run)
        return None
    audit_record(
        ctx=ctx,
        action="authorisation.remind",
        target_type="authorisation",
        target_id=authorisation.pk,
        case_id=authorisation.case_id,
        subject_ids=_subject_ids(authorisation),
        payload={
            "urn": authorisation.urn,
            "reminder_id": reminder.pk,
            "kind": kind,
            "due_at": due_at,
            "recipients": [user.get_username() for user in people if user.email],
            "without_email": [user.get_username() for user in people if not user.email],
        },
    )
    subject, text = _reminder_text(reminder)
    notifications.notify_reminder(authorisation, people=people, subject=subject, text=text)
    return reminder


@service(durable=True)
def reminder_send(*, reminder_id: int) -> bool:
    """Send the email of a reminder recorded before reminders went through the
    notifications outbox (one still unsent after an upgrade), once: the row is locked
    while sending and marked sent, so a second delivery of the task sends nothing. False
    if already sent. Its own transaction, committed on return (``durable``): a caller's
    rollback after the email went would leave it unsent, to be sent again."""
    reminder = AuthorisationReminder.objects.select_for_update().filter(pk=reminder_id).first()
    if reminder is None or reminder.sent_at is not None:
        return False
    authorisation = Authorisation.objects.select_related("case").get(pk=reminder.authorisation_id)
    subject, text = _reminder_text(reminder)
    body = (
        f"Authorisation {authorisation.urn} ({AuthorisationType(authorisation.type).label}) for case "
        f"{authorisation.case.reference}.\n\n{text}\n\n"
        f"The authorisation: {notifications.site_link(f'/authorisations/{authorisation.pk}/')}\n"
    )
    subject_line = " ".join(f"[{authorisation.urn}] {subject}".split())
    send_mail(subject_line, body, settings.DEFAULT_FROM_EMAIL, reminder.recipients, fail_silently=False)
    reminder.sent_at = timezone.now()
    reminder.save(update_fields=["sent_at"])
    return True


def _reminder_text(reminder: AuthorisationReminder) -> tuple[str, str]:
    """The subject (after the URN) and what to do. No names of the people under
    surveillance in email: the URN and case reference are enough to find the record."""
    due = timezone.localtime(reminder.due_at).strftime("%d %B %Y %H:%M %Z")
    if reminder.kind == ReminderKind.REVIEW_OVERDUE:
        return f"Review overdue since {due}", (
            f"Its review was due on {due} and has not been recorded. Review it, or cancel it if it is no "
            "longer necessary and proportionate."
        )
    return f"Expires on {due}", (
        f"It expires on {due}. Renew it before then if it is still necessary and proportionate, or cancel it."
    )
