"""Logging a viewing reads through plain statements (cases/selectors.py,
authorisations/selectors.py); each must find what the queryset it stands for finds."""

import dataclasses
import itertools
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Role
from audit.services import AuditContext
from authorisations.models import Authorisation
from authorisations.selectors import AuthorisationCoverage
from cases.models import Case, Consent, Profile, Viewing
from cases.selectors import viewing_context, viewing_scope, viewing_targets
from cases.services import ViewingDetails, viewing_log
from detection.models import DetectionPolicy
from evidence_service.api.errors import NotFound
from tests.factories import (
    AuthorisationFactory,
    CaseFactory,
    CaseSubjectFactory,
    ConsentFactory,
    ProfileFactory,
    TeamFactory,
    UserFactory,
)

NOW = timezone.now()


@pytest.fixture
def world(alice, bob, carol, olivia, north_case, south_case, jane, jane_profile):
    """Two teams' cases; jane on north's case, tom on south's, kim on both; a practitioner
    in both teams; a case of a third team nobody here works in."""
    both = UserFactory(username="pat", teams=[north_case.team, south_case.team])
    kim = CaseSubjectFactory(case=north_case).subject
    CaseSubjectFactory(case=south_case, subject=kim)
    tom = CaseSubjectFactory(case=south_case).subject
    elsewhere = CaseFactory(team=TeamFactory(name="West"))
    lee = CaseSubjectFactory(case=elsewhere).subject
    for person in (kim, tom, lee):
        ProfileFactory(subject=person)
    ProfileFactory(subject=jane, platform="facebook", handle="jane", url="https://www.facebook.com/jane")
    return {"users": [alice, bob, carol, olivia, both], "cases": [north_case, south_case, elsewhere]}


def test_the_case_and_profile_found_are_those_a_practitioner_may_see(world):
    for user, case, profile in itertools.product(world["users"], world["cases"], Profile.objects.all()):
        practitioner = user.role == Role.PRACTITIONER  # only practitioners log viewings
        sees_case = practitioner and Case.objects.visible_to(user).filter(pk=case.pk).exists()
        sees_profile = Profile.objects.visible_to(user).filter(pk=profile.pk).exists()
        if not sees_case:
            with pytest.raises(NotFound) as refusal:
                viewing_targets(user=user, case_id=case.pk, profile_id=profile.pk)
            assert set(refusal.value.fields) == {"case"}
        elif not sees_profile:
            with pytest.raises(NotFound) as refusal:
                viewing_targets(user=user, case_id=case.pk, profile_id=profile.pk)
            assert set(refusal.value.fields) == {"profile"}
        else:
            found_case, found_profile = viewing_targets(user=user, case_id=case.pk, profile_id=profile.pk)
            assert (found_case, found_profile) == (case, profile)
            assert (found_case.reference, found_case.team_id, found_case.created_at) == (
                case.reference,
                case.team_id,
                Case.objects.get(pk=case.pk).created_at,
            )
            assert (found_profile.subject_id, found_profile.handle) == (profile.subject_id, profile.handle)


def test_the_context_says_who_works_on_the_case_and_who_is_linked_to_it(world):
    policy = DetectionPolicy.objects.order_by("-version").first()
    people = [profile.subject for profile in Profile.objects.select_related("subject").order_by("id")]
    ConsentFactory(subject=people[1])
    AuthorisationFactory(case=world["cases"][1], subjects=[people[2]])
    for user, case, profile in itertools.product(world["users"], world["cases"], Profile.objects.all()):
        context = viewing_context(
            actor=user, case=case, subject_id=profile.subject_id, platform=profile.platform, at=NOW
        )
        assert context.has_consents == Consent.objects.filter(subject_id=profile.subject_id).exists()
        assert context.has_authorisations == Authorisation.objects.filter(subjects=profile.subject_id).exists()
        works = user.role == Role.PRACTITIONER and user.teams.filter(pk=case.team_id).exists()
        assert context.works_on_case == works
        assert context.linked_to_case == case.subject_links.filter(subject_id=profile.subject_id).exists()
        assert (context.policy.pk, context.policy.version, context.policy.rules) == (
            policy.pk,
            policy.version,
            policy.rules,
        )


