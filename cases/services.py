"""Every write about cases, subjects, profiles, consent and viewings. Each service checks
the actor may act, validates, saves and records its audit event in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Team
from audit.models import AuditEvent, Outcome
from audit.services import AuditContext, audit_record
from authorisations.models import Authorisation
from authorisations.selectors import AuthorisationCoverage, authorisation_check_viewing
from cases.check import ViewingCheck, check_answer
from cases.coverage import MEANINGFUL_TEXT_MIN, meaningful
from cases.identity import external_id_key, name_key
from cases.models import (
    Case,
    CaseStatus,
    CaseSubject,
    Consent,
    ConsentGivenBy,
    ConsentMethod,
    ConsentStatus,
    Interaction,
    Profile,
    Purpose,
    Subject,
    Viewing,
)
from cases.permissions import can_manage_subject, is_practitioner, works_on_case
from cases.profiles import PLATFORM_CHOICES, ProfileAddressError, normalise_profile
from cases.selectors import ViewingContext, viewing_authorisation_cover, viewing_context, viewing_cover
from core.services import service
from detection.plan import detection_plan
from detection.services import detection_apply, link_guessing_flag
from evidence_service.api.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceError, Throttled
from evidence_service.db import read_only
from evidence_service.text import text_problem

#: A viewing logged more than this long after it happened needs a late-entry reason.
LATE_ENTRY_AFTER = timedelta(days=7)


def _require_practitioner(ctx: AuditContext, doing: str) -> None:
    if not is_practitioner(ctx.actor):
        raise Forbidden(f"Only practitioners may {doing}.")


def _require_case_team(ctx: AuditContext, case: Case, *, works: bool | None = None) -> None:
    """``works``: whether the actor works on the case, when already read (else it is read)."""
    if not (works_on_case(ctx.actor, case) if works is None else works):
        raise Forbidden(f"You do not work in the team that owns case {case.reference}.")


def _require_subject_team(ctx: AuditContext, subject: Subject) -> None:
    if not can_manage_subject(ctx.actor, subject):
        raise Forbidden("This person is not linked to a case of your teams.")


def _open_case_team(ctx: AuditContext, subject: Subject) -> Team:
    """The actor's team that has the person on an open case (the earliest such link), for a
    new profile or consent: 403 when no case of theirs has the person, 409 ``case_closed``
    when all of those cases are closed."""
    links = CaseSubject.objects.filter(subject=subject, case__team__in=ctx.actor.teams.all()).select_related(
        "case__team"
    )
    links = list(links.order_by("linked_at", "id")) if is_practitioner(ctx.actor) else []
    if not links:
        raise Forbidden("This person is not linked to a case of your teams.")
    open_links = [link for link in links if link.case.status == CaseStatus.OPEN]
    if not open_links:
        raise Conflict(
            "Every case of your teams this person is on is closed: closed cases take no new profiles or consents.",
            code="case_closed",
            extra={"current_status": CaseStatus.CLOSED},
        )
    return open_links[0].case.team


# --- Cases ----------------------------------------------------------------------------------


@service
def case_create(*, ctx: AuditContext, reference: str, title: str, team: Team) -> Case:
    _require_practitioner(ctx, "open cases")
    if not ctx.actor.teams.filter(pk=team.pk).exists():
        raise Forbidden("You can only open cases for your own teams.", fields={"team": "Not one of your teams."})
    reference, title = reference.strip(), title.strip()
    problems = {
        name: problem
        for name, value in (("reference", reference), ("title", title))
        if (problem := text_problem(value, one_line=True))
    }
    if problems:
        raise InvalidInput("The case cannot be opened.", fields=problems)
    if Case.objects.filter(reference=reference).exists():
        raise Conflict(
            f"A case with reference {reference!r} already exists.", fields={"reference": "This reference is in use."}
        )
    case = Case(reference=reference, title=title, team=team, created_by=ctx.actor)
    # The reference's uniqueness is left to the database (below): checked here too, a
    # reference taken by a request that committed since the check above would answer 400.
    case.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            case.save()
    except IntegrityError:  # a concurrent request took the reference first
        raise Conflict(
            f"A case with reference {reference!r} already exists.", fields={"reference": "This reference is in use."}
        ) from None
    audit_record(
        ctx=ctx,
        action="case.create",
        target_type="case",
        target_id=case.pk,
        case_id=case.pk,
        payload={"reference": case.reference, "title": case.title, "team_id": team.pk},
    )
    return case


@service
def case_close(*, ctx: AuditContext, case: Case) -> Case:
    _require_practitioner(ctx, "close cases")
    case = Case.objects.select_for_update().get(pk=case.pk)
    _require_case_team(ctx, case)
    if case.status == CaseStatus.CLOSED:
        raise Conflict("The case is already closed.", code="invalid_state", extra={"current_status": case.status})
    case.status = CaseStatus.CLOSED
    case.closed_at = timezone.now()
    case.closed_by = ctx.actor
    case.save(update_fields=["status", "closed_at", "closed_by"])
    audit_record(ctx=ctx, action="case.close", target_type="case", target_id=case.pk, case_id=case.pk)
    return case


# --- Subjects ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectLinkResult:
    subject: Subject
    link: CaseSubject
    subject_created: bool
    link_created: bool


def _require_case_open(case: Case) -> None:
    if case.status == CaseStatus.CLOSED:
        raise Conflict(
            f"Case {case.reference} is closed: it takes no new people, profiles, consents or applications.",
            code="case_closed",
            extra={"current_status": case.status},
        )


# A refusal returned by ``_subject_add_to_case`` (its audit event, and the LINK_GUESSING flag
# it counts toward, written in its savepoint) is committed before it is raised
# (``commit_on``); an error raised inside that savepoint has rolled its writes back first.
@service(commit_on=(ServiceError,))
def subject_add_to_case(
    *,
    ctx: AuditContext,
    case: Case,
    display_name: str,
    relationship: str,
    external_id: str | None = None,
    date_of_birth: date | None = None,
    force: bool = False,
    force_reason: str = "",
) -> SubjectLinkResult:
    """Link a person to a case. An ``external_id`` already known (compared by its key,
    ``cases.identity``) links that existing person, so their views are counted together
    across cases. A new person whose name and date of birth match a person the actor can
    see already is refused (409 ``possible_duplicate``, naming them) unless ``force`` with a
    ``force_reason`` says they are someone else.

    Linking someone known only through other teams' cases needs their name and date of
    birth; each failure is recorded (``subject.link_refused``, committed before the refusal
    is answered) and after ``LINK_FAILURES_PER_DAY`` in a day
    the actor may try no more that day (429). Failures raise a LINK_GUESSING flag for the
    officers (``detection.services.link_guessing_flag``)."""
    outcome = _subject_add_to_case(
        ctx=ctx,
        case=case,
        display_name=display_name,
        relationship=relationship,
        external_id=external_id,
        date_of_birth=date_of_birth,
        force=force,
        force_reason=force_reason,
    )
    if isinstance(outcome, ServiceError):
        raise outcome  # refused: its record was committed with the transaction
    return outcome


#: The first key of the transaction-scoped advisory lock that takes one user's attempts to
#: link people known to other teams one at a time (PostgreSQL's two-key form).
LINK_ATTEMPT_LOCK_SPACE = 0x43455332


def _one_attempt_at_a_time(actor) -> None:
    """Until the transaction ends, this actor's other link attempts wait: the count of their
    refusals read next and the refusal written then are one step, so that many attempts sent
    at once cannot all pass the count before any is recorded. (SQLite runs one writing
    transaction at a time anyway.)"""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [LINK_ATTEMPT_LOCK_SPACE, int(actor.pk) % 2147483647]
            )


def _link_refusal(
    *,
    ctx: AuditContext,
    case: Case,
    subject: Subject,
    display_name: str,
    date_of_birth: date | None,
    external_id: str | None,
) -> ServiceError | None:
    """Whether the existing person ``subject``, found by external id, may be linked: when the
    actor can see them already, or otherwise knows their name and date of birth and has not
    used up the day's refused attempts (a guessed id must not show another team's records of
    someone). None when they may; otherwise the refusal, already recorded (audited, and
    counted toward a LINK_GUESSING flag), for the caller to commit and then raise."""
    if Subject.objects.visible_to(ctx.actor).filter(pk=subject.pk).exists():
        return None
    _one_attempt_at_a_time(ctx.actor)
    failures = _link_failures_today(actor=ctx.actor)
    if failures >= settings.LINK_FAILURES_PER_DAY:
        error = Throttled(
            "Too many refused attempts to link people known to other teams today: try again tomorrow, "
            "or ask the team that holds the person's record.",
            retry_after=24 * 3600,
        )
        action = "subject.link_throttled"
    elif name_key(subject.display_name) != name_key(display_name) or subject.date_of_birth != date_of_birth:
        # The same answer whatever was wrong (the name, the date of birth, both, or a missing
        # date), so that it tells a guesser nothing but "no".
        error = Conflict(
            "A person with this external_id is already recorded, with other details. Check the id, "
            "the name and the date of birth, or ask the team that holds the person's record.",
            code="subject_details_mismatch",
            fields={"external_id": "Recorded for a person with other details."},
        )
        action = "subject.link_refused"
    else:
        return None
    error.target_type, error.target_id, error.subject_ids = "subject", subject.pk, (subject.pk,)
    error.audited = True
    audit_record(
        ctx=ctx,
        action=action,
        outcome=Outcome.DENIED,
        target_type="subject",
        target_id=subject.pk,
        case_id=case.pk,
        subject_ids=[subject.pk],
        payload={"code": error.code, "display_name": display_name[:200], "external_id": (external_id or "")[:64]},
    )
    if action == "subject.link_refused":
        link_guessing_flag(ctx=ctx, case=case, subject_id=subject.pk, failures=failures + 1)
    return error


def _link_failures_today(*, actor) -> int:
    """The actor's refused attempts to link someone known only to other teams, in the last
    24 hours (their audit events: the count cannot be reset by anyone)."""
    return AuditEvent.objects.filter(
        actor_username=actor.get_username(),
        occurred_at__gte=timezone.now() - timedelta(days=1),
        action="subject.link_refused",
    ).count()


@transaction.atomic
def _subject_add_to_case(
    *,
    ctx: AuditContext,
    case: Case,
    display_name: str,
    relationship: str,
    external_id: str | None,
    date_of_birth: date | None,
    force: bool,
    force_reason: str,
) -> SubjectLinkResult | ServiceError:
    _require_practitioner(ctx, "add people to cases")
    _require_case_team(ctx, case)
    _require_case_open(case)
    display_name = display_name.strip()
    force_reason = (force_reason or "").strip()
    if force and not meaningful(force_reason):
        raise InvalidInput(
            "Say why this is a different person from the one with the same name and date of birth.",
            fields={"force_reason": "Required with force: at least 10 characters that say something."},
        )
    external_id = (external_id or "").strip() or None
    external_key = external_id_key(external_id) if external_id else None
    if external_id and not external_key:
        raise InvalidInput(
            "That external_id has no letters or digits.", fields={"external_id": "Give the id's letters and digits."}
        )
    if external_key and len(external_key) > Subject._meta.get_field("external_key").max_length:
        raise InvalidInput("That external_id is too long.", fields={"external_id": "Too long."})
    subject = Subject.objects.filter(external_key=external_key).first() if external_key else None
    known = {"ctx": ctx, "case": case, "display_name": display_name, "date_of_birth": date_of_birth}
    if subject is not None and (refusal := _link_refusal(subject=subject, external_id=external_id, **known)):
        return refusal
    subject_created = subject is None
    if subject_created:
        if not force:
            _refuse_duplicate(ctx, display_name=display_name, date_of_birth=date_of_birth)
        subject = Subject(
            display_name=display_name,
            external_id=external_id,
            external_key=external_key,
            date_of_birth=date_of_birth,
            created_by=ctx.actor,
        )
        # The external id's uniqueness is left to the database (below), so that a person
        # recorded by a concurrent request is linked as if they had been found above.
        subject.full_clean(validate_unique=False)
        try:
            with transaction.atomic():
                subject.save()
        except IntegrityError:  # created concurrently with the same external id
            subject = Subject.objects.get(external_key=external_key)
            subject_created = False
            if refusal := _link_refusal(subject=subject, external_id=external_id, **known):
                return refusal
    if subject_created:
        audit_record(
            ctx=ctx,
            action="subject.create",
            target_type="subject",
            target_id=subject.pk,
            case_id=case.pk,
            subject_ids=[subject.pk],
            payload={
                "display_name": subject.display_name,
                "external_id": external_id,
                "date_of_birth": date_of_birth,
                "forced": bool(force),
                "force_reason": force_reason or None,
            },
        )
    link, link_created = CaseSubject.objects.get_or_create(
        case=case, subject=subject, defaults={"relationship": relationship, "linked_by": ctx.actor}
    )
    # Linking answers with the person's record, so an existing link is a read of it.
    audit_record(
        ctx=ctx,
        action="subject.link" if link_created else "subject.read",
        target_type="subject",
        target_id=subject.pk,
        case_id=case.pk,
        subject_ids=[subject.pk],
        payload={
            "relationship": link.relationship,
            "existing_subject": not subject_created,
            "already_linked": not link_created,
        },
    )
    return SubjectLinkResult(subject=subject, link=link, subject_created=subject_created, link_created=link_created)


def _refuse_duplicate(ctx: AuditContext, *, display_name: str, date_of_birth: date | None) -> None:
    """A new person with the name and date of birth of one the actor can see is likely that
    person: 409 naming them (only people the actor can see, so nothing is revealed)."""
    if date_of_birth is None or not display_name:
        return
    wanted = name_key(display_name)
    candidates = Subject.objects.visible_to(ctx.actor).filter(date_of_birth=date_of_birth).order_by("id")
    match = next((person for person in candidates if name_key(person.display_name) == wanted), None)
    if match is None:
        return
    error = Conflict(
        f"{match.display_name}, born {date_of_birth.isoformat()}, is already recorded (subject {match.pk}). "
        "Link that person with their external_id, or, if this is someone else, send force=true with a "
        "force_reason.",
        code="possible_duplicate",
        fields={"display_name": f"Same name and date of birth as subject {match.pk}."},
        extra={"existing_subject": match.pk},
    )
    error.target_type, error.target_id, error.subject_ids = "subject", match.pk, (match.pk,)
    raise error


# --- Profiles -----------------------------------------------------------------------------------


@service
def profile_register(*, ctx: AuditContext, subject: Subject, platform: str, handle: str) -> tuple[Profile, bool]:
    """Register a subject's profile; the same profile again returns the existing one."""
    _require_practitioner(ctx, "register profiles")
    _open_case_team(ctx, subject)
    if platform not in PLATFORM_CHOICES:
        raise InvalidInput("Unknown platform.", fields={"platform": f"Choose one of {', '.join(PLATFORM_CHOICES)}."})
    try:
        normalised = normalise_profile(platform, handle)
    except ProfileAddressError as exc:
        raise InvalidInput(str(exc), fields={"handle": str(exc)}) from exc
    existing = Profile.objects.filter(platform=platform, handle=normalised.handle).first()
    if existing is None:
        profile = Profile(
            subject=subject, platform=platform, handle=normalised.handle, url=normalised.url, created_by=ctx.actor
        )
        try:
            # The one constraint, a profile registered once, is left to the database
            # (below): checked here too, a profile registered by a request that committed
            # since the look-up above would be refused as a bad address.
            profile.full_clean(validate_constraints=False)
        except ValidationError as exc:
            messages = [m for field_messages in exc.message_dict.values() for m in field_messages]
            raise InvalidInput("That is not a valid profile address.", fields={"handle": messages}) from exc
        try:
            with transaction.atomic():
                profile.save()
        except IntegrityError:
            existing = Profile.objects.get(platform=platform, handle=normalised.handle)
        else:
            audit_record(
                ctx=ctx,
                action="profile.create",
                target_type="profile",
                target_id=profile.pk,
                subject_ids=[subject.pk],
                payload={"platform": platform, "handle": profile.handle, "url": profile.url, "given": handle[:500]},
            )
            return profile, True
    if existing.subject_id != subject.pk:
        error = Conflict(
            "This profile is already registered to another person.",
            code="profile_belongs_to_another_subject",
            fields={"handle": "Registered to another person."},
        )
        # The refusal tells the caller the profile is known: it belongs in the owner's history.
        error.target_type, error.target_id, error.subject_ids = "profile", existing.pk, (existing.subject_id,)
        raise error
    audit_record(
        ctx=ctx,
        action="profile.read",
        target_type="profile",
        target_id=existing.pk,
        subject_ids=[subject.pk],
        payload={"via": "registered again", "given": handle[:500]},
    )
    return existing, False


