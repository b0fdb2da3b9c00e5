"""Who may decide flags and change the policy."""

from __future__ import annotations

from accounts.models import Role


def works_on_case(user, case) -> bool:
    """A member of the team that owns the case is involved in it and may not decide on it."""
    return user.teams.filter(pk=case.team_id).exists()


def can_decide_flag(user, flag) -> bool:
    """An active RIPA officer or SRO the flag was routed to."""
    return bool(
        user.is_authenticated
        and user.is_active
        and user.role in (Role.RIPA_OFFICER, Role.SRO)
        and flag.recipients.filter(officer=user).exists()
    )
