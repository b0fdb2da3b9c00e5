"""Raising, absorbing, routing and deciding flags, and changing the detection policy.
Every change is audited in its transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Role, User
from audit.services import AuditContext, audit_record
from authorisations.selectors import AuthorisationCoverage
from cases.models import Case, Viewing
from detection.models import (
    DetectionPolicy,
    Flag,
    FlagOutcome,
    FlagRecipient,
    FlagStatus,
    FlagViewing,
    RuleCode,
    Severity,
)
from detection.notifications import notification_queue
from detection.permissions import free_to_decide, routed_to, works_on_flag
from detection.policy import validate_rules
from detection.rules import Finding, evaluate
from evidence_service.api.errors import Conflict, Forbidden, InvalidInput
from evidence_service.db import insert, select_joined

# --- Routing ------------------------------------------------------------------------------------


def route(*, case, practitioner_id: int, severity: str) -> list[tuple[User, str]]:
    """Every active RIPA officer not involved in the case (not in its team, not the one
    who looked); the SRO too for high severity, or when no officer is free to decide."""
    involved = set(case.team.members.values_list("pk", flat=True)) | {practitioner_id}
    officers = [
        (officer, "ripa_officer")
        for officer in User.objects.filter(role=Role.RIPA_OFFICER, is_active=True).order_by("username")
        if officer.pk not in involved
    ]
    if severity == Severity.HIGH or not officers:
        reason = "high_severity" if severity == Severity.HIGH else "no_officer_free"
        officers += [
            (sro, f"sro_{reason}")
            for sro in User.objects.filter(role=Role.SRO, is_active=True).order_by("username")
            if sro.pk not in involved
        ]
    return officers


# --- Raising and absorbing ----------------------------------------------------------------------


@dataclass(frozen=True)
class RaisedFlag:
    """A flag the viewing raised or was absorbed into, with the explanation for the
    practitioner who logged it."""

    flag: Flag
    absorbed: bool
    explanation: str
    link: FlagViewing  # the viewing's link to the flag, with the flag and its recipients loaded


_NEXT_STEPS = {
    True: "This look has been added to an open flag about this person, already with {who}.",
    False: "The flag has been sent to {who} to decide whether an authorisation is needed.",
}


def _explain(finding: Finding, officers: list[str], absorbed: bool) -> str:
    who = ", ".join(officers) if officers else "the senior responsible officer"
    return (
        f"{finding.what_fired} {_NEXT_STEPS[absorbed].format(who=who)} Until they decide, do not look again "
        "unless it is needed to keep someone safe, and record why if you do."
    )


def _open_flags(*, subject_id: int, rules: list[str]) -> dict[str, tuple[Flag, list[FlagRecipient]]]:
    """The open flags about this person for these rules (at most one per rule: a partial
    unique index), each with its recipients in the order they were routed, the flags locked
    until the viewing's transaction ends. One plain statement for every rule that fired:
    looks at a person who is already flagged are added to the flag, so this runs for many
    viewings."""
    if not rules:
        return {}
    lock = " FOR UPDATE OF flag" if connection.features.has_select_for_update_of else ""
    rows = select_joined(
        [(Flag, "flag"), (User, "officer")],
        f"""FROM {Flag._meta.db_table} flag
            LEFT JOIN {FlagRecipient._meta.db_table} recipient ON recipient.flag_id = flag.id
            LEFT JOIN {User._meta.db_table} officer ON officer.id = recipient.officer_id
            WHERE flag.subject_id = %s AND flag.status = %s AND flag.rule IN ({", ".join(["%s"] * len(rules))})
            ORDER BY flag.id, recipient.id{lock}""",
        [subject_id, FlagStatus.OPEN, *rules],
        extra=("recipient.id", "recipient.reason"),
    )
    found: dict[str, tuple[Flag, list[FlagRecipient]]] = {}
    for flag, officer, recipient_id, reason in rows:
        flag, recipients = found.setdefault(flag.rule, (flag, []))
        if officer is not None:
            recipients.append(FlagRecipient(id=recipient_id, flag=flag, officer=officer, reason=reason))
    return found


def _prefetched(flag: Flag, recipients: list[FlagRecipient]) -> None:
    """Keep the recipients just read or written on the flag, as ``prefetch_related`` would,
    so that the answer to the practitioner needs no further query."""
    flag._prefetched_objects_cache = {"recipients": recipients}


def _absorb(
    *, ctx: AuditContext, flag: Flag, recipients: list[FlagRecipient], viewing: Viewing, finding: Finding
) -> RaisedFlag:
    # A look from another case (another team's, perhaps) can leave nobody it was routed to
    # free to decide; looks from the flag's own case, the common path, change nothing.
    routed = (
        _route_further(flag=flag, recipients=recipients, viewing=viewing) if viewing.case_id != flag.case_id else []
    )
    recipients = recipients + routed if routed else recipients
    explanation = _explain(finding, [recipient.officer.username for recipient in recipients], absorbed=True)
    link = FlagViewing(
        flag=flag,
        viewing=viewing,
        explanation=explanation,
        counted_viewing_ids=finding.counted_viewing_ids,
        added_at=timezone.now(),
    )
    payload = {"rule": flag.rule, "viewing_id": viewing.pk, "counted_viewing_ids": finding.counted_viewing_ids}
    if routed:
        payload["routed_to"] = [recipient.officer.username for recipient in routed]
    # The link and its event are written together (one statement on PostgreSQL).
    audit_record(
        ctx=ctx,
        action="flag.absorb",
        target_type="flag",
        target_id=flag.pk,
        case_id=viewing.case_id,
        subject_ids=[viewing.subject_id],
        payload=payload,
        alongside=link,
    )
    _prefetched(flag, recipients)
    return RaisedFlag(flag=flag, absorbed=True, explanation=explanation, link=link)


def _route_further(*, flag: Flag, recipients: list[FlagRecipient], viewing: Viewing) -> list[FlagRecipient]:
    """When ``viewing``, from a case other than the flag's, is about to join it: if none of
    the officers it was routed to is free to decide it any more (each is in the team of a
    case with a look in it, or looked), route it to the SRO(s) who are, as ``route`` does
    when no officer is free, and tell them. The new recipients, or none."""
    routed_to = User.objects.filter(pk__in=[recipient.officer_id for recipient in recipients])
    if free_to_decide(routed_to, flag, joining=viewing).exists():
        return []
    sros = (
        free_to_decide(User.objects.filter(role=Role.SRO), flag, joining=viewing)
        .exclude(pk__in=FlagRecipient.objects.filter(flag_id=flag.pk).values("officer_id"))
        .order_by("username")
    )
    added = [FlagRecipient(flag=flag, officer=sro, reason="sro_no_officer_free") for sro in sros]
    if not added:
        return []
    insert(*added)
    label = RuleCode(flag.rule).label
    for recipient in added:
        notification_queue(
            recipient=recipient.officer,
            subject_line=f"Flag {flag.pk}: {label} on case {viewing.case.reference}",
            body=(
                f"A viewing logged on case {viewing.case.reference} joined flag {flag.pk} ({label}, "
                f"{flag.severity} severity, policy version {flag.policy_version}). None of the officers it "
                "was routed to is free to decide it any more: each works on a case with a look in it.\n\n"
                f"Please review it and record your decision: GET /api/v1/flags/{flag.pk}/"
            ),
            flag=flag,
        )
    return added


def _raise(*, ctx: AuditContext, viewing: Viewing, finding: Finding, policy: DetectionPolicy) -> RaisedFlag:
    recipients = route(case=viewing.case, practitioner_id=viewing.practitioner_id, severity=finding.severity)
    explanation = _explain(finding, [officer.username for officer, _reason in recipients], absorbed=False)
    now = timezone.now()
    flag = Flag(
        rule=finding.rule,
        subject_id=viewing.subject_id,
        case=viewing.case,
        severity=finding.severity,
        policy_version=policy.version,
        explanation=explanation,
        raised_at=now,
    )
    insert(flag)
    link = FlagViewing(
        flag=flag,
        viewing=viewing,
        explanation=explanation,
        counted_viewing_ids=finding.counted_viewing_ids,
        added_at=now,
    )
    insert(link)
    routed = [FlagRecipient(flag=flag, officer=officer, reason=reason) for officer, reason in recipients]
    insert(*routed)
    _prefetched(flag, routed)
    for officer, _reason in recipients:
        notification_queue(
            recipient=officer,
            subject_line=f"Flag {flag.pk}: {RuleCode(flag.rule).label} on case {viewing.case.reference}",
            body=(
                f"A viewing logged on case {viewing.case.reference} raised flag {flag.pk} "
                f"({RuleCode(flag.rule).label}, {flag.severity} severity, policy version {policy.version}).\n\n"
                f"{finding.what_fired}\n\nPlease review it and record your decision: GET /api/v1/flags/{flag.pk}/"
            ),
            flag=flag,
        )
    audit_record(
        ctx=ctx,
        action="flag.raise",
        target_type="flag",
        target_id=flag.pk,
        case_id=viewing.case_id,
        subject_ids=[viewing.subject_id],
        payload={
            "rule": flag.rule,
            "severity": flag.severity,
            "policy_version": policy.version,
            "viewing_id": viewing.pk,
            "counted_viewing_ids": finding.counted_viewing_ids,
            "routed_to": [officer.username for officer, _reason in recipients],
        },
    )
    return RaisedFlag(flag=flag, absorbed=False, explanation=explanation, link=link)


@transaction.atomic(savepoint=False)
def detection_evaluate_viewing(
    *,
    ctx: AuditContext,
    viewing: Viewing,
    policy: DetectionPolicy | None,
    coverage: AuthorisationCoverage | None = None,
) -> list[RaisedFlag]:
    """Run ``policy`` (the one in force) on a viewing just logged, in its transaction: raise a
    flag for each rule that fires, or add the viewing to the open flag for that person and rule.

    The caller holds the person's lock (``cases.selectors.viewing_context``, taken before the
    viewing was written): one evaluation per person at a time, so a concurrent look at the
    same person waits until this transaction commits, then counts this look too (READ
    COMMITTED reads anew after the wait). It is the only lock taken before the viewing is
    written, so two writers cannot deadlock on it.

    ``coverage``: the person's authorisations around the viewing, when the caller already
    knows them (``AuthorisationCoverage.NONE`` for a person in no authorisation)."""
    if policy is None:
        return []
    results = []
    findings = evaluate(viewing, policy.rules, coverage=coverage)
    open_flags = _open_flags(subject_id=viewing.subject_id, rules=[finding.rule for finding in findings])
    for finding in findings:
        if finding.rule not in open_flags:
            try:
                with transaction.atomic():
                    results.append(_raise(ctx=ctx, viewing=viewing, finding=finding, policy=policy))
                continue
            except IntegrityError:
                # Another viewing of this person raised the same flag a moment ago: join it.
                # If there is no such flag, the error was something else: let it through.
                raced = _open_flags(subject_id=viewing.subject_id, rules=[finding.rule])
                if finding.rule not in raced:
                    raise
                open_flags.update(raced)
        flag, recipients = open_flags[finding.rule]
        results.append(_absorb(ctx=ctx, flag=flag, recipients=recipients, viewing=viewing, finding=finding))
    return results


@transaction.atomic
def link_guessing_flag(*, ctx: AuditContext, case: Case, subject_id: int, failures: int) -> Flag | None:
    """After a refused attempt by ``ctx.actor`` to link the person ``subject_id`` (known only
    to other teams) to ``case``: from ``LINK_GUESSING_FLAG_AFTER`` refusals in a day, raise a
    high-severity LINK_GUESSING flag about the person for the officers (routed as any flag,
    never to the actor's team), or, while one is open, add the attempt to it (audited as
    ``flag.absorb``). The flag names no viewing: it is about the attempts."""
    if failures < settings.LINK_GUESSING_FLAG_AFTER:
        return None
    what = (
        f"{ctx.actor.get_username()} has been refused {failures} times in 24 hours when linking people known "
        f"only to other teams to case {case.reference}, the last time this person: someone may be guessing "
        "a name or date of birth to reach another team's records."
    )
    open_flag = Flag.objects.select_for_update().filter(
        subject_id=subject_id, rule=RuleCode.LINK_GUESSING, status=FlagStatus.OPEN
    )
    flag = open_flag.first()
    if flag is not None:
        audit_record(
            ctx=ctx,
            action="flag.absorb",
            target_type="flag",
            target_id=flag.pk,
            case_id=case.pk,
            subject_ids=[subject_id],
            payload={"rule": flag.rule, "failures": failures, "case_id": case.pk},
        )
        return flag
    recipients = route(case=case, practitioner_id=ctx.actor.pk, severity=Severity.HIGH)
    explanation = _explain(
        Finding(rule=RuleCode.LINK_GUESSING, severity=Severity.HIGH, what_fired=what, counted_viewing_ids=[]),
        [officer.username for officer, _reason in recipients],
        absorbed=False,
    )
    policy = DetectionPolicy.objects.order_by("-version").values_list("version", flat=True).first()
    flag = Flag(
        rule=RuleCode.LINK_GUESSING,
        subject_id=subject_id,
        case=case,
        severity=Severity.HIGH,
        policy_version=policy or 0,
        explanation=explanation,
        raised_at=timezone.now(),
    )
    try:
        with transaction.atomic():
            insert(flag)
    except IntegrityError:  # raised a moment ago by a concurrent refusal: that one stands
        return Flag.objects.filter(subject_id=subject_id, rule=RuleCode.LINK_GUESSING, status=FlagStatus.OPEN).first()
    insert(*[FlagRecipient(flag=flag, officer=officer, reason=reason) for officer, reason in recipients])
    label = RuleCode(flag.rule).label
    for officer, _reason in recipients:
        notification_queue(
            recipient=officer,
            subject_line=f"Flag {flag.pk}: {label} on case {case.reference}",
            body=f"{what}\n\nPlease review it and record your decision: GET /api/v1/flags/{flag.pk}/",
            flag=flag,
        )
    audit_record(
        ctx=ctx,
        action="flag.raise",
        target_type="flag",
        target_id=flag.pk,
        case_id=case.pk,
        subject_ids=[subject_id],
        payload={
            "rule": flag.rule,
            "severity": flag.severity,
            "failures": failures,
            "routed_to": [officer.username for officer, _reason in recipients],
        },
    )
    return flag


# --- Deciding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    flag: Flag
    draft_application: dict[str, Any] | None


def draft_application(flag: Flag) -> dict[str, Any]:
    """An application pre-filled from the flag, for a practitioner on the case to
    complete and submit (POST /api/v1/authorisations/)."""
    viewings = [link.viewing for link in flag.flag_viewings.select_related("viewing__profile").order_by("id")]
    purposes = sorted({v.get_purpose_display().lower() for v in viewings})
    return {
        "type": "non_ripa",
        "case": flag.case_id,
        "subjects": [flag.subject_id],
        "platforms": sorted({v.profile.platform for v in viewings}),
        "profiles": sorted({v.profile_id for v in viewings}),
        "purpose": f"Continued viewing for {', '.join(purposes)} (flag {flag.pk}: {RuleCode(flag.rule).label}).",
        "information_sought": "",
        "necessity": "",
        "proportionality": "",
        "alternatives_considered": "",
        "collateral_intrusion": "",
        "confidential_information_likely": None,
    }


@transaction.atomic
def flag_decide(*, ctx: AuditContext, flag: Flag, outcome: str, reasoning: str) -> Decision:
    """Record an officer's decision on a flag. Only an officer it was routed to, who does
    not work on any case with a look in it (nor looked), may decide; a flag is decided once.
    Each practitioner who looked is told, in words they may see: one whose teams do not own
    the flag's case is not told that case or the officer's reasoning."""
    flag = Flag.objects.select_for_update(of=("self",)).select_related("case").get(pk=flag.pk)
    officer = ctx.actor
    if flag.status != FlagStatus.OPEN:
        raise Conflict(
            "This flag has already been decided.", code="invalid_state", extra={"current_status": flag.status}
        )
    if works_on_flag(officer, flag):
        raise Forbidden(
            "You work on a case with a look in this flag, so you may not decide it.", code="works_on_the_case"
        )
    if not routed_to(officer, flag):  # not involved: checked just above
        raise Forbidden("This flag was not routed to you.", code="not_routed_to_you")
    if outcome not in FlagOutcome.values:
        raise InvalidInput("Unknown outcome.", fields={"outcome": f"Choose one of {', '.join(FlagOutcome.values)}."})
    if not reasoning.strip():
        raise InvalidInput("Give your reasoning.", fields={"reasoning": "This field may not be blank."})
    flag.status = FlagStatus.DECIDED
    flag.outcome = outcome
    flag.reasoning = reasoning.strip()
    flag.decided_at = timezone.now()
    flag.decided_by = officer
    flag.save(update_fields=["status", "outcome", "reasoning", "decided_at", "decided_by"])
    practitioners = User.objects.filter(
        pk__in=flag.flag_viewings.values("viewing__practitioner_id"), is_active=True
    ).order_by("username")
    label = FlagOutcome(outcome).label
    for practitioner in practitioners:
        if Case.objects.visible_to(practitioner).filter(pk=flag.case_id).exists():
            subject_line = f"Flag {flag.pk} on case {flag.case.reference}: {label}"
            body = f"{officer.username} decided flag {flag.pk}: {label}.\n\nReasoning: {flag.reasoning}"
        else:
            # Their look joined another team's flag: that case and its reasoning are not theirs to see.
            subject_line = f"Flag {flag.pk} about a person you looked at: {label}"
            body = (
                f"{officer.username} decided flag {flag.pk}, about a person you looked at: {label}.\n\n"
                f"Ask {officer.username} if you need the reasoning."
            )
        notification_queue(recipient=practitioner, subject_line=subject_line, body=body, flag=flag)
    if outcome == FlagOutcome.REPORT_ERROR_TO_SRO:
        for sro in User.objects.filter(role=Role.SRO, is_active=True).exclude(pk=officer.pk):
            notification_queue(
                recipient=sro,
                subject_line=f"Error reported on flag {flag.pk}, case {flag.case.reference}",
                body=(
                    f"{officer.username} reports possible unauthorised surveillance (flag {flag.pk}, "
                    f"{RuleCode(flag.rule).label}).\n\nReasoning: {flag.reasoning}"
                ),
                flag=flag,
            )
    audit_record(
        ctx=ctx,
        action="flag.decide",
        target_type="flag",
        target_id=flag.pk,
        case_id=flag.case_id,
        subject_ids=[flag.subject_id],
        payload={"rule": flag.rule, "outcome": outcome, "reasoning": flag.reasoning},
    )
    draft = draft_application(flag) if outcome == FlagOutcome.AUTHORISATION_REQUIRED else None
    return Decision(flag=flag, draft_application=draft)


# --- The policy -------------------------------------------------------------------------------

#: The first key of the transaction-scoped advisory lock that serialises changes to the
#: policy (PostgreSQL's two-key form; a space of its own, beside the people's locks,
#: ``PERSON_LOCK_SPACE`` in cases/selectors.py).
POLICY_LOCK_SPACE = 0x43455350


def _lock_policy() -> None:
    """Take the policy's lock until the transaction ends, so that changes run one at a time
    and each reads the version the one before it wrote. Locking the newest row would not
    do: a change that waited for it reads that row again, not the version written
    meanwhile, and both would write the same next version. SQLite has one writer at a time
    anyway."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as db:
        db.execute(f"SELECT pg_advisory_xact_lock({POLICY_LOCK_SPACE}, 0)")


@transaction.atomic
def policy_update(*, ctx: AuditContext, rules: Any, note: str = "") -> DetectionPolicy:
    """A new version of the policy (the SRO's alone); earlier versions stay as they were.
    Concurrent changes are made one after the other, each a version of its own, audited
    against the version it followed."""
    if ctx.actor is None or ctx.actor.role != Role.SRO:
        raise Forbidden("Only the senior responsible officer may change the detection policy.")
    clean, problems = validate_rules(rules)
    if problems:
        raise InvalidInput("The policy has errors.", fields=problems)
    _lock_policy()
    # Read after the lock is held: under READ COMMITTED this statement sees every change
    # committed before it.
    previous = DetectionPolicy.objects.order_by("-version").first()
    policy = DetectionPolicy.objects.create(
        version=previous.version + 1, rules=clean, note=note.strip(), created_at=timezone.now(), created_by=ctx.actor
    )
    changed = sorted(code for code in clean if clean[code] != previous.rules.get(code))
    audit_record(
        ctx=ctx,
        action="policy.update",
        target_type="policy",
        target_id=policy.version,
        payload={
            "from_version": previous.version,
            "to_version": policy.version,
            "changed_rules": changed,
            "rules": clean,
            "note": policy.note,
        },
    )
    return policy
