"""Who may do what with cases and the people in them. Plain predicates, used by the
services (which refuse with 403) and by the API's role checks."""

from __future__ import annotations

from accounts.models import Role


def is_practitioner(user) -> bool:
    return bool(user.is_authenticated and user.role == Role.PRACTITIONER)


def reads_cases(user) -> bool:
    """Practitioners read their teams' cases; RIPA officers and the SRO read all cases."""
    return bool(user.is_authenticated and user.role in (Role.PRACTITIONER, Role.RIPA_OFFICER, Role.SRO))


def works_on_case(user, case) -> bool:
    """The user is a practitioner in the team that owns the case."""
    return is_practitioner(user) and user.teams.filter(pk=case.team_id).exists()


def can_manage_subject(user, subject) -> bool:
    """A practitioner may change a subject's profiles and consent when the subject is
    linked to a case of one of their teams."""
    return is_practitioner(user) and subject.case_links.filter(case__team__in=user.teams.all()).exists()