# --- Consent ----------------------------------------------------------------------------------


@service
def consent_record(
    *,
    ctx: AuditContext,
    subject: Subject,
    scope: list[str],
    granted_at: datetime,
    evidence: str,
    given_by: str = "",
    given_by_name: str = "",
    method: str = "",
    granted_at_reason: str = "",
    expires_at: datetime | None = None,
) -> Consent:
    """Record a person's consent: who gave it (the person, someone with parental
    responsibility or a legal representative, by name), how, the evidence and when. It covers
    only looks logged after now (``recorded_at``), whatever its ``granted_at``; a grant more
    than ``CONSENT_LATE_RECORD_DAYS`` before now needs a reason. It awaits an officer's
    confirmation: until then it does not cover the looks of the practitioner who recorded it
    (unless the detection policy's ``consent_needs_confirmation`` is off)."""
    _require_practitioner(ctx, "record consent")
    team = _open_case_team(ctx, subject)
    problems: dict[str, str] = {}
    now = timezone.now()
    scope = list(dict.fromkeys(scope))
    if not scope:
        problems["scope"] = 'Name at least one platform, or ["all"].'
    elif Consent.ALL in scope and len(scope) > 1:
        problems["scope"] = '"all" cannot be combined with named platforms.'
    elif unknown := [p for p in scope if p != Consent.ALL and p not in PLATFORM_CHOICES]:
        problems["scope"] = f"Unknown platform(s): {', '.join(map(str, unknown))}."
    if granted_at > now:
        problems["granted_at"] = "Consent cannot be recorded as granted in the future."
    elif now - granted_at > timedelta(days=settings.CONSENT_LATE_RECORD_DAYS) and not meaningful(granted_at_reason):
        problems["granted_at_reason"] = (
            f"This consent was granted more than {settings.CONSENT_LATE_RECORD_DAYS} days ago: say why it is "
            f"recorded only now (at least {MEANINGFUL_TEXT_MIN} characters, not counting spaces)."
        )
    if expires_at is not None and expires_at <= granted_at:
        problems["expires_at"] = "Must be after granted_at."
    if not meaningful(evidence):
        problems["evidence"] = (
            "Say how the consent was given and where the record of it is kept "
            f"(at least {MEANINGFUL_TEXT_MIN} characters, not counting spaces)."
        )
    if given_by not in ConsentGivenBy.values:
        problems["given_by"] = f"Say who gave it: one of {', '.join(ConsentGivenBy.values)}."
    if not given_by_name.strip():
        problems["given_by_name"] = "Give the name of the person who gave the consent."
    if method not in ConsentMethod.values:
        problems["method"] = f"Say how it was given: one of {', '.join(ConsentMethod.values)}."
    if problems:
        raise InvalidInput("The consent cannot be recorded.", fields=problems)
    consent = Consent(
        subject=subject,
        scope=scope,
        granted_at=granted_at,
        expires_at=expires_at,
        evidence=evidence.strip(),
        given_by=given_by,
        given_by_name=given_by_name.strip(),
        method=method,
        granted_at_reason=granted_at_reason.strip(),
        status=ConsentStatus.AWAITING_CONFIRMATION,
        recorded_by=ctx.actor,
        team=team,
    )
    consent.full_clean()
    consent.save()
    audit_record(
        ctx=ctx,
        action="consent.create",
        target_type="consent",
        target_id=consent.pk,
        subject_ids=[subject.pk],
        payload={
            "scope": scope,
            "granted_at": granted_at,
            "granted_at_reason": consent.granted_at_reason or None,
            "expires_at": expires_at,
            "evidence": consent.evidence,
            "given_by": given_by,
            "given_by_name": consent.given_by_name,
            "method": method,
            "status": consent.status,
            "recorded_at": consent.recorded_at,
            "team_id": team.pk,
        },
    )
    return consent


