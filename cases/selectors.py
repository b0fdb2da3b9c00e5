"""Reads for the API, each starting from ``visible_to(user)``."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from cases.models import Case, Consent, Profile, Subject, Viewing
from detection.selectors import flags_prefetch
from evidence_service.api.errors import NotFound

VIEWING_RELATED = ("case", "profile", "practitioner", "consent", "authorisation", "superseded_by")


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


def profile_get(*, user, profile_id: object, field: str | None = None) -> Profile:
    return _get(Profile.objects.visible_to(user).select_related("subject"), "profile", profile_id, field)


def consent_get(*, user, consent_id: object) -> Consent:
    return _get(Consent.objects.visible_to(user).select_related("subject"), "consent", consent_id, None)


def consent_covering(*, subject_id: int, platform: str, at: datetime) -> Consent | None:
    """The consent in effect for ``platform`` at ``at``, preferring the most recently
    granted when several overlap."""
    for consent in Consent.objects.filter(subject_id=subject_id).in_effect_at(at).order_by("-granted_at", "-id"):
        if consent.covers_platform(platform):
            return consent
    return None


def viewing_list(
    *,
    user,
    case_id: int | None = None,
    subject_id: int | None = None,
    profile_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Viewing]:
    viewings = Viewing.objects.visible_to(user).select_related(*VIEWING_RELATED).prefetch_related(flags_prefetch())
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
        Viewing.objects.visible_to(user).select_related(*VIEWING_RELATED).prefetch_related(flags_prefetch()),
        "viewing",
        viewing_id,
        None,
    )
