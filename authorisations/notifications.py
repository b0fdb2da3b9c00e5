"""Who is told what about an authorisation, by email through the notifications outbox
(``detection.notifications``: a row in the caller's transaction, sent by a Celery task
after commit, retried, each attempt audited).

    submitted                          → the officers who may decide it
    granted or refused                 → the applicant, and the other officers who could have decided it
    a magistrate's outcome             → the applicant and the officer who granted (or renewed) it
    cancelled                          → the applicant and the officer who granted it
    review overdue, expiry soon        → the applicant and the officer who granted it (the reminders)
    expired                            → the applicant and the officer who granted it

Never the one who acted, never anyone deactivated. Someone without an email address is
still recorded (the delivery attempt says why not, and a warning is logged). Emails name
the URN, the type and the case reference, never the people under surveillance, and carry
a link to the authorisation's page built on ``SITE_URL``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.db.models import QuerySet

from accounts.models import User
from authorisations.models import Authorisation, AuthorisationType
from authorisations.permissions import AUTHORISING_OFFICERS
from detection.notifications import notify, site_link

logger = logging.getLogger(__name__)


def may_decide(authorisation: Authorisation) -> QuerySet[User]:
    """The active officers who may decide ``authorisation`` (``permissions.why_cannot_decide``
    and ``why_needs_senior_officer`` as queries): RIPA officers and the SRO, not the
    applicant, not in the team that owns the case; only the senior officer's role when a
    grant needs it."""
    officers = (
        User.objects.filter(role__in=AUTHORISING_OFFICERS, is_active=True)
        .exclude(pk=authorisation.applicant_id)
        .exclude(teams=authorisation.case.team_id)
    )
    if authorisation.needs_senior_officer:
        officers = officers.filter(role=settings.AUTHORISATION_SENIOR_GRANT_ROLE)
    return officers.order_by("username")


def concerned(authorisation: Authorisation, *also: User | None, actor: User | None = None) -> list[User]:
    """The applicant, the officer who granted or refused it and ``also``, once each,
    active, without ``actor`` (who knows already)."""
    people = [authorisation.applicant, authorisation.decided_by, *also]
    return [
        person
        for person in dict.fromkeys(person for person in people if person is not None)
        if person.is_active and (actor is None or person.pk != actor.pk)
    ]


def _describe(authorisation: Authorisation) -> str:
    kind = AuthorisationType(authorisation.type).label
    return f"Authorisation {authorisation.urn} ({kind}) for case {authorisation.case.reference}"


def _name(user: User | None) -> str:
    if user is None:
        return "the scheduled job"
    name = user.get_full_name()
    return f"{name} ({user.username})" if name else user.username


def _send(authorisation: Authorisation, recipients: Iterable[User], subject: str, text: str) -> None:
    link = site_link(f"/authorisations/{authorisation.pk}/")
    notify(
        recipients=recipients,
        subject_line=f"[{authorisation.urn}] {subject}",
        body=f"{_describe(authorisation)}.\n\n{text}\n\nThe authorisation: {link}\n",
        authorisation=authorisation,
    )


def notify_submitted(authorisation: Authorisation) -> list[User]:
    """Ask the officers who may decide a submitted application to decide it. The officers
    told; none (and a warning logged) when nobody may."""
    officers = list(may_decide(authorisation))
    if not officers:
        logger.warning(
            "authorisation %s submitted, but no active officer may decide it (all work on the case%s)",
            authorisation.urn,
            ", or none has the senior officer's role" if authorisation.needs_senior_officer else "",
        )
        return []
    senior = (
        " It needs the senior officer: confidential information is likely, or the source is a juvenile or vulnerable."
        if authorisation.needs_senior_officer
        else ""
    )
    _send(
        authorisation,
        officers,
        f"Application submitted on case {authorisation.case.reference}: please decide",
        f"{_name(authorisation.applicant)} has submitted an application for your decision.{senior} "
        "Grant or refuse it; if you are directly involved in the investigation, leave it to another officer.",
    )
    return officers


def notify_decided(authorisation: Authorisation, *, actor: User) -> None:
    """Tell the applicant an application was granted or refused, and the other officers
    who could have decided it that it no longer needs them."""
    if authorisation.decision == "granted":
        verb = "granted"
        if authorisation.status == "awaiting_judicial_approval":
            what = "It now awaits a magistrate's approval and does not yet cover any activity."
        else:
            what = "It is in force."
    else:
        verb, what = "refused", "Nothing may be done under it. The reasons are in the record."
    recipients = concerned(authorisation, actor=actor) + [
        officer for officer in may_decide(authorisation) if officer.pk != actor.pk
    ]
    _send(authorisation, recipients, f"Application {verb}", f"{_name(actor)} {verb} the application. {what}")


def notify_judicial_outcome(authorisation: Authorisation, *, outcome: str, renewal, actor: User) -> None:
    """Tell the applicant and the officer who granted (or renewed) it what the magistrate decided."""
    about = "renewal" if renewal is not None else "grant"
    if outcome == "approved":
        what = "The authorisation is in force." if renewal is None else "The renewed expiry now applies."
    else:
        what = (
            "It does not come into force."
            if renewal is None
            else "The authorisation stays in force only until its earlier expiry."
        )
    _send(
        authorisation,
        concerned(authorisation, renewal.renewed_by if renewal is not None else None, actor=actor),
        f"Magistrate {outcome} the {about}",
        f"{_name(actor)} recorded that the magistrate {outcome} the {about}. {what}",
    )


def notify_cancelled(authorisation: Authorisation, *, actor: User) -> None:
    _send(
        authorisation,
        concerned(authorisation, actor=actor),
        "Cancelled: stop the activity",
        f"{_name(actor)} cancelled the authorisation. It no longer covers any activity.",
    )


def notify_expired(authorisation: Authorisation) -> None:
    _send(
        authorisation,
        concerned(authorisation),
        "Expired: stop the activity",
        "The authorisation has expired and no longer covers any activity. Apply again if it is still needed.",
    )


def notify_reminder(authorisation: Authorisation, *, people: list[User], subject: str, text: str) -> None:
    """A reminder (review overdue, expiry soon) to ``people``."""
    _send(authorisation, [person for person in people if person.is_active], subject, text)
