"""The answer to "check before you look" (``POST /viewings/check/``): what logging a look
would do, in the words a practitioner needs, worked out from the same plan logging writes
(``detection.plan``). Reads only.

``covered_by`` has the shape of a logged viewing's (``cases.coverage.covered_by``), worked out
by the same code from the same look. What a practitioner may not otherwise see stays hidden,
as in the flags shown to them: no other team's case references or names (the rules'
explanations name none), the id of an open flag only when they may see a look in it; other
teams' looks are counted, not listed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cases.models import Viewing
from cases.selectors import ViewingContext
from detection.models import FlagViewing, RuleCode
from detection.plan import DetectionPlan, PlannedFlag
from detection.rules import Look

#: What to do about each rule before looking, beyond what the rule's explanation says.
RULE_ADVICE = {
    RuleCode.REPEAT_VIEWING: "Ask for an authorisation (POST /api/v1/authorisations/) before you look again.",
    RuleCode.SYSTEMATIC_RECORDING: (
        "Record only what the case needs; recording information without consent or an authorisation can itself "
        "need authorisation."
    ),
    RuleCode.EVIDENCE_PURPOSE: "Gathering evidence needs an authorisation in force: apply for one before you look.",
    RuleCode.COLLATERAL_INTRUSION: "Keep what you record about other people to the minimum, and say why it is needed.",
    RuleCode.COVERT_ACCESS: (
        "Look through the council's overt account or logged out, or get an authorisation for covert viewing first."
    ),
    RuleCode.POSSIBLE_CHIS: (
        "Do not interact with the profile (no friend or follow requests, messages or reactions) without a CHIS "
        "authorisation."
    ),
    RuleCode.OUTSIDE_AUTHORISATION: (
        "The authorisation you cite does not cover this look: check its dates, people and platforms, or look "
        "within them."
    ),
    RuleCode.CLOSED_CASE: "The case is closed: do not look for it unless the case is reopened with a reason.",
    RuleCode.LATE_ENTRIES: "Log each look when it happens: an officer reviews a run of late entries about one person.",
}


@dataclass(frozen=True)
class ViewingCheck:
    """What logging the look would do. ``payload``: what the audit event records."""

    answer: dict[str, Any]
    payload: dict[str, Any]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _people(names: list[str]) -> str:
    return ", ".join(names) if names else "the senior responsible officer"


def _flags_seen(user, plan: DetectionPlan) -> set[int]:
    """The open flags the plan would join that ``user`` may see a look in (their teams'
    cases): their ids may be shown. One statement, only when a flag would be joined."""
    joined = {planned.flag.pk for planned in plan.flags if planned.joins}
    if not joined:
        return set()
    looks = FlagViewing.objects.filter(
        flag_id__in=joined, viewing__in=Viewing.objects.visible_to(user).values("pk")
    ).values_list("flag_id", flat=True)
    return set(looks)


def _looks_seen(user, plan: DetectionPlan) -> set[int]:
    """Of the looks the plan counts, those ``user`` may see (their teams' cases)."""
    counted = {pk for planned in plan.flags for pk in planned.counted_viewing_ids()}
    if not counted:
        return set()
    return set(Viewing.objects.visible_to(user).filter(pk__in=counted).values_list("pk", flat=True))


def _flag_entry(planned: PlannedFlag, *, seen_flags: set[int], seen_looks: set[int]) -> dict[str, Any]:
    label = RuleCode(planned.finding.rule).label if planned.finding.rule in RuleCode.values else planned.finding.rule
    counted = planned.counted_viewing_ids()
    shown = [pk for pk in counted if pk in seen_looks]
    if planned.joins:
        flag_id = planned.flag.pk if planned.flag.pk in seen_flags else None
        which = f"open flag {flag_id}" if flag_id is not None else "an open flag raised on another team's case"
        next_step = (
            f"Logging this look would add it to {which} ({label}) about this person, already with "
            f"{_people(planned.officers)}."
        )
    else:
        flag_id = None
        next_step = (
            f"Logging this look would raise a {label} flag ({planned.finding.severity} severity), sent to "
            f"{_people(planned.officers)} to decide whether an authorisation is needed."
        )
    return {
        "rule": planned.finding.rule,
        "severity": planned.finding.severity,
        "action": "join" if planned.joins else "raise",
        "flag": flag_id,
        "explanation": planned.finding.what_fired,
        "next_step": next_step,
        "routed_to": planned.officers,
        "counted_viewing_ids": shown,
        "looks_counted": len(planned.finding.counted_viewing_ids),
    }


def _advice(*, look: Look | None, policy_rules: dict, flags: list[dict], cover: dict) -> list[str]:
    advice = [cover["reason"]]
    repeat = policy_rules.get(RuleCode.REPEAT_VIEWING) or {}
    if look is not None and look.repeat_count is not None and repeat.get("enabled"):
        params = repeat.get("params", {})
        threshold, days = params.get("threshold"), params.get("window_days")
        count = look.repeat_count
        said = (
            f"This would be the {_ordinal(count)} look at this person in {days} days without their consent or an "
            "authorisation"
        )
        if count >= threshold:
            advice.append(f"{said}; an authorisation is needed before you look again.")
        elif count == threshold - 1:
            advice.append(f"{said}; one more within {days} days would be flagged as repeat viewing.")
        else:
            advice.append(f"{said}; the policy flags {threshold} or more.")
    for flag in flags:
        advice.append(flag["next_step"])
        if flag["rule"] in RULE_ADVICE:
            advice.append(RULE_ADVICE[flag["rule"]])
    if flags:
        advice.append(
            "Until the officers decide, do not look unless it is needed to keep someone safe, and record why if you do."
        )
    else:
        advice.append("Logging this look would raise no flag.")
    return advice


def check_answer(
    *,
    user,
    viewing: Viewing,
    context: ViewingContext,
    plan: DetectionPlan,
    cover: dict[str, Any],
    authorisation_problems: list[str],
) -> ViewingCheck:
    """The answer to a check of ``viewing`` (not written) and what its audit event records.
    ``cover``: what would cover it (``cases.coverage.covered_by``)."""
    seen_flags, seen_looks = _flags_seen(user, plan), _looks_seen(user, plan)
    flags = [_flag_entry(planned, seen_flags=seen_flags, seen_looks=seen_looks) for planned in plan.flags]
    rules = context.policy.rules if context.policy is not None else {}
    authorisation_check = (
        None
        if viewing.authorisation is None
        else {"covers": not authorisation_problems, "problems": authorisation_problems}
    )
    advice = _advice(look=plan.look, policy_rules=rules, flags=flags, cover=cover)
    if authorisation_problems:
        advice.insert(
            1,
            f"The authorisation cited, {viewing.authorisation.urn}, would not cover it: "
            + " ".join(authorisation_problems),
        )
    answer = {
        "case": viewing.case_id,
        "profile": viewing.profile_id,
        "subject": viewing.subject_id,
        "viewed_at": viewing.viewed_at,
        "policy_version": context.policy.version if context.policy is not None else None,
        "covered_by": cover,
        "authorisation_check": authorisation_check,
        "flags": flags,
        "advice": advice,
    }
    payload = {
        "profile_id": viewing.profile_id,
        "platform": viewing.profile.platform,
        "viewed_at": viewing.viewed_at,
        "purpose": viewing.purpose,
        "access_method": viewing.access_method,
        "interaction": viewing.interaction,
        "authorisation_id": viewing.authorisation_id,
        "consent_id": viewing.consent_id,
        "covered_by": cover,
        "policy_version": answer["policy_version"],
        "flags": [
            {
                "rule": planned.finding.rule,
                "action": "join" if planned.joins else "raise",
                "flag_id": planned.flag.pk if planned.joins else None,
                "counted_viewing_ids": planned.counted_viewing_ids(),
            }
            for planned in plan.flags
        ],
    }
    return ViewingCheck(answer=answer, payload=payload)
