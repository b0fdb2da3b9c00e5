"""Reads for the API, each starting from ``visible_to(user)``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import User
from authorisations.models import Authorisation
from authorisations.selectors import AuthorisationCoverage
from cases.coverage import consent_counts, covered_by, needs_confirmation
from cases.models import Case, CaseSubject, Consent, Profile, Subject, Viewing
from detection.models import DetectionPolicy
from evidence_service.api.errors import NotFound
from evidence_service.db import select_joined

# A viewing's consent, authorisation and correction are read for a page at once as it is
# written out (cases.api.serializers._read_seldom_set), not joined here.
VIEWING_RELATED = ("case", "profile", "practitioner")


def _get(queryset: QuerySet, target_type: str, pk: object, field: str | None):
    try:
        return queryset.get(pk=int(pk))
    except (ValueError, TypeError, queryset.model.DoesNotExist):
        raise NotFound(target_type, pk, field=field) from None


def case_list(*, user, status: str | None = None) -> QuerySet[Case]:
    cases = Case.objects.visible_to(user).select_related("team")
    return cases.filter(status=status) if status else cases


def case_get(*, user, case_id: object, field: str | None = None) -> Case:
    return _get(Case.objects.visible_to(user).select_related("team"), "case", case_id, field)


def case_subject_links(*, case: Case):
    return case.subject_links.select_related("subject").order_by("id")


def subject_get(*, user, subject_id: object, field: str | None = None) -> Subject:
    return _get(Subject.objects.visible_to(user), "subject", subject_id, field)


def subject_visible_case_links(*, user, subject: Subject):
    """The subject's links to cases the user may see (never other teams' cases)."""
    return subject.case_links.filter(case__in=Case.objects.visible_to(user)).select_related("case").order_by("id")


def subject_profiles(*, user, subject: Subject) -> QuerySet[Profile]:
    """The person's profiles the user's teams know of: registered by someone in the user's
    teams, or viewed on one of their cases (officers: all). Another team's profiles of the
    person are its own record."""
    profiles = subject.profiles.order_by("id")
    if user.is_officer:
        return profiles
    teams = user.teams.all()
    return profiles.filter(
        Q(created_by__teams__in=teams)
        | Q(pk__in=Viewing.objects.filter(subject=subject, case__team__in=teams).values("profile_id"))
    ).distinct()


def subject_consents(*, user, subject: Subject) -> QuerySet[Consent]:
    """The person's consents the user may see: their own teams' (officers: all)."""
    return Consent.objects.visible_to(user).filter(subject=subject).order_by("id")


def profile_get(*, user, profile_id: object, field: str | None = None) -> Profile:
    return _get(Profile.objects.visible_to(user).select_related("subject"), "profile", profile_id, field)


def consent_get(*, user, consent_id: object) -> Consent:
    return _get(Consent.objects.visible_to(user).select_related("subject"), "consent", consent_id, None)


# --- Logging a viewing ---------------------------------------------------------------------------
# Logging a viewing is most of the service's traffic, so its reads are plain statements, one
# round trip each (bench/load.py measures the path). tests/cases/test_viewing_reads.py checks
# them against the querysets they stand for.

_MEMBERSHIP = User.teams.through._meta.db_table
_CASE_SUBJECT = CaseSubject._meta.db_table
_AUTHORISATION_SUBJECTS = Subject.authorisations.through._meta.db_table


#: The case (``c``) and the profile (``profile``) a practitioner is logging a viewing of, each
#: within their teams (parameters: case id, user id, profile id, user id). One row whatever
#: is found: each side is outer-joined, so a miss names its field.
_TARGETS = f"""FROM (SELECT 1 AS one) asked
            LEFT JOIN {Case._meta.db_table} c
                ON c.id = %s AND c.team_id IN (SELECT team_id FROM {_MEMBERSHIP} WHERE user_id = %s)
            LEFT JOIN {Profile._meta.db_table} profile
                ON profile.id = %s AND profile.subject_id IN (
                    SELECT link.subject_id FROM {_CASE_SUBJECT} link
                    JOIN {Case._meta.db_table} linked ON linked.id = link.case_id
                    JOIN {_MEMBERSHIP} member ON member.team_id = linked.team_id
                    WHERE member.user_id = %s)"""


def viewing_targets(*, user, case_id: int, profile_id: int) -> tuple[Case, Profile]:
    """The case and the profile a practitioner is logging a viewing of, as ``case_get``
    and ``profile_get`` would find them for a practitioner (their teams' cases, and
    profiles of people linked to those cases); 404 naming the field otherwise. Other roles
    find nothing: only practitioners log viewings."""
    user_id = user.pk if getattr(user, "is_practitioner", False) else None
    ((case, profile),) = select_joined(
        [(Case, "c"), (Profile, "profile")],
        _TARGETS,
        [case_id, user_id, profile_id, user_id],
    )
    if case is None:
        raise NotFound("case", case_id, field="case")
    if profile is None:
        raise NotFound("profile", profile_id, field="profile")
    return case, profile


@dataclass(frozen=True)
class ViewingContext:
    """What logging a viewing must know before it writes, read in one statement."""

    works_on_case: bool  # the practitioner is in the team that owns the case
    linked_to_case: bool  # the person viewed is linked to the case
    has_consents: bool  # the person has consent records (else no consent can cover the look)
    has_authorisations: bool  # the person is a subject of an authorisation (else none covers)
    policy: DetectionPolicy | None  # the detection policy in force (the newest version)
    consent: Consent | None  # the consent in effect for the platform at the moment of viewing
    at: datetime  # that moment
    # The transaction it was read (and the person's lock taken) in: its outermost block.
    transaction: int = field(default=0, compare=False)


#: The first key of the transaction-scoped advisory locks that serialise detection per person
#: (PostgreSQL's two-key form; the second key is the person's id folded into 32 bits, so two
#: people rarely share a lock, and if they do, one only waits for the other).
PERSON_LOCK_SPACE = 0x43455331


def _lock(person: str) -> str:
    """The join that takes the person's lock (on PostgreSQL; SQLite has one writer at a
    time anyway). With a NULL person (none found) it takes none."""
    if connection.vendor != "postgresql":
        return ""
    key = f"({person} %% 2147483647)::integer"
    return f"CROSS JOIN LATERAL (SELECT pg_advisory_xact_lock({PERSON_LOCK_SPACE}, {key})) locked"


def _context_joins(person: str, team: str) -> str:
    """The policy in force, and one row per consent of the person recorded by the case's
    ``team``, in effect at the moment given, recorded by the moment the look was logged and
    not withdrawn by then (five parameters: the moment three times, then that of logging
    twice), newest first (``Consent.objects.in_effect_at``, written out). Another team's
    consent covers none of this team's looks: what the person agreed to with one team is not
    agreement with all."""
    return f"""LEFT JOIN (
                SELECT id, version, rules FROM {DetectionPolicy._meta.db_table} ORDER BY version DESC LIMIT 1
            ) policy ON 1 = 1
            LEFT JOIN {Consent._meta.db_table} consent ON consent.subject_id = {person}
                AND consent.team_id = {team} AND consent.granted_at <= %s
                AND (consent.expires_at IS NULL OR consent.expires_at > %s)
                AND (consent.withdrawn_at IS NULL OR consent.withdrawn_at > %s)
                AND consent.recorded_at <= %s AND (consent.withdrawn_at IS NULL OR consent.withdrawn_at > %s)"""


def _context_columns(person: str, case: str) -> tuple[str, ...]:
    return (
        f"EXISTS (SELECT 1 FROM {_CASE_SUBJECT} WHERE case_id = {case} AND subject_id = {person})",
        f"EXISTS (SELECT 1 FROM {Consent._meta.db_table} WHERE subject_id = {person})",
        f"EXISTS (SELECT 1 FROM {_AUTHORISATION_SUBJECTS} WHERE subject_id = {person})",
        "policy.id",
        "policy.version",
        "policy.rules",
    )


def _context(
    rows: list[tuple], works_on_case: bool, platform: str, at: datetime, actor_id: int | None
) -> ViewingContext:
    """The context from the rows of a statement built from the pieces above, each row a
    consent instance (or None) and then the columns of ``_context_columns``. The consent
    chosen is the newest naming the platform that counts as cover for ``actor_id`` (see
    ``cases.coverage.consent_counts``), else the newest naming it."""
    linked, consents, authorisations, policy_id, version, rules = rows[0][1:7]
    # Policy versions are never changed (append-only), so the row read is the whole policy.
    policy = DetectionPolicy(id=policy_id, version=version, rules=_rules(rules)) if policy_id is not None else None
    covering = [consent for consent, *_rest in rows if consent is not None and consent.covers_platform(platform)]
    if len(covering) > 1:
        needed = needs_confirmation(policy.rules if policy else None)
        covering.sort(
            key=lambda consent: not consent_counts(
                consent_id=consent.pk,
                status=consent.status,
                recorded_by_id=consent.recorded_by_id,
                withdrawn_at=consent.withdrawn_at,
                viewed_at=at,
                practitioner_id=actor_id,
                confirmation_needed=needed,
            )[0]
        )
    return ViewingContext(
        works_on_case=works_on_case,
        linked_to_case=bool(linked),
        has_consents=bool(consents),
        has_authorisations=bool(authorisations),
        policy=policy,
        consent=covering[0] if covering else None,
        at=at,
        transaction=id(connection.atomic_blocks[0]),
    )


def _require_transaction() -> None:
    # The advisory lock is released when the transaction ends: outside one, at once.
    if not connection.in_atomic_block:
        raise RuntimeError("the viewing's context must be read inside the viewing's transaction")


def viewing_context(
    *,
    actor,
    case: Case,
    subject_id: int,
    platform: str,
    at: datetime,
    logged_at: datetime | None = None,
    lock: bool = True,
) -> ViewingContext:
    """Lock the person viewed until the transaction ends (detection for one person runs one
    viewing at a time, so concurrent looks count each other: a look that waits here reads
    anew once the other has committed) and read what logging the viewing checks, with the
    consent that covers a look at ``platform`` at ``at`` (the newest in effect then whose
    scope includes the platform, recorded by ``logged_at``: when the look is, or a corrected
    look was first, logged; default now). Must run inside the viewing's transaction. On PostgreSQL
    the lock is an advisory lock, which, unlike a row lock, writes nothing. Without
    ``lock`` (a check, which logs nothing) no lock is taken."""
    _require_transaction()
    locking = lock and connection.vendor == "postgresql"
    now = timezone.now()
    rows = select_joined(
        [(Consent, "consent")],
        f"""FROM {Subject._meta.db_table} person
            {_lock("%s") if locking else ""}
            {_context_joins("person.id", str(int(case.team_id)))}
            WHERE person.id = %s
            ORDER BY consent.granted_at DESC, consent.id DESC""",
        # The extra columns' parameters come first: they are selected before the FROM.
        [
            getattr(actor, "pk", None),
            case.team_id,
            case.pk,
            *([subject_id] if locking else []),
            at,
            at,
            at,
            logged_at or now,
            logged_at or now,
            subject_id,
        ],
        extra=(
            f"EXISTS (SELECT 1 FROM {_MEMBERSHIP} WHERE user_id = %s AND team_id = %s)",
            *_context_columns("person.id", "%s"),
        ),
    )
    if not rows:
        raise NotFound("subject", subject_id)
    member = rows[0][1]
    works = bool(member) and getattr(actor, "is_practitioner", False)
    return _context([(row[0], *row[2:]) for row in rows], works, platform, at, getattr(actor, "pk", None))


def viewing_scope(
    *, user, case_id: int, profile_id: int, at: datetime, lock: bool = True
) -> tuple[Case, Profile, ViewingContext]:
    """``viewing_targets`` and ``viewing_context`` in one statement, for a new viewing at
    ``at``: the case and profile as a practitioner may see them (404 naming the field
    otherwise), the person's lock (unless not ``lock``), and the context. Must run inside
    the viewing's transaction."""
    _require_transaction()
    now = timezone.now()
    user_id = user.pk if getattr(user, "is_practitioner", False) else None
    rows = select_joined(
        [(Case, "c"), (Profile, "profile"), (Consent, "consent")],
        f"""{_TARGETS}
            {_lock("profile.subject_id") if lock else ""}
            {_context_joins("profile.subject_id", "c.team_id")}
            ORDER BY consent.granted_at DESC, consent.id DESC""",
        [case_id, user_id, profile_id, user_id, at, at, at, now, now],
        extra=_context_columns("profile.subject_id", "c.id"),
    )
    case, profile = rows[0][0], rows[0][1]
    if case is None:
        raise NotFound("case", case_id, field="case")
    if profile is None:
        raise NotFound("profile", profile_id, field="profile")
    # A case is found only in the practitioner's own teams: they work on it.
    return case, profile, _context([row[2:] for row in rows], True, profile.platform, at, user_id)