@service
def consent_confirm(*, ctx: AuditContext, consent: Consent, note: str = "") -> Consent:
    """An officer (RIPA officer or SRO) confirms a consent: from then on it covers the looks
    of the practitioner who recorded it too (looks logged after it was recorded)."""
    if not getattr(ctx.actor, "is_officer", False):
        raise Forbidden("Only a RIPA officer or the senior responsible officer may confirm consent.")
    consent = Consent.objects.select_for_update().get(pk=consent.pk)
    if consent.recorded_by_id == ctx.actor.pk:
        raise Forbidden("You recorded this consent, so you may not confirm it.")
    if consent.status == ConsentStatus.CONFIRMED:
        raise Conflict(
            "This consent is already confirmed.", code="invalid_state", extra={"current_status": "confirmed"}
        )
    if consent.withdrawn_at is not None:
        raise Conflict("This consent has been withdrawn.", code="invalid_state", extra={"current_status": "withdrawn"})
    consent.status = ConsentStatus.CONFIRMED
    consent.confirmed_at = timezone.now()
    consent.confirmed_by = ctx.actor
    consent.save(update_fields=["status", "confirmed_at", "confirmed_by"])
    audit_record(
        ctx=ctx,
        action="consent.confirm",
        target_type="consent",
        target_id=consent.pk,
        subject_ids=[consent.subject_id],
        payload={"confirmed_at": consent.confirmed_at, "note": note.strip() or None},
    )
    return consent


