"""Who may decide flags and change the policy."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import Role, User
from cases.models import Case
from detection.models import FlagViewing


def involved_in_flag(flag, *, joining=None) -> QuerySet[User]:
    """Everyone involved in a flag: the members of the team of every case with a look in it
    (a flag is about a person, so it takes in looks from any case about them; its own case
    is the first), and everyone who looked. ``joining``: a viewing about to join the flag,
    counted as one of its looks."""
    looks = FlagViewing.objects.filter(flag_id=flag.pk)
    cases = Q(pk=flag.case_id) | Q(pk__in=looks.values("viewing__case_id"))
    lookers = Q(pk__in=looks.values("viewing__practitioner_id"))
    if joining is not None:
        cases |= Q(pk=joining.case_id)
        lookers |= Q(pk=joining.practitioner_id)
    teams = Case.objects.filter(cases).values("team_id")
    return User.objects.filter(Q(teams__in=teams) | lookers)


def works_on_flag(user, flag) -> bool:
    """The user is involved in the flag (``involved_in_flag``) and may not decide it."""
    return involved_in_flag(flag).filter(pk=user.pk).exists()


def free_to_decide(users: QuerySet[User], flag, *, joining=None) -> QuerySet[User]:
    """Those of ``users`` who are active and not involved in the flag (``involved_in_flag``)."""
    return users.filter(is_active=True).exclude(pk__in=involved_in_flag(flag, joining=joining).values("pk"))


def routed_to(user, flag) -> bool:
    """An active RIPA officer or SRO the flag was routed to (whether or not now involved)."""
    return bool(
        user.is_authenticated
        and user.is_active
        and user.role in (Role.RIPA_OFFICER, Role.SRO)
        and flag.recipients.filter(officer=user).exists()
    )


def can_decide_flag(user, flag) -> bool:
    """An active RIPA officer or SRO the flag was routed to, not involved in it (not in the
    team of any case with a look in it, not one who looked)."""
    return routed_to(user, flag) and not works_on_flag(user, flag)