@lru_cache(maxsize=16)
def _parsed_rules(text: str) -> dict:
    return json.loads(text)


def _rules(value) -> dict:
    """The policy's rules column as read by a plain cursor: JSON text (parsed once per
    distinct text) or, on drivers that decode JSON themselves, already a dict."""
    if isinstance(value, str):
        return _parsed_rules(value)
    return value


def viewing_list(
    *,
    user,
    case_id: int | None = None,
    subject_id: int | None = None,
    profile_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Viewing]:
    # Their flags are read for the whole page at once as it is written out (ViewingListOutput).
    viewings = Viewing.objects.visible_to(user).select_related(*VIEWING_RELATED)
    if case_id is not None:
        viewings = viewings.filter(case_id=case_id)
    if subject_id is not None:
        viewings = viewings.filter(subject_id=subject_id)
    if profile_id is not None:
        viewings = viewings.filter(profile_id=profile_id)
    if since is not None:
        viewings = viewings.filter(viewed_at__gte=since)
    if until is not None:
        viewings = viewings.filter(viewed_at__lt=until)
    return viewings


def viewing_get(*, user, viewing_id: object) -> Viewing:
    return _get(
        Viewing.objects.visible_to(user).select_related(*VIEWING_RELATED),
        "viewing",
        viewing_id,
        None,
    )


