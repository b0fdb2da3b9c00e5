from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from authorisations.models import Authorisation, AuthorisationRenewal, AuthorisationReview
from authorisations.selectors import authorisation_covering
from authorisations.services import authorisation_expire
from tests.authorisations.conftest import CANCELLATION, as_user, clock

URL = "/api/v1/authorisations/"
LONDON = ZoneInfo("Europe/London")
APPROVED = datetime(2026, 1, 10, 14, 0, tzinfo=LONDON)
EXPIRES = datetime(2026, 4, 10, 0, 0, tzinfo=LONDON)


@pytest.fixture
def ds(walk):
    with clock(APPROVED):
        return walk("in_force", type="directed_surveillance")


def cancellation(told=None, **overrides):
    payload = {**CANCELLATION, "staff_told_to_stop_at": (told or timezone.now() - timedelta(minutes=5)).isoformat()}
    payload.update(overrides)
    return payload


def covered(profile, at):
    return authorisation_covering(
        subject_id=profile.subject_id, profile_id=profile.pk, platform=profile.platform, at=at
    )


# --- Reviews ---------------------------------------------------------------------------------------


def test_a_review_that_continues_sets_the_next_review(ds, sam, client_for):
    at = APPROVED + timedelta(days=28)
    next_review = at + timedelta(days=14)
    with clock(at):
        response = client_for(sam).post(
            f"{URL}{ds.pk}/reviews/",
            {
                "findings": "Still necessary: M not yet found.",
                "outcome": "continue",
                "next_review_due": next_review.isoformat(),
            },
            format="json",
        )
    assert response.status_code == 201
    assert response.json()["reviews"][0]["outcome"] == "continue"
    review = AuthorisationReview.objects.get()
    assert (review.reviewed_by, review.reviewed_at, review.next_review_due) == (sam, at, next_review)
    ds.refresh_from_db()
    assert ds.next_review_due == next_review and ds.status == "in_force"
    event = AuditEvent.objects.get(action="authorisation.review")
    assert (event.actor_username, event.payload["outcome"]) == ("sam", "continue")


def test_the_next_review_defaults_to_one_interval_on(ds, olivia, client_for):
    at = APPROVED + timedelta(days=20)
    with clock(at):
        response = client_for(olivia).post(
            f"{URL}{ds.pk}/reviews/", {"findings": "Fine.", "outcome": "continue"}, format="json"
        )
    assert response.status_code == 201
    assert AuthorisationReview.objects.get().next_review_due == at + timedelta(days=28)


def test_the_next_review_must_be_in_the_coming_year(ds, olivia, client_for):
    at = APPROVED + timedelta(days=20)
    with clock(at):
        client = client_for(olivia)
        for when in (at - timedelta(minutes=1), at + timedelta(days=400)):
            response = client.post(
                f"{URL}{ds.pk}/reviews/",
                {"findings": "Fine.", "outcome": "continue", "next_review_due": when.isoformat()},
                format="json",
            )
            assert response.status_code == 400 and list(response.json()["fields"]) == ["next_review_due"]
    assert not AuthorisationReview.objects.exists()


def test_a_review_that_cancels_cancels_in_the_same_transaction(ds, olivia, client_for, jane_profile):
    at = APPROVED + timedelta(days=20)
    with clock(at):
        response = client_for(olivia).post(
            f"{URL}{ds.pk}/reviews/",
            {"findings": "M found.", "outcome": "cancel", "cancellation": cancellation(at - timedelta(hours=1))},
            format="json",
        )
    assert response.status_code == 201 and response.json()["status"] == "cancelled"
    ds.refresh_from_db()
    assert (ds.status, ds.cancelled_at, ds.cancelled_by) == ("cancelled", at, olivia)
    assert AuditEvent.objects.filter(action__in=["authorisation.review", "authorisation.cancel"]).count() == 2
    assert covered(jane_profile, at) is None


def test_a_review_that_cancels_needs_the_cancellations_details(ds, olivia, client_for):
    with clock(APPROVED + timedelta(days=20)):
        client = client_for(olivia)
        missing = client.post(f"{URL}{ds.pk}/reviews/", {"findings": "Done.", "outcome": "cancel"}, format="json")
        blank = client.post(
            f"{URL}{ds.pk}/reviews/",
            {"findings": "Done.", "outcome": "cancel", "cancellation": cancellation(reason="  ")},
            format="json",
        )
    assert missing.status_code == 400 and list(missing.json()["fields"]) == ["cancellation"]
    assert blank.status_code == 400 and list(blank.json()["fields"]) == ["cancellation.reason"]
    assert not AuthorisationReview.objects.exists()
    assert Authorisation.objects.get(pk=ds.pk).status == "in_force"


def test_only_an_authorisation_in_force_is_reviewed(walk, olivia, client_for):
    authorisation = walk("awaiting_judicial_approval", type="directed_surveillance")
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/reviews/", {"findings": "x", "outcome": "continue"}, format="json"
    )
    assert response.status_code == 409 and response.json()["current_status"] == "awaiting_judicial_approval"


