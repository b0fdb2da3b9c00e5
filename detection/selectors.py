"""Reads of flags and the policy for the API, starting from ``visible_to(user)``."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from cases.models import Viewing
from detection.models import DetectionPolicy, Flag, FlagViewing
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
        flags = flags.filter(case_id=case)
    if subject is not None:
        flags = flags.filter(subject_id=subject)
    return flags.prefetch_related("recipients__officer")


def flag_get(*, user, flag_id: object) -> Flag:
    try:
        return flag_list(user=user).get(pk=int(flag_id))
    except (ValueError, TypeError, Flag.DoesNotExist):
        raise NotFound("flag", flag_id) from None


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


def flags_prefetch() -> Prefetch:
    """For viewing lists: each viewing's flag links with their flags and recipients."""
    return Prefetch(
        "flag_links", queryset=FlagViewing.objects.select_related("flag").prefetch_related("flag__recipients__officer")
    )


def policy_current() -> DetectionPolicy:
    return DetectionPolicy.objects.order_by("-version").first()