def test_the_scope_read_in_one_statement_is_the_targets_and_the_context(world, django_assert_num_queries):
    people = [profile.subject for profile in Profile.objects.select_related("subject").order_by("id")]
    # Overlapping consents: the newest in effect for the platform is the one found.
    ConsentFactory(subject=people[1], scope=["all"], granted_at=NOW - timedelta(days=5))
    ConsentFactory(subject=people[1], scope=["instagram"], granted_at=NOW - timedelta(days=4))
    ConsentFactory(subject=people[1], scope=["facebook"], granted_at=NOW - timedelta(days=2))
    ConsentFactory(subject=people[0], scope=["all"], granted_at=NOW - timedelta(days=9), expires_at=NOW)
    AuthorisationFactory(case=world["cases"][1], subjects=[people[2]])
    moments = [NOW - timedelta(days=3), NOW + timedelta(hours=1)]
    for user, case, profile, at in itertools.product(world["users"], world["cases"], Profile.objects.all(), moments):
        try:
            expected = viewing_targets(user=user, case_id=case.pk, profile_id=profile.pk)
        except NotFound as refusal:
            with pytest.raises(NotFound) as same:
                viewing_scope(user=user, case_id=case.pk, profile_id=profile.pk, at=at)
            assert same.value.fields == refusal.fields
            continue
        context = viewing_context(
            actor=user, case=case, subject_id=profile.subject_id, platform=profile.platform, at=at
        )
        with django_assert_num_queries(1):
            found_case, found_profile, found = viewing_scope(user=user, case_id=case.pk, profile_id=profile.pk, at=at)
        assert (found_case, found_profile) == expected
        assert (found_case.reference, found_profile.handle) == (expected[0].reference, expected[1].handle)
        assert found == context, (user, case, profile, at)


def test_the_scope_is_read_and_used_only_inside_the_viewings_own_transaction(
    alice, north_case, jane_profile, monkeypatch
):
    # The person's lock lasts as long as the transaction that took it: outside one, no time.
    with monkeypatch.context() as outside:
        outside.setattr(connection, "in_atomic_block", False)
        with pytest.raises(RuntimeError):
            viewing_scope(user=alice, case_id=north_case.pk, profile_id=jane_profile.pk, at=NOW)
        with pytest.raises(RuntimeError):
            viewing_context(
                actor=alice, case=north_case, subject_id=jane_profile.subject_id, platform="instagram", at=NOW
            )
    case, profile, context = viewing_scope(user=alice, case_id=north_case.pk, profile_id=jane_profile.pk, at=NOW)
    details = ViewingDetails(
        case=case,
        profile=profile,
        purpose="locate_person",
        justification="Checking the address",
        access_method="council_overt_account",
        interaction="none",
        information_recorded="",
        third_party_information="",
    )
    other_moment = dataclasses.replace(details, viewed_at=NOW - timedelta(days=1))
    for stale, given in ((dataclasses.replace(context, transaction=0), details), (context, other_moment)):
        # Read in another transaction (its lock gone), or for another moment.
        with pytest.raises(ValueError), transaction.atomic():
            viewing_log(ctx=AuditContext(actor=alice), details=given, context=stale)
    assert not Viewing.objects.exists()
    viewing = viewing_log(ctx=AuditContext(actor=alice), details=details, context=context)
    assert list(Viewing.objects.values_list("pk", "viewed_at")) == [(viewing.pk, NOW)]