@service
def consent_withdraw(
    *, ctx: AuditContext, consent: Consent, reason: str = "", withdrawn_at: datetime | None = None
) -> Consent:
    """Record that consent was withdrawn at ``withdrawn_at`` (default now); views after
    that moment are no longer covered by it."""
    _require_practitioner(ctx, "withdraw consent")
    consent = Consent.objects.select_for_update().get(pk=consent.pk)
    _require_subject_team(ctx, consent.subject)
    if consent.team_id is None or not ctx.actor.teams.filter(pk=consent.team_id).exists():
        # Another team's consent (or one whose team is not known) is not the actor's to
        # change: as if it did not exist, like every record outside one's scope.
        raise NotFound("consent", consent.pk)
    if consent.withdrawn_at is not None:
        raise Conflict(
            "This consent has already been withdrawn.", code="invalid_state", extra={"current_status": "withdrawn"}
        )
    now = timezone.now()
    withdrawn_at = withdrawn_at or now
    if withdrawn_at > now:
        raise InvalidInput("Withdrawal cannot be in the future.", fields={"withdrawn_at": "Cannot be in the future."})
    if withdrawn_at < consent.granted_at:
        raise InvalidInput(
            "Withdrawal cannot precede the grant.",
            fields={"withdrawn_at": "Must not be before the consent was granted."},
        )
    consent.withdrawn_at = withdrawn_at
    consent.withdrawn_by = ctx.actor
    consent.withdrawal_reason = reason.strip()
    consent.save(update_fields=["withdrawn_at", "withdrawn_by", "withdrawal_reason"])
    audit_record(
        ctx=ctx,
        action="consent.withdraw",
        target_type="consent",
        target_id=consent.pk,
        subject_ids=[consent.subject_id],
        payload={"withdrawn_at": withdrawn_at, "reason": consent.withdrawal_reason},
    )
    return consent