def test_a_practitioner_cannot_review(ds, alice, carol, client_for):
    for who in (alice, carol):
        response = client_for(who).post(
            f"{URL}{ds.pk}/reviews/", {"findings": "x", "outcome": "continue"}, format="json"
        )
        assert response.status_code == 403
    assert not AuthorisationReview.objects.exists()


# --- Renewals --------------------------------------------------------------------------------------


def test_a_ripa_renewal_awaits_the_magistrate_while_the_grant_stays_in_force(ds, olivia, client_for, jane_profile):
    renewed_at = EXPIRES - timedelta(days=10)
    with clock(renewed_at):
        response = client_for(olivia).post(
            f"{URL}{ds.pk}/renew/", {"officer_grade": "Head of Service", "statement": "Still necessary."}, format="json"
        )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "in_force" and body["renewals"][0]["status"] == "awaiting_judicial_approval"
    renewal = AuthorisationRenewal.objects.get()
    new_expiry = datetime(2026, 7, 10, 0, 0, tzinfo=LONDON)  # three more months from the old expiry
    assert (renewal.previous_expires_at, renewal.new_expires_at) == (EXPIRES, new_expiry)
    ds.refresh_from_db()
    assert ds.expires_at == EXPIRES  # unchanged until the magistrate approves
    assert covered(jane_profile, EXPIRES) is None
    assert AuditEvent.objects.get(action="authorisation.renew").payload["new_expires_at"] == new_expiry.isoformat()

    with clock(renewed_at + timedelta(days=2)):
        second = client_for(olivia).post(
            f"{URL}{ds.pk}/renew/", {"officer_grade": "x", "statement": "again"}, format="json"
        )
        assert second.status_code == 409 and second.json()["code"] == "renewal_pending"
        approved = client_for(olivia).post(
            f"{URL}{ds.pk}/judicial-approval/",
            {
                "court": "Leeds",
                "justice": "A JP",
                "decided_at": (renewed_at + timedelta(days=1)).isoformat(),
                "outcome": "approved",
            },
            format="json",
        )
    assert approved.status_code == 201
    assert approved.json()["renewals"][0]["judicial_approval"]["outcome"] == "approved"
    ds.refresh_from_db()
    assert ds.expires_at == new_expiry and ds.status == "in_force"
    assert covered(jane_profile, EXPIRES) == ds
    assert covered(jane_profile, new_expiry) is None


def test_a_renewal_refused_by_the_magistrate_leaves_the_old_expiry(ds, olivia, client_for):
    with clock(EXPIRES - timedelta(days=5)):
        client_for(olivia).post(f"{URL}{ds.pk}/renew/", {"officer_grade": "x", "statement": "y"}, format="json")
        response = client_for(olivia).post(
            f"{URL}{ds.pk}/judicial-approval/",
            {"court": "Leeds", "justice": "A JP", "decided_at": timezone.now().isoformat(), "outcome": "refused"},
            format="json",
        )
    assert response.status_code == 201
    ds.refresh_from_db()
    assert (ds.status, ds.expires_at) == ("in_force", EXPIRES)
    assert AuthorisationRenewal.objects.get().status == "refused"


def test_a_renewal_approved_before_expiry_but_entered_after_the_scheduler_expired_it_reinstates_it(
    ds, olivia, client_for
):
    with clock(EXPIRES - timedelta(days=5)):
        client_for(olivia).post(f"{URL}{ds.pk}/renew/", {"officer_grade": "x", "statement": "y"}, format="json")
    authorisation_expire(ctx=as_user(None), authorisation=ds, at=EXPIRES + timedelta(hours=1))
    with clock(EXPIRES + timedelta(days=1)):
        late = {"court": "Leeds", "justice": "A JP", "outcome": "approved"}
        too_late = client_for(olivia).post(
            f"{URL}{ds.pk}/judicial-approval/", {**late, "decided_at": EXPIRES.isoformat()}, format="json"
        )
        assert too_late.status_code == 400 and list(too_late.json()["fields"]) == ["decided_at"]
        response = client_for(olivia).post(
            f"{URL}{ds.pk}/judicial-approval/",
            {**late, "decided_at": (EXPIRES - timedelta(days=2)).isoformat()},
            format="json",
        )
    assert response.status_code == 201 and response.json()["status"] == "in_force"
    assert AuditEvent.objects.filter(action="authorisation.judicial_approval").last().payload["reinstated"] is True


def test_a_non_ripa_renewal_takes_effect_at_once_up_to_the_maximum(walk, olivia, client_for):
    authorisation = walk("in_force")
    old = authorisation.expires_at
    client = client_for(olivia)
    too_long = client.post(
        f"{URL}{authorisation.pk}/renew/",
        {"officer_grade": "x", "statement": "y", "expires_at": (old + timedelta(days=100)).isoformat()},
        format="json",
    )
    assert too_long.status_code == 400 and list(too_long.json()["fields"]) == ["expires_at"]
    response = client.post(
        f"{URL}{authorisation.pk}/renew/",
        {"officer_grade": "x", "statement": "y", "expires_at": (old + timedelta(days=30)).isoformat()},
        format="json",
    )
    assert response.status_code == 201 and response.json()["renewals"][0]["status"] == "approved"
    authorisation.refresh_from_db()
    assert authorisation.expires_at == old + timedelta(days=30)


