"""The detection rules: what makes a look at someone's social media a possible surveillance
risk. Each rule reads the look being logged (and, for repeat viewing, the person's other
recent views) and says in plain words what it found.

A look is judged *before* it is written (``viewing.pk`` is None): logging judges it that
way and then writes it, and ``POST /viewings/check/`` judges it the same way and writes
nothing, so a check says what logging would find (``detection.plan``). In a finding's
counted looks the look itself is ``THIS_LOOK`` until it has an id.

Coverage: a view is *covered* when a consent of the person's was in effect for that
platform at that moment (worked out when the view was logged) or an authorisation in force
covered it. Covered views are not counted as repeat viewing and do not make recording
"systematic". Superseded views (corrected by a later record) are replaced by their
correction and not counted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.utils import timezone

from authorisations.selectors import AuthorisationCoverage, authorisation_check_viewing
from cases.models import Case, Interaction, Profile, Purpose, Viewing
from detection.models import RuleCode
from evidence_service.db import select_values


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    what_fired: str
    counted_viewing_ids: list[int] = field(default_factory=list)


#: The look being judged, among a finding's counted looks, until it is written.
THIS_LOOK = None


@dataclass
class Look:
    """The viewing being evaluated, with the person's authorisations around it read once."""

    viewing: Viewing
    coverage: AuthorisationCoverage
    authorisation_in_force: Any = None  # the authorisation covering it, if any
    # Set by the repeat-viewing rule when it counts: the uncovered looks (this one among
    # them) in its busiest window, whether or not that reached the threshold.
    repeat_count: int | None = None

    @classmethod
    def of(
        cls, viewing: Viewing, window: timedelta = timedelta(0), coverage: AuthorisationCoverage | None = None
    ) -> Look:
        """``window``: how far either side of the viewing other looks are judged too."""
        if coverage is None:
            coverage = AuthorisationCoverage.load(
                subject_id=viewing.subject_id, since=viewing.viewed_at - window, until=viewing.viewed_at + window
            )
        look = cls(viewing=viewing, coverage=coverage)
        look.authorisation_in_force = coverage.covering(
            profile_id=viewing.profile_id, platform=viewing.profile.platform, at=viewing.viewed_at
        )
        return look

    def covered(self, other: OtherLook) -> bool:
        """Whether ``other`` (a look at the same person) was covered."""
        return (
            other.consent_id is not None
            or self.coverage.covering(profile_id=other.profile_id, platform=other.platform, at=other.viewed_at)
            is not None
        )

    @property
    def consent_or_authorisation(self) -> bool:
        return self.viewing.consent_id is not None or self.authorisation_in_force is not None


#: Looks named one by one in a repeat-viewing explanation (the latest; the rest are counted).
LISTED_LOOKS = 10


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%-d %b %Y %H:%M")


class OtherLook(NamedTuple):
    """Another look at the same person, as the repeat-viewing rule needs it."""

    pk: int
    viewed_at: datetime
    practitioner_id: int
    consent_id: int | None
    profile_id: int
    platform: str
    team_id: int  # of the case it was logged against


def _whose(other: OtherLook, look: Viewing) -> str:
    if other.pk == look.pk:
        return "this look"
    if other.practitioner_id == look.practitioner_id:
        return "you"
    if other.team_id == look.case.team_id:
        return "a colleague in your team"
    return "someone in another team"


def _looks_around(viewing: Viewing, window: timedelta) -> list[OtherLook]:
    """The person's current (not superseded) looks within ``window`` either side of
    ``viewing`` that no consent covered, oldest first (``viewing`` among them). One range
    read on the (subject, viewed_at) index, as a plain statement: it runs for every look
    not covered by consent or an authorisation."""
    table = Viewing._meta.db_table
    rows = select_values(
        Viewing,
        "look",
        ("id", "viewed_at", "practitioner", "consent", "profile"),
        f"""FROM {table} look
            JOIN {Profile._meta.db_table} profile ON profile.id = look.profile_id
            JOIN {Case._meta.db_table} c ON c.id = look.case_id
            WHERE look.subject_id = %s AND look.viewed_at >= %s AND look.viewed_at <= %s
              AND (look.consent_id IS NULL OR look.id = %s)
              AND NOT EXISTS (SELECT 1 FROM {table} correction WHERE correction.supersedes_id = look.id)
            ORDER BY look.viewed_at, look.id""",
        [viewing.subject_id, viewing.viewed_at - window, viewing.viewed_at + window, viewing.pk],
        extra={"platform": "profile.platform", "team_id": "c.team_id"},
    )
    looks = [OtherLook(*row) for row in rows]
    return _as_if_written(looks, viewing) if viewing.pk is None else looks