# --- Viewings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewingDetails:
    """What a practitioner says about one look at a profile."""

    case: Case
    profile: Profile
    purpose: str
    justification: str
    access_method: str
    interaction: str
    information_recorded: str
    third_party_information: str
    purpose_detail: str = ""
    viewed_at: datetime | None = None
    late_entry_reason: str = ""
    authorisation: Authorisation | None = None
    external_authority_kind: str = ""
    external_authority_reference: str = ""


def _check_viewing(
    details: ViewingDetails,
    now: datetime,
    *,
    correcting: bool,
    linked_to_case: bool,
    earlier_times: tuple[datetime, ...] = (),
) -> dict[str, str]:
    """``earlier_times``: for a correction, the moments the records it corrects gave."""
    problems: dict[str, str] = {}
    viewed_at = details.viewed_at or now
    reason_needed = ""
    if viewed_at > now:
        problems["viewed_at"] = "A viewing cannot be in the future."
    elif now - viewed_at > LATE_ENTRY_AFTER and not correcting:
        reason_needed = "This viewing is more than 7 days old: say why it is being logged late"
    max_shift = timedelta(hours=settings.VIEWING_CORRECTION_MAX_SHIFT_HOURS)
    if correcting and "viewed_at" not in problems and any(abs(viewed_at - t) > max_shift for t in earlier_times):
        reason_needed = (
            f"This correction moves the look by more than {settings.VIEWING_CORRECTION_MAX_SHIFT_HOURS} hours "
            "from when it was first recorded as happening: say why, as a late entry"
        )
    if reason_needed and not meaningful(details.late_entry_reason):
        problems["late_entry_reason"] = (
            f"{reason_needed} (at least {MEANINGFUL_TEXT_MIN} characters, not counting spaces)."
        )
    if not details.justification.strip():
        problems["justification"] = "Say why this look was necessary."
    if details.purpose == Purpose.OTHER and not details.purpose_detail.strip():
        problems["purpose_detail"] = "Describe the purpose when it is 'other'."
    if not linked_to_case:
        problems["profile"] = f"This profile's owner is not linked to case {details.case.reference}."
    if details.authorisation is not None and details.authorisation.case_id != details.case.pk:
        problems["authorisation"] = f"This authorisation is not for case {details.case.reference}."
    # The database's check constraint says the same; saying it here names the field.
    if bool(details.external_authority_kind) != bool(details.external_authority_reference.strip()):
        problems["external_authority"] = "Give both the kind and the reference of the external authority."
    return problems


