"""The detection rules: what makes a look at someone's social media a possible surveillance
risk. Each rule reads the look being logged (and, for repeat viewing, the person's other
recent views) and says in plain words what it found.

A look is judged *before* it is written (``viewing.pk`` is None): logging judges it that
way and then writes it, and ``POST /viewings/check/`` judges it the same way and writes
nothing, so a check says what logging would find (``detection.plan``). In a finding's
counted looks the look itself is ``THIS_LOOK`` until it has an id.

Coverage: a view is *covered* when a consent of the person's was in effect for that
platform at that moment, recorded before the view was (first) logged, not withdrawn before
it and, for the looks of the practitioner who recorded it, confirmed by an officer (the
policy's ``consent_needs_confirmation``), or an authorisation of the view's own case in force
named the person and the platform or profile. Covered views are not counted as repeat viewing
and do not make recording "systematic". A corrected view counts at its original moment as
well as its corrected one, once (whichever makes the larger run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.utils import timezone

from authorisations.selectors import AuthorisationCoverage, authorisation_check_viewing
from cases.coverage import CONFIRMED, consent_counts, needs_confirmation
from cases.models import Case, Consent, Interaction, Profile, Purpose, Viewing
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
    authorisation_in_force: Any = None  # the authorisation covering it (its own case's), if any
    confirmation_needed: bool = True  # the policy's consent_needs_confirmation
    # Set by the repeat-viewing rule when it counts: the uncovered looks (this one among
    # them) in its busiest window, whether or not that reached the threshold.
    repeat_count: int | None = None

    @classmethod
    def of(
        cls,
        viewing: Viewing,
        window: timedelta = timedelta(0),
        coverage: AuthorisationCoverage | None = None,
        confirmation_needed: bool = True,
    ) -> Look:
        """``window``: how far either side of the viewing other looks are judged too."""
        if coverage is None:
            times = [viewing.viewed_at, *(moment for _pk, moment in getattr(viewing, "corrected_records", ()))]
            coverage = AuthorisationCoverage.load(
                subject_id=viewing.subject_id, since=min(times) - window, until=max(times) + window
            )
        look = cls(viewing=viewing, coverage=coverage, confirmation_needed=confirmation_needed)
        look.authorisation_in_force = coverage.covering(
            profile_id=viewing.profile_id,
            platform=viewing.profile.platform,
            at=viewing.viewed_at,
            case_id=viewing.case_id,
        )
        return look

    def covered(self, other: OtherLook) -> bool:
        """Whether ``other`` (a look at the same person) was covered: by a consent that
        counts, or by an authorisation of its own case."""
        return (
            other.consent_counts
            or self.coverage.covering(
                profile_id=other.profile_id, platform=other.platform, at=other.viewed_at, case_id=other.case_id
            )
            is not None
        )

    @property
    def consent_counts(self) -> bool:
        viewing = self.viewing
        consent = viewing.consent if viewing.consent_id is not None else None
        return consent_counts(
            consent_id=viewing.consent_id,
            status=getattr(consent, "status", None),
            recorded_by_id=getattr(consent, "recorded_by_id", None),
            withdrawn_at=getattr(consent, "withdrawn_at", None),
            viewed_at=viewing.viewed_at,
            practitioner_id=viewing.practitioner_id,
            confirmation_needed=self.confirmation_needed,
            logged_at=viewing.recorded_at if viewing.supersedes_id is None else None,
        )[0]

    @property
    def consent_or_authorisation(self) -> bool:
        return self.consent_counts or self.authorisation_in_force is not None


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
    supersedes_id: int | None
    platform: str
    team_id: int  # of the case it was logged against
    case_id: int
    consent_counts: bool  # a consent that counts as cover now (not withdrawn before it, confirmed if need be)


def _whose(other: OtherLook, look: Viewing) -> str:
    if other.pk == look.pk:
        return "this look"
    if other.practitioner_id == look.practitioner_id:
        return "you"
    if other.team_id == look.case.team_id:
        return "a colleague in your team"
    return "someone in another team"


def _looks_around(viewing: Viewing, window: timedelta, confirmation_needed: bool = True) -> list[OtherLook]:
    """The person's looks within ``window`` either side of ``viewing`` (and of the moments
    the records it corrects gave) that no consent counting as cover covered, oldest first
    (``viewing`` among them). Corrected records are read too: a corrected look counts at its
    original moment as well as its new one (``repeat_viewing`` counts each look once). One
    range read on the (subject, viewed_at) index, as a plain statement: it runs for every
    look not covered by consent or an authorisation."""
    table = Viewing._meta.db_table
    times = [viewing.viewed_at, *(moment for _pk, moment in getattr(viewing, "corrected_records", ()))]
    counts = f"""(look.consent_id IS NOT NULL
                  AND (cs.withdrawn_at IS NULL OR cs.withdrawn_at > look.viewed_at)
                  AND (cs.withdrawn_at IS NULL OR look.supersedes_id IS NOT NULL OR cs.withdrawn_at > look.recorded_at)
                  AND (cs.status = '{CONFIRMED}' OR cs.recorded_by_id <> look.practitioner_id OR %s))"""
    rows = select_values(
        Viewing,
        "look",
        ("id", "viewed_at", "practitioner", "consent", "profile", "supersedes"),
        f"""FROM {table} look
            JOIN {Profile._meta.db_table} profile ON profile.id = look.profile_id
            JOIN {Case._meta.db_table} c ON c.id = look.case_id
            LEFT JOIN {Consent._meta.db_table} cs ON cs.id = look.consent_id
            WHERE look.subject_id = %s AND look.viewed_at >= %s AND look.viewed_at <= %s
              AND (NOT {counts} OR look.id = %s)
            ORDER BY look.viewed_at, look.id""",
        [
            not confirmation_needed,
            viewing.subject_id,
            min(times) - window,
            max(times) + window,
            not confirmation_needed,
            viewing.pk,
        ],
        extra={"platform": "profile.platform", "team_id": "c.team_id", "case_id": "c.id", "counts": counts},
    )
    looks = [OtherLook(*row[:9], bool(row[9])) for row in rows]
    return _as_if_written(looks, viewing, confirmation_needed) if viewing.pk is None else looks


def _as_if_written(looks: list[OtherLook], viewing: Viewing, confirmation_needed: bool) -> list[OtherLook]:
    """``looks`` as they will be once ``viewing``, not yet written, is: it among them in its
    place in time order, after other looks at the same moment (it will have the highest
    id). The records it corrects stay: a corrected look counts at each of its moments."""
    consent = viewing.consent if viewing.consent_id is not None else None
    candidate = OtherLook(
        THIS_LOOK,
        viewing.viewed_at,
        viewing.practitioner_id,
        viewing.consent_id,
        viewing.profile_id,
        viewing.supersedes_id,
        viewing.profile.platform,
        viewing.case.team_id,
        viewing.case_id,
        consent_counts(
            consent_id=viewing.consent_id,
            status=getattr(consent, "status", None),
            recorded_by_id=getattr(consent, "recorded_by_id", None),
            withdrawn_at=getattr(consent, "withdrawn_at", None),
            viewed_at=viewing.viewed_at,
            practitioner_id=viewing.practitioner_id,
            confirmation_needed=confirmation_needed,
        )[0],
    )
    at = next((i for i, other in enumerate(looks) if other.viewed_at > viewing.viewed_at), len(looks))
    return [*looks[:at], candidate, *looks[at:]]


def _chains(looks: list[OtherLook], viewing: Viewing) -> dict[int, int]:
    """Each look's key: the first record of the chain of corrections it belongs to (as far
    as the looks read show it; ``viewing``'s own chain in full)."""
    parent = {look.pk: look.supersedes_id for look in looks}
    root = viewing.pk
    own = {viewing.pk, *(pk for pk, _moment in getattr(viewing, "corrected_records", ()))}
    keys = {}
    for look in looks:
        if look.pk in own:
            keys[look.pk] = root
            continue
        key, seen = look.pk, 0
        while parent.get(key) is not None and parent[key] in parent and seen < 1000:
            key, seen = parent[key], seen + 1
        keys[look.pk] = root if key in own else key
    return keys


