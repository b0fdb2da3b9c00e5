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
from cases.models import Case, Viewing
from core.services import service
from detection import plan as planning
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
from detection.notifications import notification_queue, site_link
from detection.permissions import routed_to, works_on_flag
from detection.plan import DetectionPlan, PlannedFlag, plan_finding
from detection.policy import validate_rules
from detection.rules import Finding
from detection.selectors import draft_application
from evidence_service.api.errors import Conflict, Forbidden, InvalidInput
from evidence_service.db import insert

# --- Raising and absorbing ----------------------------------------------------------------------


@dataclass(frozen=True)
class RaisedFlag:
    """A flag the viewing raised or was absorbed into, with the explanation for the
    practitioner who logged it."""

    flag: Flag
    absorbed: bool
    explanation: str
    link: FlagViewing  # the viewing's link to the flag, with the flag and its recipients loaded


def _prefetched(flag: Flag, recipients: list[FlagRecipient]) -> None:
    """Keep the recipients just read or written on the flag, as ``prefetch_related`` would,
    so that the answer to the practitioner needs no further query."""
    flag._prefetched_objects_cache = {"recipients": recipients}


def _absorb(*, ctx: AuditContext, viewing: Viewing, planned: PlannedFlag) -> RaisedFlag:
    flag = planned.flag
    # A look from another case (another team's, perhaps) can leave nobody it was routed to
    # free to decide: the plan then routes it to the SROs who are (``plan.route_further``).
    routed = [FlagRecipient(flag=flag, officer=sro, reason=reason) for sro, reason in planned.route]
    if routed:
        _route_further(flag=flag, added=routed, viewing=viewing)
    recipients = planned.recipients + routed if routed else planned.recipients
    counted = planned.counted_viewing_ids(viewing.pk)
    link = FlagViewing(
        flag=flag,
        viewing=viewing,
        explanation=planned.explanation,
        counted_viewing_ids=counted,
        added_at=timezone.now(),
    )
    payload = {"rule": flag.rule, "viewing_id": viewing.pk, "counted_viewing_ids": counted}
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
    return RaisedFlag(flag=flag, absorbed=True, explanation=planned.explanation, link=link)


def _route_further(*, flag: Flag, added: list[FlagRecipient], viewing: Viewing) -> None:
    """Route the flag to the SROs ``added`` as well, and tell them."""
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
                f"Please review it and record your decision: {site_link(f'/flags/{flag.pk}/')}"
            ),
            flag=flag,
        )


def _raise(*, ctx: AuditContext, viewing: Viewing, planned: PlannedFlag, policy: DetectionPolicy) -> RaisedFlag:
    finding, recipients = planned.finding, planned.route
    counted = planned.counted_viewing_ids(viewing.pk)
    now = timezone.now()
    flag = Flag(
        rule=finding.rule,
        subject_id=viewing.subject_id,
        case=viewing.case,
        severity=finding.severity,
        policy_version=policy.version,
        explanation=planned.explanation,
        raised_at=now,
    )
    insert(flag)
    link = FlagViewing(
        flag=flag,
        viewing=viewing,
        explanation=planned.explanation,
        counted_viewing_ids=counted,
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
                f"{finding.what_fired}\n\nPlease review it and record your decision: {site_link(f'/flags/{flag.pk}/')}"
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
            "counted_viewing_ids": counted,
            "routed_to": [officer.username for officer, _reason in recipients],
        },
    )
    return RaisedFlag(flag=flag, absorbed=False, explanation=planned.explanation, link=link)


@service(savepoint=False)
def detection_apply(
    *, ctx: AuditContext, viewing: Viewing, plan: DetectionPlan, policy: DetectionPolicy | None
) -> list[RaisedFlag]:
    """Write ``plan`` (``detection.plan.detection_plan``, made for ``viewing`` before it was
    written, under ``policy``) now that the viewing is written, in its transaction: raise a
    flag for each rule that fired, or add the viewing to the open flag for that person and
    rule, as planned.

    The caller holds the person's lock (``cases.selectors.viewing_context``, taken before the
    plan was made): one evaluation per person at a time, so a concurrent look at the same
    person waits until this transaction commits, then counts this look too (READ COMMITTED
    reads anew after the wait). It is the only lock taken before the viewing is written, so
    two writers cannot deadlock on it."""
    if policy is None:
        return []
    results = []
    for planned in plan.flags:
        if not planned.joins:
            try:
                with transaction.atomic():
                    results.append(_raise(ctx=ctx, viewing=viewing, planned=planned, policy=policy))
                continue
            except IntegrityError:
                # Another viewing of this person raised the same flag a moment ago: join it.
                # If there is no such flag, the error was something else: let it through.
                rule = planned.finding.rule
                raced = planning.open_flags(subject_id=viewing.subject_id, rules=[rule], lock=True)
                if rule not in raced:
                    raise
                planned = plan_finding(viewing=viewing, finding=planned.finding, open_flag=raced[rule])
        results.append(_absorb(ctx=ctx, viewing=viewing, planned=planned))
    return results


@service
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
    recipients = planning.route(case=case, practitioner_id=ctx.actor.pk, severity=Severity.HIGH)
    explanation = planning.explain(
        Finding(rule=RuleCode.LINK_GUESSING, severity=Severity.HIGH, what_fired=what, counted_viewing_ids=[]),
        [officer.username for officer, _reason in recipients],
        joins=False,
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
            body=f"{what}\n\nPlease review it and record your decision: {site_link(f'/flags/{flag.pk}/')}",
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


@service
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
    decided_by = f"{officer.display_name} ({officer.username})" if officer.get_full_name() else officer.username
    for practitioner in practitioners:
        if Case.objects.visible_to(practitioner).filter(pk=flag.case_id).exists():
            subject_line = f"Flag {flag.pk} on case {flag.case.reference}: {label}"
            body = (
                f"{decided_by} decided flag {flag.pk}: {label}.\n\nReasoning: {flag.reasoning}\n\n"
                f"The flag: {site_link(f'/flags/{flag.pk}/')}"
            )
        else:
            # Their look joined another team's flag: that case and its reasoning are not theirs to see;
            # the link is to their own look.
            viewing_id = (
                flag.flag_viewings.filter(viewing__practitioner=practitioner)
                .order_by("-viewing_id")
                .values_list("viewing_id", flat=True)
                .first()
            )
            subject_line = f"Flag {flag.pk} about a person you looked at: {label}"
            body = (
                f"{decided_by} decided flag {flag.pk}, about a person you looked at: {label}.\n\n"
                f"Ask {officer.username} if you need the reasoning.\n\n"
                f"Your look: {site_link(f'/viewings/{viewing_id}/')}"
            )
        notification_queue(recipient=practitioner, subject_line=subject_line, body=body, flag=flag)
    if outcome == FlagOutcome.REPORT_ERROR_TO_SRO:
        for sro in User.objects.filter(role=Role.SRO, is_active=True).exclude(pk=officer.pk):
            notification_queue(
                recipient=sro,
                subject_line=f"Error reported on flag {flag.pk}, case {flag.case.reference}",
                body=(
                    f"{decided_by} reports possible unauthorised surveillance (flag {flag.pk}, "
                    f"{RuleCode(flag.rule).label}).\n\nReasoning: {flag.reasoning}\n\n"
                    f"The flag: {site_link(f'/flags/{flag.pk}/')}"
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


@service
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