def _corrected_records(supersedes: Viewing | None) -> list[Viewing]:
    """The records a correction replaces, newest first: the one it names, the one that one
    corrected, and so on to the first (a few rows, only for corrections)."""
    chain: list[Viewing] = []
    record = supersedes
    while record is not None:
        chain.append(record)
        if record.supersedes_id is None or len(chain) > 1000:
            break
        record = Viewing.objects.only("id", "viewed_at", "recorded_at", "supersedes_id").get(pk=record.supersedes_id)
    return chain


def _viewing_to_log(
    *,
    ctx: AuditContext,
    details: ViewingDetails,
    context: ViewingContext | None,
    lock: bool,
    supersedes: Viewing | None = None,
    supersede_reason: str = "",
) -> tuple[Viewing, ViewingContext, list[str], AuthorisationCoverage, dict]:
    """The viewing ``details`` describe, checked as logging checks it and not yet written
    (with ``corrected_records`` for detection); the context it was checked in (``context``,
    or read now, with the person's lock when ``lock``); why a cited authorisation does not
    cover it (empty if it does); the person's authorisations around it; and what covered it
    (``cases.coverage.covered_by``). Logging and checking a viewing both start here, so they
    refuse the same input the same way and judge the look alike."""
    _require_practitioner(ctx, "log viewings")
    profile = details.profile
    # A correction is judged as logged when the look was first logged: a consent recorded
    # since does not cover it, and detection counts it at its earlier moments too.
    corrected = _corrected_records(supersedes)
    if context is None:
        now = timezone.now()
        viewed_at = details.viewed_at or now
        # With ``lock``, locks the person viewed until this transaction ends (see
        # detection.services.detection_apply); finds the consent, if any, that covers the look.
        context = viewing_context(
            actor=ctx.actor,
            case=details.case,
            subject_id=profile.subject_id,
            platform=profile.platform,
            at=viewed_at,
            logged_at=corrected[-1].recorded_at if corrected else now,
            lock=lock,
        )
    else:
        blocks = transaction.get_connection().atomic_blocks
        if context.transaction != id(blocks[0]) or details.viewed_at not in (None, context.at) or corrected:
            raise ValueError("the context must be read in this transaction, for this viewing's moment")
        viewed_at = context.at
        now = viewed_at if details.viewed_at is None else timezone.now()
    _require_case_team(ctx, details.case, works=context.works_on_case)
    if supersedes is not None and not supersede_reason.strip():
        raise InvalidInput("Say why the viewing is being corrected.", fields={"reason": "This field may not be blank."})
    problems = _check_viewing(
        details,
        now,
        correcting=supersedes is not None,
        linked_to_case=context.linked_to_case,
        earlier_times=tuple(record.viewed_at for record in corrected),
    )
    if problems:
        raise InvalidInput("The viewing cannot be logged.", fields=problems)
    coverage, covering = viewing_authorisation_cover(
        context=context, profile=profile, case=details.case, viewed_at=viewed_at, corrected=corrected
    )
    viewing = Viewing(
        case=details.case,
        profile=profile,
        subject_id=profile.subject_id,
        practitioner=ctx.actor,
        viewed_at=viewed_at,
        recorded_at=now,
        purpose=details.purpose,
        purpose_detail=details.purpose_detail.strip(),
        justification=details.justification.strip(),
        access_method=details.access_method,
        interaction=details.interaction or Interaction.NONE,
        information_recorded=details.information_recorded.strip(),
        third_party_information=details.third_party_information.strip(),
        late_entry_reason=details.late_entry_reason.strip(),
        authorisation=details.authorisation,
        external_authority_kind=details.external_authority_kind,
        external_authority_reference=details.external_authority_reference.strip(),
        consent=context.consent,
        covering_authorisation=covering,
        supersedes=supersedes,
        supersede_reason=supersede_reason.strip(),
    )
    # Field checks only: the two check constraints are checked above with named fields
    # (and enforced by the database); the related rows were read in this transaction.
    viewing.full_clean(
        exclude=[
            "case",
            "profile",
            "subject",
            "practitioner",
            "authorisation",
            "consent",
            "covering_authorisation",
            "supersedes",
        ],
        validate_constraints=False,
    )
    viewing.corrected_records = [(record.pk, record.viewed_at) for record in corrected]
    # A cited authorisation that does not cover the look is recorded, never refused: the
    # record must not be lost, and the detection policy flags it (OUTSIDE_AUTHORISATION).
    authorisation_problems = (
        authorisation_check_viewing(
            authorisation=details.authorisation,
            subject_id=profile.subject_id,
            profile_id=profile.pk,
            platform=profile.platform,
            at=viewed_at,
        )
        if details.authorisation is not None
        else []
    )
    cover = viewing_cover(
        context=context,
        practitioner_id=ctx.actor.pk,
        platform=profile.platform,
        viewed_at=viewed_at,
        logged_at=None if supersedes is not None else now,
        covering=covering,
        cited_authorisation_id=viewing.authorisation_id,
    )
    return viewing, context, authorisation_problems, coverage, cover