def _as_if_written(looks: list[OtherLook], viewing: Viewing) -> list[OtherLook]:
    """``looks`` as they will be once ``viewing``, not yet written, is: the look it corrects
    (if any) no longer current, and it in its place in time order, after other looks at
    the same moment (it will have the highest id)."""
    kept = [other for other in looks if viewing.supersedes_id is None or other.pk != viewing.supersedes_id]
    candidate = OtherLook(
        THIS_LOOK,
        viewing.viewed_at,
        viewing.practitioner_id,
        viewing.consent_id,
        viewing.profile_id,
        viewing.profile.platform,
        viewing.case.team_id,
    )
    at = next((i for i, other in enumerate(kept) if other.viewed_at > viewing.viewed_at), len(kept))
    return [*kept[:at], candidate, *kept[at:]]


def longest_run(times: list[datetime], this: int, window: timedelta) -> tuple[int, int]:
    """The first and last positions of the longest run of ``times`` (sorted) spanning at
    most ``window`` that includes position ``this``; the earliest such run on a tie. For
    each first position the run reaches as far as the window allows, and that end only
    moves forward, so this is one pass however many looks there are."""
    best_start, best_end, end = this, this, 0
    for start in range(this + 1):
        end = max(end, start)
        while end + 1 < len(times) and times[end + 1] - times[start] <= window:
            end += 1
        if end >= this and end - start > best_end - best_start:
            best_start, best_end = start, end
    return best_start, best_end


def repeat_viewing(look: Look, severity: str, params: dict[str, Any]) -> Finding | None:
    """Views of the same person (any profile, case or practitioner) not covered by consent
    or an authorisation, reaching ``threshold`` within any ``window_days`` that includes
    this view. One indexed range read on (subject, viewed_at), however long the history."""
    viewing = look.viewing
    if look.consent_or_authorisation:
        return None
    window = timedelta(days=params["window_days"])
    this_pk = viewing.pk
    looks = _looks_around(viewing, window)
    # The looks read are those no consent covered; with no authorisation around, none is covered.
    uncovered = (
        [other for other in looks if other.pk == this_pk or not look.covered(other)]
        if look.coverage.authorisations
        else looks
    )
    this = next(position for position, other in enumerate(uncovered) if other.pk == this_pk)
    start, end = longest_run([other.viewed_at for other in uncovered], this, window)
    best = uncovered[start : end + 1]
    look.repeat_count = len(best)
    if len(best) < params["threshold"]:
        return None
    # The latest looks, by whom and when; the counted ids keep every one of them.
    shown = best[-LISTED_LOOKS:]
    listed = "; ".join(f"{_when(v.viewed_at)} by {_whose(v, viewing)}" for v in shown)
    if len(best) > len(shown):
        listed = f"{len(best) - len(shown)} earlier, then {listed}"
    return Finding(
        rule=RuleCode.REPEAT_VIEWING,
        severity=severity,
        what_fired=(
            f"This is look number {len(best)} at this person's social media within {params['window_days']} days "
            f"without their consent or an authorisation ({listed}). The council's policy treats "
            f"{params['threshold']} or more such looks as repeated viewing, which may be directed surveillance "
            "under RIPA."
        ),
        counted_viewing_ids=[v.pk for v in best],
    )


def systematic_recording(look: Look, severity: str, params: dict[str, Any]) -> Finding | None:
    if not look.viewing.information_recorded or look.consent_or_authorisation:
        return None
    return Finding(
        RuleCode.SYSTEMATIC_RECORDING,
        severity,
        "Information was recorded from the profile with no consent or authorisation in force. Recording and "
        "keeping information about a person can need authorisation even after a single visit.",
        [look.viewing.pk],
    )


def evidence_purpose(look: Look, severity: str, params: dict[str, Any]) -> Finding | None:
    if look.viewing.purpose != Purpose.EVIDENCE_GATHERING or look.authorisation_in_force is not None:
        return None
    return Finding(
        RuleCode.EVIDENCE_PURPOSE,
        severity,
        "The purpose was evidence gathering and no authorisation was in force for it.",
        [look.viewing.pk],
    )


