"""Who may do what with authorisations. Plain predicates, used by the services (which
refuse with 403) and by the API's role checks."""

from __future__ import annotations

from django.conf import settings

from accounts.models import Role

#: Roles that read authorisations (practitioners: their teams' cases only).
AUTHORISATION_READERS = (Role.PRACTITIONER, Role.RIPA_OFFICER, Role.SRO)
#: Roles that decide: grant, refuse, record magistrate approval, review, renew, cancel.
AUTHORISING_OFFICERS = (Role.RIPA_OFFICER, Role.SRO)
#: Roles that read the central record of authorisations.
CENTRAL_RECORD_READERS = (Role.AUDITOR, Role.SRO, Role.RIPA_OFFICER)


def is_authorising_officer(user) -> bool:
    return bool(user.is_authenticated and user.role in AUTHORISING_OFFICERS)


def works_on_case(user, case) -> bool:
    """The user is a member of the team that owns the case, whatever their role (an
    officer who also sits in a team is involved in that team's cases)."""
    return bool(user.is_authenticated and user.teams.filter(pk=case.team_id).exists())


def can_apply(user, case) -> bool:
    return bool(user.is_authenticated and user.role == Role.PRACTITIONER and works_on_case(user, case))


def why_cannot_decide(user, authorisation) -> tuple[str, str] | None:
    """``(code, reason)`` when ``user`` may not act as the authorising officer on
    ``authorisation``; None when they may."""
    if not is_authorising_officer(user):
        return "not_an_authorising_officer", "Only a RIPA officer or the SRO may decide on authorisations."
    if authorisation.applicant_id == user.pk:
        return "own_application", "You made this application: another authorising officer must decide on it."
    if works_on_case(user, authorisation.case):
        return (
            "works_on_the_case",
            f"You work on case {authorisation.case.reference}: an officer who does not work on the case must decide.",
        )
    if works_on_a_case_of_its_people(user, authorisation):
        return (
            "works_on_the_person",
            "You work on another case that a person in this authorisation is on: an officer who works on none "
            "of their cases must decide.",
        )
    return None


def works_on_a_case_of_its_people(user, authorisation) -> bool:
    """The user is a member of a team with a case (any case, open or closed) that one of
    the authorisation's people is on: deciding about someone one's own team works with is
    as much a conflict as deciding on one's own case."""
    if not user.is_authenticated:
        return False
    from cases.models import CaseSubject

    return CaseSubject.objects.filter(
        subject__in=authorisation.subjects.all(), case__team__in=user.teams.all()
    ).exists()


def why_needs_senior_officer(user, authorisation) -> str | None:
    """The reason a grant or renewal needs the senior officer, when ``user`` is not one."""
    if not authorisation.needs_senior_officer or user.role == settings.AUTHORISATION_SENIOR_GRANT_ROLE:
        return None
    when = settings.AUTHORISATION_SENIOR_GRANT_WHEN
    reasons = [
        reason
        for setting, present, reason in (
            (
                "confidential_information",
                authorisation.confidential_information_likely,
                "confidential information is likely",
            ),
            ("juvenile_source", authorisation.juvenile_source, "the source is a juvenile"),
            ("vulnerable_source", authorisation.vulnerable_source, "the source is vulnerable"),
        )
        if setting in when and present
    ]
    role = Role(settings.AUTHORISATION_SENIOR_GRANT_ROLE).label
    return f"This authorisation needs the {role} ({' and '.join(reasons)})."
