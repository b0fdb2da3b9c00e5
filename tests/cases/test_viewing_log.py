from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from authorisations.models import Authorisation
from cases.models import Viewing
from tests.factories import CaseFactory, CaseSubjectFactory, ConsentFactory


def viewing_payload(case, profile, **overrides):
    payload = {
        "case": case.pk,
        "profile": profile.pk,
        "purpose": "safeguarding_assessment",
        "justification": "Concern raised by school about a party this weekend.",
        "access_method": "logged_out_public",
        "interaction": "none",
        "information_recorded": "",
        "third_party_information": "",
    }
    payload.update(overrides)
    return payload


@pytest.fixture
def log(client_for):
    def post(user, case, profile, **overrides):
        return client_for(user).post("/api/v1/viewings/", viewing_payload(case, profile, **overrides), format="json")

    return post


def test_logging_a_viewing_records_it_with_its_audit_event(alice, north_case, jane_profile, log):
    response = log(alice, north_case, jane_profile)
    assert response.status_code == 201
    body = response.json()
    viewing = Viewing.objects.get(pk=body["id"])
    assert (viewing.practitioner, viewing.case, viewing.subject_id) == (alice, north_case, jane_profile.subject_id)
    assert body["flags"] == [] and body["consent"] is None
    assert abs((viewing.viewed_at - timezone.now()).total_seconds()) < 5
    event = AuditEvent.objects.get(action="viewing.create")
    assert (event.target_id, event.case_id) == (str(viewing.pk), north_case.pk)
    assert [link.subject_id for link in event.subject_links.all()] == [jane_profile.subject_id]
    assert event.payload["justification"] == "Concern raised by school about a party this weekend."


def test_a_consent_in_scope_and_in_date_covers_the_viewing(alice, north_case, jane_profile, log):
    consent = ConsentFactory(subject=jane_profile.subject, scope=["instagram"])
    body = log(alice, north_case, jane_profile).json()
    assert body["consent"]["id"] == consent.pk
    assert Viewing.objects.get().consent == consent


def test_a_consent_withdrawn_yesterday_does_not_cover_a_look_today(alice, north_case, jane_profile, log):
    ConsentFactory(subject=jane_profile.subject, withdrawn_at=timezone.now() - timedelta(days=1))
    assert log(alice, north_case, jane_profile).json()["consent"] is None


def test_a_look_logged_after_the_withdrawal_is_not_covered_even_if_said_to_be_before_it(
    alice, north_case, jane_profile, log
):
    """Issue 18: when a look happened is the practitioner's word; a withdrawal takes effect
    for every look logged after it."""
    ConsentFactory(subject=jane_profile.subject, withdrawn_at=timezone.now() - timedelta(days=1))
    two_days_ago = (timezone.now() - timedelta(days=2)).isoformat()
    body = log(alice, north_case, jane_profile, viewed_at=two_days_ago).json()
    assert body["consent"] is None and body["covered_by"]["covered"] is False


def test_a_look_logged_before_the_withdrawal_stays_covered(alice, north_case, jane_profile, log, client_for):
    consent = ConsentFactory(subject=jane_profile.subject, scope=["instagram"])
    body = log(alice, north_case, jane_profile).json()
    assert body["consent"]["id"] == consent.pk and body["covered_by"]["covered"] is True
    withdrawn = client_for(alice).post(
        f"/api/v1/consents/{consent.pk}/withdraw/", {"reason": "Asked to stop"}, format="json"
    )
    assert withdrawn.status_code == 200
    assert client_for(alice).get(f"/api/v1/viewings/{body['id']}/").json()["covered_by"]["covered"] is True


@pytest.mark.parametrize(
    "consent_kwargs",
    [
        {"scope": ["facebook"]},
        {"expires_at": timedelta(seconds=-1)},  # expired a second before the look
        {"granted_at": timedelta(seconds=1)},  # granted a second after the look
    ],
    ids=["other-platform", "expired", "granted-later"],
)
def test_a_consent_out_of_scope_or_date_does_not_cover(alice, north_case, jane_profile, log, consent_kwargs):
    look = timezone.now() - timedelta(minutes=5)
    kwargs = {key: look + value if isinstance(value, timedelta) else value for key, value in consent_kwargs.items()}
    ConsentFactory(subject=jane_profile.subject, **kwargs)
    assert log(alice, north_case, jane_profile, viewed_at=look.isoformat()).json()["consent"] is None


def test_a_consent_expiring_after_the_look_covers_it(alice, north_case, jane_profile, log):
    look = timezone.now() - timedelta(minutes=5)
    ConsentFactory(subject=jane_profile.subject, expires_at=look + timedelta(seconds=1))
    assert log(alice, north_case, jane_profile, viewed_at=look.isoformat()).json()["consent"] is not None


def test_a_viewing_in_the_future_is_refused(alice, north_case, jane_profile, log):
    response = log(alice, north_case, jane_profile, viewed_at=(timezone.now() + timedelta(minutes=5)).isoformat())
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["viewed_at"]
    assert not Viewing.objects.exists()
    assert not AuditEvent.objects.filter(action="viewing.create").exists()


