"""Helpers for the authorisation tests: an application payload, a clock to stand at, and
authorisations walked to a given state through the services (so their audit events are
real)."""

from contextlib import contextmanager
from datetime import datetime
from unittest import mock

import pytest
from django.utils import timezone

from audit.services import AuditContext
from authorisations import services
from authorisations.models import Authorisation


def application_payload(case, subjects, **overrides):
    payload = {
        "type": "non_ripa",
        "case": case.pk,
        "title": "Locating M",
        "subjects": [subject.pk for subject in subjects],
        "platforms": ["instagram"],
        "purpose": "To find where M is living so that the court papers can be served.",
        "information_sought": "The town M now lives in.",
        "necessity": "M has left the last known address and no one will give a new one.",
        "proportionality": "Viewing is limited to public posts over four weeks.",
        "alternatives_considered": "Letters to the last address; calls to relatives.",
        "collateral_intrusion": "Friends' comments may be seen; nothing about them is recorded.",
        "confidential_information_likely": False,
    }
    payload.update(overrides)
    return payload


RIPA_DS = {
    "type": "directed_surveillance",
    "crime_purpose": True,
    "offence": "Child cruelty (Children and Young Persons Act 1933, s.1)",
    "offence_max_sentence_months": 120,
}


@contextmanager
def clock(moment: datetime):
    """Stand at ``moment``: every ``timezone.now()`` (services, audit, tokens) answers it."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def as_user(user) -> AuditContext:
    return AuditContext(actor=user, via="api")


GRANT = {"officer_grade": "Head of Service", "statement": "Necessary and proportionate.", "limits": "Public posts only"}
CANCELLATION = {
    "reason": "M has been found.",
    "information_obtained": "M's town of residence.",
    "material_direction": "Keep the note on the case file; destroy the screenshots.",
}


@pytest.fixture
def walk(alice, olivia, north_case, jane, jane_profile):
    """``walk(to, type=..., by=officer, **application)``: alice applies for jane's
    instagram on north_case and olivia (or ``by``) takes it to ``to`` (draft, submitted,
    refused, awaiting_judicial_approval, in_force), all at the current (possibly patched)
    time; a RIPA authorisation in force was approved by the magistrate at that time."""

    def make(to: str = "in_force", *, type: str = "non_ripa", expires_at=None, by=None, **fields) -> Authorisation:
        officer = by or olivia
        crime = {k: v for k, v in RIPA_DS.items() if k != "type"}
        extra = {**(crime if type in ("directed_surveillance", "chis") else {}), **fields}
        application = services.Application(
            type=type,
            subject_ids=[jane.pk],
            platforms=extra.pop("platforms", ["instagram"]),
            profile_ids=extra.pop("profile_ids", []),
            title="Locating J",
            purpose="Find J",
            information_sought="Where J lives",
            necessity="No other way",
            proportionality="Least intrusive",
            alternatives_considered="Letters",
            collateral_intrusion="None recorded",
            **extra,
        )
        authorisation = services.authorisation_create(ctx=as_user(alice), case=north_case, application=application)
        if to == "draft":
            return authorisation
        services.authorisation_submit(ctx=as_user(alice), authorisation=authorisation)
        if to == "submitted":
            return Authorisation.objects.get(pk=authorisation.pk)
        if to == "refused":
            services.authorisation_refuse(ctx=as_user(officer), authorisation=authorisation, **_refusal())
            return Authorisation.objects.get(pk=authorisation.pk)
        now = timezone.now()
        if type == "non_ripa" and expires_at is None:
            expires_at = now + timezone.timedelta(days=60)
        services.authorisation_grant(
            ctx=as_user(officer),
            authorisation=authorisation,
            review_interval_days=28,
            expires_at=expires_at,
            **GRANT,
        )
        if to != "in_force" or type == "non_ripa":
            return Authorisation.objects.get(pk=authorisation.pk)
        services.authorisation_record_judicial_approval(
            ctx=as_user(officer),
            authorisation=authorisation,
            court="Leeds Magistrates' Court",
            justice="J. Smith JP",
            decided_at=now,
            outcome="approved",
        )
        return Authorisation.objects.get(pk=authorisation.pk)

    return make


def _refusal():
    return {"officer_grade": "Head of Service", "statement": "Not proportionate: ask the family first."}
