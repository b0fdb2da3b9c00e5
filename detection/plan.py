"""What logging a look would do to flags, worked out before anything is written: each rule
that fires, whether the look would raise a new flag or join the open one about the person
for that rule, whom the flag would go to and what the practitioner would be told.

One code path for both uses, so that they cannot disagree: logging a viewing plans with the
person's lock held and then writes the plan (``detection.services.detection_apply``);
``POST /viewings/check/`` plans the same way, reading only, and writes nothing but its own
audit event (``cases.services.viewing_check``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection

from accounts.models import Role, User
from authorisations.selectors import AuthorisationCoverage
from cases.models import Viewing
from detection.models import DetectionPolicy, Flag, FlagRecipient, FlagStatus, Severity
from detection.permissions import free_to_decide
from detection.rules import THIS_LOOK, Finding, Look, assess
from evidence_service.db import select_joined


@dataclass(frozen=True)
class PlannedFlag:
    """One rule that fires on the look, and what logging the look does about it."""

    finding: Finding
    flag: Flag | None  # the open flag the look joins; None when it raises a new one
    recipients: list[FlagRecipient]  # joining: whom the open flag is routed to already
    # Raising: whom the new flag goes to (officer, reason). Joining: the SROs the flag is
    # routed to as well, when none of those it went to is free to decide it any more.
    route: list[tuple[User, str]]
    explanation: str  # what the practitioner who logs the look is told

    @property
    def joins(self) -> bool:
        return self.flag is not None

    @property
    def officers(self) -> list[str]:
        """Everyone the flag is (or would be) with, once the look is logged."""
        return [recipient.officer.username for recipient in self.recipients] + [
            officer.username for officer, _reason in self.route
        ]

    def counted_viewing_ids(self, viewing_id: int | None = THIS_LOOK) -> list[int]:
        """The looks counted, with the look itself as ``viewing_id`` once it has one (or
        left out while it has none)."""
        ids = self.finding.counted_viewing_ids
        if viewing_id is THIS_LOOK:
            return [pk for pk in ids if pk is not THIS_LOOK]
        return [viewing_id if pk is THIS_LOOK else pk for pk in ids]


@dataclass(frozen=True)
class DetectionPlan:
    look: Look | None  # None when no policy is in force
    flags: list[PlannedFlag] = field(default_factory=list)


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


def route_further(*, flag: Flag, recipients: list[FlagRecipient], viewing: Viewing) -> list[tuple[User, str]]:
    """When ``viewing``, from a case other than the flag's, is about to join it: if none of
    the officers it was routed to is free to decide it any more (each is in the team of a
    case with a look in it, or looked), the SRO(s) who are, as ``route`` does when no
    officer is free; else none. Looks from the flag's own case, the common path, change
    nothing and read nothing."""
    if viewing.case_id == flag.case_id:
        return []
    routed_to = User.objects.filter(pk__in=[recipient.officer_id for recipient in recipients])
    if free_to_decide(routed_to, flag, joining=viewing).exists():
        return []
    sros = (
        free_to_decide(User.objects.filter(role=Role.SRO), flag, joining=viewing)
        .exclude(pk__in=FlagRecipient.objects.filter(flag_id=flag.pk).values("officer_id"))
        .order_by("username")
    )
    return [(sro, "sro_no_officer_free") for sro in sros]


# --- The plan -----------------------------------------------------------------------------------

_NEXT_STEPS = {
    True: "This look has been added to an open flag about this person, already with {who}.",
    False: "The flag has been sent to {who} to decide whether an authorisation is needed.",
}


def explain(finding: Finding, officers: list[str], joins: bool) -> str:
    who = ", ".join(officers) if officers else "the senior responsible officer"
    return (
        f"{finding.what_fired} {_NEXT_STEPS[joins].format(who=who)} Until they decide, do not look again "
        "unless it is needed to keep someone safe, and record why if you do."
    )


def open_flags(*, subject_id: int, rules: list[str], lock: bool) -> dict[str, tuple[Flag, list[FlagRecipient]]]:
    """The open flags about this person for these rules (at most one per rule: a partial
    unique index), each with its recipients in the order they were routed; with ``lock``,
    the flags locked until the transaction ends (logging; a check locks nothing). One plain
    statement for every rule that fired: looks at a person who is already flagged are
    added to the flag, so this runs for many viewings."""
    if not rules:
        return {}
    locked = " FOR UPDATE OF flag" if lock and connection.features.has_select_for_update_of else ""
    rows = select_joined(
        [(Flag, "flag"), (User, "officer")],
        f"""FROM {Flag._meta.db_table} flag
            LEFT JOIN {FlagRecipient._meta.db_table} recipient ON recipient.flag_id = flag.id
            LEFT JOIN {User._meta.db_table} officer ON officer.id = recipient.officer_id
            WHERE flag.subject_id = %s AND flag.status = %s AND flag.rule IN ({", ".join(["%s"] * len(rules))})
            ORDER BY flag.id, recipient.id{locked}""",
        [subject_id, FlagStatus.OPEN, *rules],
        extra=("recipient.id", "recipient.reason"),
    )
    found: dict[str, tuple[Flag, list[FlagRecipient]]] = {}
    for flag, officer, recipient_id, reason in rows:
        flag, recipients = found.setdefault(flag.rule, (flag, []))
        if officer is not None:
            recipients.append(FlagRecipient(id=recipient_id, flag=flag, officer=officer, reason=reason))
    return found


def plan_finding(
    *, viewing: Viewing, finding: Finding, open_flag: tuple[Flag, list[FlagRecipient]] | None
) -> PlannedFlag:
    """What logging ``viewing`` does about ``finding``: join ``open_flag``, the open flag
    for its rule about the person, or raise a new flag when there is none."""
    if open_flag is None:
        officers = route(case=viewing.case, practitioner_id=viewing.practitioner_id, severity=finding.severity)
        return PlannedFlag(
            finding=finding,
            flag=None,
            recipients=[],
            route=officers,
            explanation=explain(finding, [officer.username for officer, _reason in officers], joins=False),
        )
    flag, recipients = open_flag
    further = route_further(flag=flag, recipients=recipients, viewing=viewing)
    officers = [recipient.officer.username for recipient in recipients] + [sro.username for sro, _ in further]
    return PlannedFlag(
        finding=finding,
        flag=flag,
        recipients=recipients,
        route=further,
        explanation=explain(finding, officers, joins=True),
    )


def detection_plan(
    *,
    viewing: Viewing,
    policy: DetectionPolicy | None,
    coverage: AuthorisationCoverage | None = None,
    lock: bool,
) -> DetectionPlan:
    """What logging ``viewing`` (not yet written) would do under ``policy`` (the one in
    force): each rule that fires, raising a flag or joining the open one. Reads only.

    ``lock``: logging holds the person's lock (``cases.selectors.viewing_scope``) and locks
    the open flags it will join, until its transaction ends; a check takes no lock, and
    says what logging would do had it been logged at that moment.

    ``coverage``: the person's authorisations around the viewing, when the caller already
    knows them (``AuthorisationCoverage.NONE`` for a person in no authorisation)."""
    if policy is None:
        return DetectionPlan(look=None)
    look, findings = assess(viewing, policy.rules, coverage=coverage)
    flags = open_flags(subject_id=viewing.subject_id, rules=[finding.rule for finding in findings], lock=lock)
    return DetectionPlan(
        look=look,
        flags=[
            plan_finding(viewing=viewing, finding=finding, open_flag=flags.get(finding.rule)) for finding in findings
        ],
    )