def test_a_viewing_more_than_seven_days_back_needs_a_late_entry_reason(alice, north_case, jane_profile, log):
    eight_days_ago = (timezone.now() - timedelta(days=8)).isoformat()
    refused = log(alice, north_case, jane_profile, viewed_at=eight_days_ago)
    assert refused.status_code == 400 and "late_entry_reason" in refused.json()["fields"]
    accepted = log(alice, north_case, jane_profile, viewed_at=eight_days_ago, late_entry_reason="Was on leave")
    assert accepted.status_code == 201
    assert Viewing.objects.get().late_entry_reason == "Was on leave"


def test_six_days_back_needs_no_reason(alice, north_case, jane_profile, log):
    six_days_ago = (timezone.now() - timedelta(days=6)).isoformat()
    assert log(alice, north_case, jane_profile, viewed_at=six_days_ago).status_code == 201


def test_the_profiles_owner_must_be_linked_to_the_case(alice, north, jane_profile, log):
    other_case = CaseFactory(reference="N-2", team=north, created_by=alice)
    response = log(alice, other_case, jane_profile)
    assert response.status_code == 400 and "profile" in response.json()["fields"]
    assert not Viewing.objects.exists()


def test_practitioner_cannot_log_against_another_teams_case(bob, south_case, jane_profile, log):
    CaseSubjectFactory(case=south_case, subject=jane_profile.subject, linked_by=bob)
    ok = log(bob, south_case, jane_profile)
    assert ok.status_code == 201  # same person, own team's case: fine
    other = CaseFactory(reference="N-9", team=jane_profile.subject.case_links.first().case.team)
    response = log(bob, other, jane_profile)
    assert response.status_code == 404 and "case" in response.json()["fields"]
    assert Viewing.objects.count() == 1


def test_purpose_other_needs_detail(alice, north_case, jane_profile, log):
    response = log(alice, north_case, jane_profile, purpose="other")
    assert response.status_code == 400 and "purpose_detail" in response.json()["fields"]