def busiest_window(points: list[tuple[datetime, int]], this: int, window: timedelta) -> tuple[int, int]:
    """Of ``points`` (moment, look key; sorted by moment), the first and last positions of
    the run spanning at most ``window`` with the most distinct looks that includes a moment
    of look ``this``; the earliest such run on a tie. A look counts once however many of its
    moments (original and corrected) fall in the run. One pass with a moving end."""
    best = (-1, 0, -1)  # distinct looks, start, end
    counts: dict[int, int] = {}
    end = -1
    for start in range(len(points)):
        while end + 1 < len(points) and points[end + 1][0] - points[start][0] <= window:
            end += 1
            counts[points[end][1]] = counts.get(points[end][1], 0) + 1
        if counts.get(this) and len(counts) > best[0]:
            best = (len(counts), start, end)
        key = points[start][1]
        counts[key] -= 1
        if not counts[key]:
            del counts[key]
    return best[1], best[2]


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
    this view. A corrected look counts at its original moment as well as its corrected one
    (whichever makes the larger run). One indexed range read on (subject, viewed_at),
    however long the history."""
    viewing = look.viewing
    if look.consent_or_authorisation:
        return None
    window = timedelta(days=params["window_days"])
    this_pk = viewing.pk
    looks = _looks_around(viewing, window, look.confirmation_needed)
    # The looks read are those no consent covered; with no authorisation around, none is covered.
    uncovered = (
        [other for other in looks if other.pk == this_pk or not look.covered(other)]
        if look.coverage.authorisations
        else looks
    )
    keys = _chains(uncovered, viewing)
    start, end = busiest_window([(other.viewed_at, keys[other.pk]) for other in uncovered], this_pk, window)
    # Each look once, as its newest record in the run (this look as itself).
    newest: dict[int, OtherLook] = {}
    for other in uncovered[start : end + 1]:
        key = keys[other.pk]
        if key not in newest or other.pk == this_pk or (newest[key].pk != this_pk and other.pk > newest[key].pk):
            newest[key] = other
    # This look, not yet written, has no id: it sorts after the looks at its moment.
    best = sorted(newest.values(), key=lambda other: (other.viewed_at, other.pk is THIS_LOOK, other.pk or 0))
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


def late_entries(look: Look, severity: str, params: dict[str, Any]) -> Finding | None:
    """A practitioner's late entries (looks logged with a late-entry reason: logged long
    after they happened, or corrected to another moment) about one person, reaching
    ``threshold`` within ``window_days`` of logging. Read only when this look is one."""
    viewing = look.viewing
    if not viewing.late_entry_reason:
        return None
    since = viewing.recorded_at - timedelta(days=params["window_days"])
    late = list(
        Viewing.objects.filter(
            subject_id=viewing.subject_id, practitioner_id=viewing.practitioner_id, recorded_at__gte=since
        )
        .exclude(late_entry_reason="")
        # A late entry corrected by another late entry is one look (the correction counts).
        .exclude(superseded_by__late_entry_reason__gt="")
        .order_by("recorded_at", "id")
        .values_list("id", flat=True)
    )
    if viewing.pk is None and viewing.supersedes_id in late:
        # Not yet written, this correction does not yet hide the late entry it corrects.
        late.remove(viewing.supersedes_id)
    if viewing.pk not in late:
        late.append(viewing.pk)
    if len(late) < params["threshold"]:
        return None
    return Finding(
        RuleCode.LATE_ENTRIES,
        severity,
        f"This is late entry number {len(late)} by you about this person within {params['window_days']} days "
        "(looks logged long after they happened, or corrected to another moment). Spacing looks out on paper "
        f"can hide repeated viewing; the council's policy asks an officer to review {params['threshold']} or more.",
        late,
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
    RuleCode.LATE_ENTRIES: late_entries,
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
    look = Look.of(
        viewing,
        window=timedelta(days=window_days),
        coverage=coverage,
        confirmation_needed=needs_confirmation(rules),
    )
    findings = []
    for code, check in RULES.items():
        rule = rules.get(code)
        if rule and rule.get("enabled"):
            finding = check(look, rule["severity"], rule.get("params", {}))
            if finding is not None:
                findings.append(finding)
    return look, findings