# No savepoint when called inside a transaction (the API's, a correction's): a failure here
# fails the whole of it, and a savepoint would cost two more round trips per viewing.
@service(savepoint=False)
def viewing_log(
    *,
    ctx: AuditContext,
    details: ViewingDetails,
    supersedes: Viewing | None = None,
    supersede_reason: str = "",
    context: ViewingContext | None = None,
) -> Viewing:
    """Record one look at a profile. The consent that covered it, if any, is worked out
    from the subject's consent records at the moment of viewing. ``context``: what
    ``selectors.viewing_scope`` read in this transaction with the case and profile (the
    person's lock already held), for the moment ``details.viewed_at`` or, without one, now.

    The detection policy judges the look before it is written, as ``viewing_check`` does
    (``detection.plan``), and what it found is written with it."""
    viewing, context, authorisation_problems, coverage, cover = _viewing_to_log(
        ctx=ctx,
        details=details,
        context=context,
        lock=True,
        supersedes=supersedes,
        supersede_reason=supersede_reason,
    )
    profile, viewed_at = details.profile, viewing.viewed_at
    plan = detection_plan(viewing=viewing, policy=context.policy, coverage=coverage, lock=True)
    # The viewing and its audit event are written together (one statement on PostgreSQL).
    audit_record(
        ctx=ctx,
        action="viewing.supersede" if supersedes else "viewing.create",
        target_type="viewing",
        target=viewing,
        case_id=viewing.case_id,
        subject_ids=[viewing.subject_id],
        payload={
            "profile_id": profile.pk,
            "platform": profile.platform,
            "viewed_at": viewed_at,
            "purpose": viewing.purpose,
            "justification": viewing.justification,
            "access_method": viewing.access_method,
            "interaction": viewing.interaction,
            "consent_id": viewing.consent_id,
            "authorisation_id": viewing.authorisation_id,
            "authorisation_covers": None if details.authorisation is None else not authorisation_problems,
            "authorisation_problems": authorisation_problems,
            "external_authority": (
                {"kind": viewing.external_authority_kind, "reference": viewing.external_authority_reference}
                if viewing.external_authority_kind
                else None
            ),
            "supersedes": supersedes.pk if supersedes else None,
            "supersede_reason": viewing.supersede_reason or None,
            "late_entry_reason": viewing.late_entry_reason or None,
            "covered_by": cover,
        },
    )
    viewing.covered_by_output = cover
    # What the detection policy found is written in the same transaction, so the answer carries its flags.
    raised = detection_apply(ctx=ctx, viewing=viewing, plan=plan, policy=context.policy)
    # What the answer shows, already in hand: the flags it raised or joined, and no
    # correction (a viewing just written has none yet).
    viewing.flag_links_for_output = [flag.link for flag in raised]
    Viewing.superseded_by.related.set_cached_value(viewing, None)
    return viewing