# --- What covered a look ------------------------------------------------------------------------


def _repeat_window_days(policy) -> int:
    rule = (policy.rules if policy is not None else {}).get("REPEAT_VIEWING") or {}
    return int((rule.get("params") or {}).get("window_days", 0)) if rule.get("enabled") else 0


def viewing_authorisation_cover(
    *, context: ViewingContext, profile: Profile, case: Case, viewed_at: datetime, corrected: list[Viewing] = ()
) -> tuple[AuthorisationCoverage, Authorisation | None]:
    """The person's authorisations around a look at ``viewed_at`` (and the moments of the
    records it corrects, ``corrected``), read once for the record and for detection, and the
    one covering the look: only the look's own case's can. For logging a look and for
    checking one before it is made (the same code path)."""
    times = [viewed_at, *(record.viewed_at for record in corrected)]
    if context.has_authorisations:
        window = timedelta(days=_repeat_window_days(context.policy))
        coverage = AuthorisationCoverage.load(
            subject_id=profile.subject_id, since=min(times) - window, until=max(times) + window
        )
    else:
        coverage = AuthorisationCoverage.NONE
    return coverage, coverage.covering(profile_id=profile.pk, platform=profile.platform, at=viewed_at, case_id=case.pk)


def viewing_cover(
    *,
    context: ViewingContext,
    practitioner_id: int,
    platform: str,
    viewed_at: datetime,
    logged_at: datetime | None,
    covering: Authorisation | None,
    cited_authorisation_id: int | None,
) -> dict:
    """``covered_by`` (cases/coverage.py) of a look being logged (or checked): the consent
    ``context`` found and the authorisation ``viewing_authorisation_cover`` found."""
    return covered_by(
        viewed_at=viewed_at,
        practitioner_id=practitioner_id,
        platform=platform,
        logged_at=logged_at,
        consent=context.consent,
        authorisation=covering,
        cited_authorisation_id=cited_authorisation_id,
        confirmation_needed=needs_confirmation(context.policy.rules if context.policy else None),
    )
