"""Reads of flags and the policy for the API, starting from ``visible_to(user)``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db.models import Prefetch, QuerySet

from cases.models import Case, Viewing
from cases.permissions import is_practitioner
from detection.models import DetectionPolicy, Flag, FlagRecipient, FlagViewing, RuleCode
from evidence_service.api.errors import NotFound


def flag_list(
    *, user, status: str | None = None, rule: str | None = None, case: int | None = None, subject: int | None = None
) -> QuerySet[Flag]:
    flags = Flag.objects.visible_to(user).select_related("case", "decided_by")
    if status:
        flags = flags.filter(status=status)
    if rule:
        flags = flags.filter(rule=rule)
    if case is not None:
        # A case the user may not see finds nothing, as other teams' cases do in every list.
        flags = flags.filter(case__in=Case.objects.visible_to(user).filter(pk=case))
    if subject is not None:
        flags = flags.filter(subject_id=subject)
    # Whom each is routed to is read for the whole page as it is written out (FlagListOutput).
    return flags


def flag_get(*, user, flag_id: object) -> Flag:
    try:
        recipients = Prefetch("recipients", FlagRecipient.objects.select_related("officer").order_by("id"))
        flag = flag_list(user=user).prefetch_related(recipients).get(pk=int(flag_id))
    except (ValueError, TypeError, Flag.DoesNotExist):
        raise NotFound("flag", flag_id) from None
    flags_seen_by(user=user, flags=[flag])
    return flag


def flags_seen_by(*, user, flags: list[Flag]) -> None:
    """Give each flag the explanation of the user's own latest look in it
    (``own_explanation``) when the user is a practitioner who may not see the flag's case:
    their look joined a flag raised on another team's case. They are then shown the flag
    from their own look (``detection.api.views.as_seen``), not that case, the explanation
    written for the look that raised it or the officer's reasoning. Flags whose case they
    may see, and every flag for other roles, get ``None``. One statement, for practitioners
    only."""
    for flag in flags:
        flag.own_explanation = None
    if not flags or not is_practitioner(user):
        return
    by_id = {flag.pk: flag for flag in flags}
    own = (
        FlagViewing.objects.filter(flag_id__in=by_id, viewing__practitioner=user)
        .exclude(flag__case__in=Case.objects.visible_to(user))
        .order_by("id")
        .values_list("flag_id", "explanation")
    )
    for flag_id, explanation in own:  # oldest first: the latest look's is kept
        by_id[flag_id].own_explanation = explanation


def flag_viewings(*, user, flag: Flag) -> tuple[list[FlagViewing], int]:
    """The flag's triggering viewings the user may see, and how many others there are
    (a practitioner sees their team's, not other teams' case details)."""
    links = list(
        flag.flag_viewings.select_related("viewing__case", "viewing__profile", "viewing__practitioner").order_by("id")
    )
    visible = set(
        Viewing.objects.visible_to(user).filter(pk__in=[link.viewing_id for link in links]).values_list("pk", flat=True)
    )
    shown = [link for link in links if link.viewing_id in visible]
    return shown, len(links) - len(shown)


LINK_VALUES = (
    "viewing_id",
    "flag_id",
    "flag__rule",
    "flag__severity",
    "flag__status",
    "flag__raised_at",
    "flag__policy_version",
    "explanation",
    "counted_viewing_ids",
    "added_at",
)


def flag_links_of(viewing_ids: Iterable[int]) -> tuple[list[dict], dict[int, list[str]]]:
    """For viewing lists: the viewings' flag links, oldest first, as plain values with
    their flags' fields (``LINK_VALUES``), and the usernames each of those flags is routed
    to, sorted. Two statements for any number of viewings and no model instances: a nested
    prefetch of links, flags, recipients and officers cost more than the rest of a page."""
    ids = list(viewing_ids)
    if not ids:
        return [], {}
    links = list(FlagViewing.objects.filter(viewing_id__in=ids).order_by("id").values(*LINK_VALUES))
    routed: dict[int, list[str]] = defaultdict(list)
    recipients = FlagRecipient.objects.filter(flag_id__in={link["flag_id"] for link in links})
    for flag_id, username in recipients.values_list("flag_id", "officer__username"):
        routed[flag_id].append(username)
    for usernames in routed.values():
        usernames.sort()
    return links, routed


def policy_current() -> DetectionPolicy:
    return DetectionPolicy.objects.order_by("-version").first()


def policy_rules_in_force() -> dict | None:
    """The rules of the policy in force (the newest version), in one query; None if none."""
    return DetectionPolicy.objects.order_by("-version").values_list("rules", flat=True).first()


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