def test_an_expired_authorisation_cannot_be_renewed_even_before_the_scheduler_runs(ds, olivia, client_for):
    with clock(EXPIRES + timedelta(minutes=1)):
        response = client_for(olivia).post(
            f"{URL}{ds.pk}/renew/", {"officer_grade": "x", "statement": "y"}, format="json"
        )
    assert response.status_code == 409
    assert (response.json()["code"], response.json()["current_status"]) == ("invalid_state", "expired")
    assert not AuthorisationRenewal.objects.exists()


def test_a_renewal_needing_the_sro_is_refused_to_a_ripa_officer(walk, olivia, sam, client_for):
    authorisation = walk("in_force", confidential_information_likely=True, by=sam)
    expires = (authorisation.expires_at + timedelta(days=10)).isoformat()
    payload = {"officer_grade": "x", "statement": "y", "expires_at": expires}
    assert client_for(olivia).post(f"{URL}{authorisation.pk}/renew/", payload, format="json").status_code == 403
    assert client_for(sam).post(f"{URL}{authorisation.pk}/renew/", payload, format="json").status_code == 201


# --- Cancellation ----------------------------------------------------------------------------------


def test_cancelling_records_the_details_and_a_second_cancel_answers_409(walk, olivia, client_for, jane_profile):
    with clock(timezone.now() - timedelta(days=1)):
        authorisation = walk("in_force")
    client = client_for(olivia)
    told = timezone.now() - timedelta(minutes=30)
    response = client.post(f"{URL}{authorisation.pk}/cancel/", cancellation(told), format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["in_force_now"]) == ("cancelled", False)
    authorisation.refresh_from_db()
    assert authorisation.staff_told_to_stop_at == told
    assert authorisation.material_direction == CANCELLATION["material_direction"]
    assert covered(jane_profile, timezone.now()) is None
    event = AuditEvent.objects.get(action="authorisation.cancel")
    assert event.payload["reason"] == "M has been found."
    again = client.post(f"{URL}{authorisation.pk}/cancel/", cancellation(told), format="json")
    assert again.status_code == 409 and again.json()["current_status"] == "cancelled"


def test_cancelling_withdraws_a_renewal_awaiting_the_magistrate(ds, olivia, client_for):
    with clock(EXPIRES - timedelta(days=5)):
        client_for(olivia).post(f"{URL}{ds.pk}/renew/", {"officer_grade": "x", "statement": "y"}, format="json")
        response = client_for(olivia).post(f"{URL}{ds.pk}/cancel/", cancellation(), format="json")
    assert response.status_code == 200
    assert AuthorisationRenewal.objects.get().status == "withdrawn"


def test_an_authorisation_awaiting_the_magistrate_can_be_cancelled(walk, olivia, client_for):
    with clock(timezone.now() - timedelta(days=1)):
        authorisation = walk("awaiting_judicial_approval", type="directed_surveillance")
    response = client_for(olivia).post(f"{URL}{authorisation.pk}/cancel/", cancellation(), format="json")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"


def test_staff_must_be_told_to_stop_before_the_cancellation_is_recorded(walk, olivia, client_for):
    authorisation = walk("in_force")
    response = client_for(olivia).post(
        f"{URL}{authorisation.pk}/cancel/", cancellation(timezone.now() + timedelta(hours=1)), format="json"
    )
    assert response.status_code == 400 and list(response.json()["fields"]) == ["staff_told_to_stop_at"]
    before_grant = client_for(olivia).post(
        f"{URL}{authorisation.pk}/cancel/", cancellation(authorisation.decided_at - timedelta(hours=1)), format="json"
    )
    assert before_grant.status_code == 400 and list(before_grant.json()["fields"]) == ["staff_told_to_stop_at"]
    missing = client_for(olivia).post(f"{URL}{authorisation.pk}/cancel/", {"reason": "x"}, format="json")
    assert missing.status_code == 400
    assert set(missing.json()["fields"]) == {"information_obtained", "material_direction", "staff_told_to_stop_at"}
    assert Authorisation.objects.get(pk=authorisation.pk).status == "in_force"


@pytest.mark.parametrize("who", ["alice", "audrey", "adam"])
def test_someone_who_is_not_an_authorising_officer_cannot_cancel(who, request, walk, client_for):
    authorisation = walk("in_force")
    response = client_for(request.getfixturevalue(who)).post(
        f"{URL}{authorisation.pk}/cancel/", cancellation(), format="json"
    )
    assert response.status_code == 403
    assert Authorisation.objects.get(pk=authorisation.pk).status == "in_force"
    assert AuditEvent.objects.filter(action="request.denied", actor_username=who).exists()
    assert not AuditEvent.objects.filter(action="authorisation.cancel").exists()
