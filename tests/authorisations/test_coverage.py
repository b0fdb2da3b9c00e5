"""Whether a look at a profile was covered by an authorisation is a fact the service knows
at any instant, from the stored times and scope alone."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from audit.models import AuditEvent
from authorisations.selectors import authorisation_check_viewing, authorisation_covering
from authorisations.services import authorisation_cancel, authorisation_expire
from cases.models import Viewing
from tests.authorisations.conftest import CANCELLATION, as_user, clock
from tests.factories import CaseSubjectFactory, ProfileFactory

LONDON = ZoneInfo("Europe/London")
APPROVED = datetime(2026, 1, 10, 14, 0, tzinfo=LONDON)
EXPIRES = datetime(2026, 4, 10, 0, 0, tzinfo=LONDON)  # three months beginning with 10 January


@pytest.fixture
def ds(walk):
    """Directed surveillance of jane on instagram, approved by the magistrate at APPROVED."""
    with clock(APPROVED):
        return walk("in_force", type="directed_surveillance")


def covering(profile, at):
    return authorisation_covering(
        subject_id=profile.subject_id, profile_id=profile.pk, platform=profile.platform, at=at
    )


def check(authorisation, profile, at):
    return authorisation_check_viewing(
        authorisation=authorisation,
        subject_id=profile.subject_id,
        profile_id=profile.pk,
        platform=profile.platform,
        at=at,
    )


def test_it_covers_from_the_magistrates_approval_to_the_second_before_expiry(ds, jane_profile):
    assert ds.expires_at == EXPIRES
    assert covering(jane_profile, APPROVED - timedelta(seconds=1)) is None
    assert covering(jane_profile, APPROVED) == ds
    assert covering(jane_profile, EXPIRES - timedelta(seconds=1)) == ds
    assert covering(jane_profile, EXPIRES) is None
    assert check(ds, jane_profile, EXPIRES - timedelta(seconds=1)) == []


def test_a_minute_after_expiry_it_no_longer_covers_though_the_scheduler_has_not_run(ds, jane_profile):
    a_minute_after = EXPIRES + timedelta(minutes=1)
    ds.refresh_from_db()
    assert ds.status == "in_force"  # nothing has recorded the expiry yet
    assert covering(jane_profile, a_minute_after) is None
    assert check(ds, jane_profile, a_minute_after) == [f"Authorisation {ds.urn} expired at 2026-04-10 00:00:00 BST."]


def test_recording_the_expiry_changes_nothing_about_coverage(ds, jane_profile):
    authorisation_expire(ctx=as_user(None), authorisation=ds, at=EXPIRES + timedelta(hours=3))
    assert covering(jane_profile, EXPIRES - timedelta(seconds=1)) == ds
    assert covering(jane_profile, EXPIRES) is None


def test_a_cancellation_stops_coverage_from_its_moment(ds, jane_profile, sam):
    cancelled = datetime(2026, 2, 1, 9, 0, tzinfo=LONDON)
    with clock(cancelled):
        authorisation_cancel(
            ctx=as_user(sam), authorisation=ds, cancellation=_cancellation(cancelled - timedelta(minutes=5))
        )
    assert covering(jane_profile, cancelled - timedelta(seconds=1)) == ds
    assert covering(jane_profile, cancelled) is None
    ds.refresh_from_db()
    assert "cancelled at 2026-02-01 09:00:00 GMT" in check(ds, jane_profile, cancelled)[0]


def test_another_person_or_platform_is_outside_the_scope(ds, jane, north_case, jane_profile):
    jane_facebook = ProfileFactory(
        subject=jane, platform="facebook", handle="jane.f", url="https://facebook.com/jane.f"
    )
    brother = CaseSubjectFactory(case=north_case).subject
    brothers_instagram = ProfileFactory(subject=brother)
    at = APPROVED + timedelta(days=1)
    assert covering(jane_facebook, at) is None
    assert check(ds, jane_facebook, at) == [
        "This facebook profile is outside the authorisation's profiles and platforms."
    ]
    assert covering(brothers_instagram, at) is None
    assert check(ds, brothers_instagram, at) == ["The person viewed is not a subject of this authorisation."]


def test_a_profile_named_in_scope_is_covered_on_any_platform(walk, jane):
    facebook = ProfileFactory(subject=jane, platform="facebook", handle="jane.f", url="https://facebook.com/jane.f")
    with clock(APPROVED):
        authorisation = walk("in_force", platforms=[], profile_ids=[facebook.pk])
    assert covering(facebook, APPROVED + timedelta(days=1)) == authorisation


def test_an_application_never_in_force_never_covers(walk, jane_profile):
    with clock(APPROVED):
        awaiting = walk("awaiting_judicial_approval", type="directed_surveillance")
    assert covering(jane_profile, APPROVED + timedelta(days=1)) is None
    assert check(awaiting, jane_profile, APPROVED) == [
        f"Authorisation {awaiting.urn} has not come into force (status: awaiting_judicial_approval)."
    ]


def test_coverage_can_be_limited_to_the_case(ds, jane_profile, south_case):
    at = APPROVED + timedelta(days=1)
    assert (
        authorisation_covering(
            subject_id=jane_profile.subject_id,
            profile_id=jane_profile.pk,
            platform="instagram",
            at=at,
            case_id=south_case.pk,
        )
        is None
    )


# --- Viewings that cite an authorisation --------------------------------------------------------------


def _cancellation(told):
    from authorisations.services import Cancellation

    return Cancellation(staff_told_to_stop_at=told, **CANCELLATION)


def viewing_payload(case, profile, **overrides):
    payload = {
        "case": case.pk,
        "profile": profile.pk,
        "purpose": "evidence_gathering",
        "justification": "Under authorisation.",
        "access_method": "council_overt_account",
        "interaction": "none",
        "information_recorded": "Town",
        "third_party_information": "",
    }
    payload.update(overrides)
    return payload


def test_a_viewing_within_the_authorisation_is_shown_as_covered(ds, alice, north_case, jane_profile, client_for):
    with clock(APPROVED + timedelta(days=3)):
        response = client_for(alice).post(
            "/api/v1/viewings/", viewing_payload(north_case, jane_profile, authorisation=ds.pk), format="json"
        )
    assert response.status_code == 201
    assert response.json()["authorisation_check"] == {"covers": True, "problems": []}
    assert response.json()["authorisation"]["expires_at"] is not None
    event = AuditEvent.objects.get(action="viewing.create")
    assert (event.payload["authorisation_covers"], event.payload["authorisation_problems"]) == (True, [])


def test_a_viewing_a_minute_after_expiry_is_recorded_but_shown_as_not_covered(
    ds, alice, north_case, jane_profile, client_for
):
    a_minute_after = EXPIRES + timedelta(minutes=1)
    with clock(a_minute_after):
        response = client_for(alice).post(
            "/api/v1/viewings/", viewing_payload(north_case, jane_profile, authorisation=ds.pk), format="json"
        )
        read = client_for(alice).get(f"/api/v1/viewings/{response.json()['id']}/")
    assert response.status_code == 201  # never refused: the record must not be lost
    viewing = Viewing.objects.get()
    assert viewing.authorisation == ds
    problems = [f"Authorisation {ds.urn} expired at 2026-04-10 00:00:00 BST."]
    assert response.json()["authorisation_check"] == {"covers": False, "problems": problems}
    assert read.json()["authorisation_check"] == {"covers": False, "problems": problems}
    event = AuditEvent.objects.get(action="viewing.create")
    assert (event.payload["authorisation_covers"], event.payload["authorisation_problems"]) == (False, problems)


def test_a_viewing_without_an_authorisation_has_no_check(alice, north_case, jane_profile, client_for):
    response = client_for(alice).post("/api/v1/viewings/", viewing_payload(north_case, jane_profile), format="json")
    assert response.status_code == 201 and response.json()["authorisation_check"] is None
    assert AuditEvent.objects.get(action="viewing.create").payload["authorisation_covers"] is None


def test_another_team_cannot_cite_the_authorisation(ds, bob, south_case, jane_profile, client_for):
    CaseSubjectFactory(case=south_case, subject=jane_profile.subject, linked_by=bob)
    with clock(APPROVED + timedelta(days=3)):
        response = client_for(bob).post(
            "/api/v1/viewings/", viewing_payload(south_case, jane_profile, authorisation=ds.pk), format="json"
        )
    assert response.status_code == 404 and "authorisation" in response.json()["fields"]
    assert not Viewing.objects.exists()
    assert AuditEvent.objects.filter(action="request.denied", actor_username="bob").exists()