def collateral_intrusion(look: Look, severity: str, params: dict[str, Any]) -> Finding | None:
    if not look.viewing.third_party_information:
        return None
    return Finding(
        RuleCode.COLLATERAL_INTRUSION,
        severity,
        "Information about other people (third parties) was recorded: that is collateral intrusion into their "
        "privacy, and it needs to be justified and kept to a minimum.",
        [look.viewing.pk],
    )


def covert_access(look: Look, severity: str, params: dict[str, Any]) -> Finding | None:
    method = look.viewing.access_method
    if method not in params["access_methods"]:
        return None
    how = "a covert identity" if method == "covert_identity" else "a personal account"
    return Finding(
        RuleCode.COVERT_ACCESS,
        severity,
        f"The profile was viewed through {how}, so the person may not know the council is looking: covert "
        "viewing can be directed surveillance.",
        [look.viewing.pk],
    )


def possible_chis(look: Look, severity: str, params: dict[str, Any]) -> Finding | None:
    interaction = look.viewing.interaction
    if interaction == Interaction.NONE:
        return None
    label = Interaction(interaction).label.lower()
    return Finding(
        RuleCode.POSSIBLE_CHIS,
        severity,
        f"There was an interaction with the profile ({label}). Establishing or keeping up a relationship to "
        "obtain information covertly may make the council's worker a covert human intelligence source (CHIS), "
        "which needs authorisation.",
        [look.viewing.pk],
    )


def outside_authorisation(look: Look, severity: str, params: dict[str, Any]) -> Finding | None:
    viewing = look.viewing
    if viewing.authorisation_id is None:
        return None
    problems = authorisation_check_viewing(
        authorisation=viewing.authorisation,
        subject_id=viewing.subject_id,
        profile_id=viewing.profile_id,
        platform=viewing.profile.platform,
        at=viewing.viewed_at,
    )
    if not problems:
        return None
    return Finding(
        RuleCode.OUTSIDE_AUTHORISATION,
        severity,
        f"The look cites authorisation {viewing.authorisation.urn}, which did not cover it: "
        + "; ".join(problems)
        + ".",
        [viewing.pk],
    )


def closed_case(look: Look, severity: str, params: dict[str, Any]) -> Finding | None:
    if look.viewing.case.status != "closed":
        return None
    return Finding(
        RuleCode.CLOSED_CASE,
        severity,
        f"Case {look.viewing.case.reference} is closed: looking at someone's social media for a closed case is "
        "hard to justify.",
        [look.viewing.pk],
    )


RULES: dict[str, Callable[[Look, str, dict[str, Any]], Finding | None]] = {
    RuleCode.REPEAT_VIEWING: repeat_viewing,
    RuleCode.SYSTEMATIC_RECORDING: systematic_recording,
    RuleCode.EVIDENCE_PURPOSE: evidence_purpose,
    RuleCode.COLLATERAL_INTRUSION: collateral_intrusion,
    RuleCode.COVERT_ACCESS: covert_access,
    RuleCode.POSSIBLE_CHIS: possible_chis,
    RuleCode.OUTSIDE_AUTHORISATION: outside_authorisation,
    RuleCode.CLOSED_CASE: closed_case,
}


def evaluate(
    viewing: Viewing, rules: dict[str, dict[str, Any]], coverage: AuthorisationCoverage | None = None
) -> list[Finding]:
    """Every enabled rule's finding on ``viewing``, in the policy's rule order."""
    return assess(viewing, rules, coverage)[1]


def assess(
    viewing: Viewing, rules: dict[str, dict[str, Any]], coverage: AuthorisationCoverage | None = None
) -> tuple[Look, list[Finding]]:
    """The look as the rules saw it (its coverage) and every enabled rule's finding on
    ``viewing``, in the policy's rule order. ``coverage``: the person's authorisations
    around it, if already known (else they are read). Reads only."""
    repeat = rules.get(RuleCode.REPEAT_VIEWING) or {}
    window_days = repeat.get("params", {}).get("window_days", 0) if repeat.get("enabled") else 0
    look = Look.of(viewing, window=timedelta(days=window_days), coverage=coverage)
    findings = []
    for code, check in RULES.items():
        rule = rules.get(code)
        if rule and rule.get("enabled"):
            finding = check(look, rule["severity"], rule.get("params", {}))
            if finding is not None:
                findings.append(finding)
    return look, findings