def test_a_bad_choice_and_a_missing_justification_are_named(alice, north_case, jane_profile, client_for):
    payload = viewing_payload(north_case, jane_profile, access_method="hacked")
    del payload["justification"]
    response = client_for(alice).post("/api/v1/viewings/", payload, format="json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"access_method", "justification"}


def test_an_external_authority_needs_kind_and_reference(alice, north_case, jane_profile, log):
    refused = log(alice, north_case, jane_profile, external_authority={"kind": "court_order"})
    assert refused.status_code == 400 and "external_authority.reference" in refused.json()["fields"]
    accepted = log(alice, north_case, jane_profile, external_authority={"kind": "court_order", "reference": "ZW123/26"})
    assert accepted.status_code == 201
    assert accepted.json()["external_authority"] == {"kind": "court_order", "reference": "ZW123/26"}


def test_an_authorisation_must_belong_to_the_case(alice, north_case, south_case, jane_profile, log):
    elsewhere = Authorisation.objects.create(urn="A-1", type="non_ripa", case=south_case, applicant=alice)
    refused = log(alice, north_case, jane_profile, authorisation=elsewhere.pk)
    assert refused.status_code == 404 and "authorisation" in refused.json()["fields"]
    own = Authorisation.objects.create(urn="A-2", type="non_ripa", case=north_case, applicant=alice)
    accepted = log(alice, north_case, jane_profile, authorisation=own.pk)
    assert accepted.status_code == 201 and accepted.json()["authorisation"]["urn"] == "A-2"


@pytest.mark.parametrize("who", ["olivia", "sam", "audrey", "adam"])
def test_only_practitioners_log_viewings(who, request, north_case, jane_profile, log):
    response = log(request.getfixturevalue(who), north_case, jane_profile)
    assert response.status_code == 403
    assert not Viewing.objects.exists()


def test_a_viewing_on_a_closed_case_is_still_recorded(alice, north_case, jane_profile, log):
    north_case.status = "closed"
    north_case.save()
    assert log(alice, north_case, jane_profile).status_code == 201


def test_if_the_audit_event_cannot_be_written_the_viewing_is_not_saved(
    alice, north_case, jane_profile, client_for, monkeypatch
):
    client = client_for(alice)
    import cases.services

    def broken(**kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(cases.services, "audit_record", broken)
    response = client.post("/api/v1/viewings/", viewing_payload(north_case, jane_profile), format="json")
    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
    assert not Viewing.objects.exists()


# --- Reading viewings ---------------------------------------------------------------------------


@pytest.fixture
def three_viewings(alice, north_case, jane_profile, log):
    now = timezone.now()
    for days in (3, 2, 1):
        log(alice, north_case, jane_profile, viewed_at=(now - timedelta(days=days)).isoformat())
    return list(Viewing.objects.order_by("viewed_at"))


def test_listing_viewings_filters_and_is_audited(alice, jane_profile, three_viewings, client_for):
    client = client_for(alice)
    since = (timezone.now() - timedelta(days=2, hours=1)).isoformat()
    response = client.get("/api/v1/viewings/", {"subject": jane_profile.subject_id, "since": since})
    assert response.status_code == 200
    assert [v["id"] for v in response.json()["results"]] == [three_viewings[2].pk, three_viewings[1].pk]
    event = AuditEvent.objects.filter(action="viewing.list").get()
    assert event.payload["viewing_ids"] == [three_viewings[2].pk, three_viewings[1].pk]
    assert [link.subject_id for link in event.subject_links.all()] == [jane_profile.subject_id]


def test_viewings_page_by_cursor_in_time_order(alice, three_viewings, client_for):
    client = client_for(alice)
    first = client.get("/api/v1/viewings/?limit=2").json()
    second = client.get(first["next"]).json()
    ids = [v["id"] for v in first["results"] + second["results"]]
    assert ids == [v.pk for v in reversed(three_viewings)] and second["next"] is None


def test_a_bad_date_filter_is_named(alice, client_for):
    response = client_for(alice).get("/api/v1/viewings/?since=yesterday")
    assert response.status_code == 400 and "since" in response.json()["fields"]


def test_another_team_sees_none_of_the_viewings(bob, three_viewings, client_for):
    client = client_for(bob)
    assert client.get("/api/v1/viewings/").json()["results"] == []
    assert client.get(f"/api/v1/viewings/{three_viewings[0].pk}/").status_code == 404


def test_a_colleague_in_the_team_and_an_officer_can_read_a_viewing(carol, olivia, three_viewings, client_for):
    for user in (carol, olivia):
        response = client_for(user).get(f"/api/v1/viewings/{three_viewings[0].pk}/")
        assert response.status_code == 200
    assert AuditEvent.objects.filter(action="viewing.read").count() == 2


# --- Corrections ----------------------------------------------------------------------------------


def test_a_correction_is_a_new_viewing_that_supersedes_the_original(alice, north_case, jane_profile, log, client_for):
    original = log(alice, north_case, jane_profile).json()
    payload = viewing_payload(north_case, jane_profile, purpose="risk_assessment", reason="Wrong purpose chosen")
    client = client_for(alice)
    response = client.post(f"/api/v1/viewings/{original['id']}/supersede/", payload, format="json")
    assert response.status_code == 201
    correction = Viewing.objects.get(pk=response.json()["id"])
    assert correction.supersedes_id == original["id"] and correction.supersede_reason == "Wrong purpose chosen"
    unchanged = Viewing.objects.get(pk=original["id"])
    assert unchanged.purpose == "safeguarding_assessment"
    assert client.get(f"/api/v1/viewings/{original['id']}/").json()["superseded_by"] == correction.pk
    assert AuditEvent.objects.filter(action="viewing.supersede", target_id=str(correction.pk)).exists()
    again = client.post(f"/api/v1/viewings/{original['id']}/supersede/", payload, format="json")
    assert again.status_code == 409


def test_only_the_practitioner_who_logged_a_viewing_corrects_it(
    alice, carol, north_case, jane_profile, log, client_for
):
    original = log(alice, north_case, jane_profile).json()
    payload = viewing_payload(north_case, jane_profile, reason="x")
    response = client_for(carol).post(f"/api/v1/viewings/{original['id']}/supersede/", payload, format="json")
    assert response.status_code == 403
    assert Viewing.objects.count() == 1


def test_a_correction_cannot_move_the_record_to_another_case_or_person(
    alice, north, north_case, jane_profile, log, client_for
):
    original = log(alice, north_case, jane_profile).json()
    other_case = CaseFactory(reference="N-7", team=north, created_by=alice)
    other_person = CaseSubjectFactory(case=other_case, subject__display_name="Sam").subject
    CaseSubjectFactory(case=other_case, subject=jane_profile.subject)
    CaseSubjectFactory(case=north_case, subject=other_person)
    from tests.factories import ProfileFactory

    someone_else = ProfileFactory(subject=other_person)
    client = client_for(alice)
    url = f"/api/v1/viewings/{original['id']}/supersede/"
    moved = client.post(url, viewing_payload(other_case, jane_profile, reason="x"), format="json")
    assert moved.status_code == 400 and "case" in moved.json()["fields"]
    other = client.post(url, viewing_payload(north_case, someone_else, reason="x"), format="json")
    assert other.status_code == 400 and "profile" in other.json()["fields"]
    assert Viewing.objects.count() == 1


def test_a_correction_needs_a_reason(alice, north_case, jane_profile, log, client_for):
    original = log(alice, north_case, jane_profile).json()
    response = client_for(alice).post(
        f"/api/v1/viewings/{original['id']}/supersede/", viewing_payload(north_case, jane_profile), format="json"
    )
    assert response.status_code == 400 and "reason" in response.json()["fields"]