@service(savepoint=False)
def viewing_check(*, ctx: AuditContext, details: ViewingDetails, context: ViewingContext | None = None) -> ViewingCheck:
    """What logging ``details`` would do now, without logging it: the same checks (and the
    same refusals) as ``viewing_log``, and the plan detection would write
    (``detection.plan``), made the same way. Writes nothing but its audit event
    (``viewing.check``, linked to the person): the look is judged in a read-only block that
    is always rolled back (``evidence_service.db.read_only``), taking no lock, so a check
    never holds up logging. ``context``: as for ``viewing_log``, read without the lock."""
    with read_only():
        viewing, context, authorisation_problems, coverage, cover = _viewing_to_log(
            ctx=ctx, details=details, context=context, lock=False
        )
        plan = detection_plan(viewing=viewing, policy=context.policy, coverage=coverage, lock=False)
        check = check_answer(
            user=ctx.actor,
            viewing=viewing,
            context=context,
            plan=plan,
            cover=cover,
            authorisation_problems=authorisation_problems,
        )
    audit_record(
        ctx=ctx,
        action="viewing.check",
        target_type="profile",
        target_id=viewing.profile_id,
        case_id=viewing.case_id,
        subject_ids=[viewing.subject_id],
        payload=check.payload,
    )
    return check


#: The first key of the transaction-scoped advisory locks that let one correction of a viewing
#: through at a time (PostgreSQL's two-key form, like ``PERSON_LOCK_SPACE`` in cases/selectors.py;
#: the second key is the viewing's id folded into 32 bits).
VIEWING_LOCK_SPACE = 0x43455356


def _lock_viewing(viewing_id: int) -> None:
    """Hold the viewing's lock until the transaction ends, so that of two corrections sent
    at once the second sees the first and is refused. Not a row lock: ``SELECT ... FOR
    UPDATE`` needs the UPDATE privilege, which the runtime role rightly does not have on an
    append-only table (``grant_runtime_role``). SQLite has one writer at a time anyway."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as db:
        db.execute("SELECT pg_advisory_xact_lock(%s, %s)", [VIEWING_LOCK_SPACE, viewing_id % 2147483647])


@service
def viewing_supersede(*, ctx: AuditContext, original: Viewing, reason: str, details: ViewingDetails) -> Viewing:
    """Correct a viewing by logging a new one that replaces it; the original stays."""
    _require_practitioner(ctx, "correct viewings")
    _lock_viewing(original.pk)
    original = Viewing.objects.get(pk=original.pk)
    if original.practitioner_id != ctx.actor.pk:
        raise Forbidden("Only the practitioner who logged a viewing may correct it.")
    if Viewing.objects.filter(supersedes=original).exists():
        raise Conflict(
            "This viewing has already been corrected; correct the newer record instead.",
            code="already_superseded",
            extra={"current_status": "superseded"},
        )
    if not reason.strip():
        raise InvalidInput("Say why the viewing is being corrected.", fields={"reason": "This field may not be blank."})
    problems = {}
    if details.case.pk != original.case_id:
        problems["case"] = "A correction stays on the original viewing's case; log a new viewing for another case."
    if details.profile.subject_id != original.subject_id:
        problems["profile"] = "A correction is about the same person; log a new viewing for someone else."
    if problems:
        raise InvalidInput("A correction cannot move the record.", fields=problems)
    return viewing_log(ctx=ctx, details=details, supersedes=original, supersede_reason=reason)