def test_the_consent_found_is_the_newest_in_effect_for_the_platform(jane, alice, north_case):
    day = timedelta(days=1)
    ConsentFactory(subject=jane, scope=["instagram"], granted_at=NOW - 10 * day, expires_at=NOW - 5 * day)
    ConsentFactory(subject=jane, scope=["facebook"], granted_at=NOW - 4 * day)
    ConsentFactory(subject=jane, scope=["all"], granted_at=NOW - 8 * day, withdrawn_at=NOW - 2 * day)
    ConsentFactory(subject=jane, scope=["instagram", "tiktok"], granted_at=NOW - 3 * day, expires_at=NOW + day)
    for offset, platform in itertools.product(range(-12, 3), ["instagram", "facebook", "tiktok", "x"]):
        at = NOW + offset * day + timedelta(hours=1)
        expected = next(
            (
                consent
                for consent in Consent.objects.filter(subject=jane)
                .in_effect_at(at, logged_at=timezone.now())
                .order_by("-granted_at", "-id")
                if consent.covers_platform(platform)
            ),
            None,
        )
        found = viewing_context(actor=alice, case=north_case, subject_id=jane.pk, platform=platform, at=at).consent
        assert found == expected, (offset, platform)
        # A look first logged before the consents were recorded is covered by none of them.
        before = min(consent.recorded_at for consent in Consent.objects.filter(subject=jane)) - timedelta(seconds=1)
        assert (
            viewing_context(
                actor=alice, case=north_case, subject_id=jane.pk, platform=platform, at=at, logged_at=before
            ).consent
            is None
        )
        if found is not None:
            assert (found.scope, found.granted_at, found.expires_at) == (
                expected.scope,
                expected.granted_at,
                expected.expires_at,
            )


def test_the_authorisations_read_for_coverage_are_those_in_force_in_the_period(jane, jane_profile, north_case):
    day = timedelta(days=1)
    shapes = [
        {"in_force_at": NOW - 20 * day, "expires_at": NOW - 10 * day},
        {"in_force_at": NOW - 15 * day, "expires_at": NOW + 20 * day, "cancelled_at": NOW - 3 * day},
        {"in_force_at": NOW - 5 * day, "expires_at": NOW + 5 * day},
        {"in_force_at": NOW + 2 * day, "expires_at": NOW + 9 * day},
        {"in_force_at": None, "expires_at": None},
    ]
    made = [
        AuthorisationFactory(case=north_case, subjects=[jane], status="in_force", platforms=[], **shape)
        for shape in shapes
    ]
    made[2].profiles.add(jane_profile)
    other_case = CaseFactory(team=north_case.team)
    AuthorisationFactory(
        case=other_case, subjects=[jane], status="in_force", in_force_at=NOW - day, expires_at=NOW + day
    )
    for start, length in itertools.product(range(-25, 12, 4), [0, 1, 4, 30]):
        since, until = NOW + start * day, NOW + (start + length) * day
        moments = [since + (until - since) * i / 20 for i in range(21)]
        for case_id in (None, north_case.pk):
            people = Authorisation.objects.filter(subjects=jane)
            if case_id is not None:
                people = people.filter(case_id=case_id)
            in_period = {a.pk for m in moments for a in people.in_force_at(m)}
            coverage = AuthorisationCoverage.load(subject_id=jane.pk, since=since, until=until, case_id=case_id)
            assert {a.pk for a in coverage.authorisations} == in_period, (start, length, case_id)
            for at in moments:
                expected = next(
                    (
                        a
                        for a in people.in_force_at(at).order_by("-in_force_at", "-id")
                        if "instagram" in a.platforms or a.profiles.filter(pk=jane_profile.pk).exists()
                    ),
                    None,
                )
                assert coverage.covering(profile_id=jane_profile.pk, platform="instagram", at=at) == expected


def test_coverage_starts_on_the_moment_in_force_and_stops_on_expiry_or_cancellation(jane, north_case):
    day = timedelta(days=1)
    expired = AuthorisationFactory(
        case=north_case, subjects=[jane], status="in_force", in_force_at=NOW - 9 * day, expires_at=NOW - 4 * day
    )
    cancelled = AuthorisationFactory(
        case=north_case,
        subjects=[jane],
        status="cancelled",
        in_force_at=NOW - 3 * day,
        expires_at=NOW + 9 * day,
        cancelled_at=NOW - day,
    )

    def found(at):
        return {a.pk for a in AuthorisationCoverage.load(subject_id=jane.pk, since=at, until=at).authorisations}

    assert found(expired.in_force_at) == {expired.pk}
    assert found(expired.in_force_at - timedelta(microseconds=1)) == set()
    assert found(expired.expires_at - timedelta(microseconds=1)) == {expired.pk}
    assert found(expired.expires_at) == set()
    assert found(cancelled.cancelled_at - timedelta(microseconds=1)) == {cancelled.pk}
    assert found(cancelled.cancelled_at) == set()
