"""Issue 18, evasions 1-5, as a determined practitioner would try them: looking at one
person again and again without an officer hearing of it. Each test fails on the code before
the issue (corrections moved looks freely, consent was taken on trust and coverage ignored
the case)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from cases.models import Consent, Viewing
from detection.models import DetectionPolicy, Flag
from tests.cases.test_viewing_log import viewing_payload
from tests.factories import AuthorisationFactory, CaseSubjectFactory, ConsentFactory

NOW = timezone.now


def look(client, case, profile, days_ago: float = 0, expect=201, **overrides):
    payload = viewing_payload(case, profile, viewed_at=(NOW() - timedelta(days=days_ago)).isoformat(), **overrides)
    response = client.post("/api/v1/viewings/", payload, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def correct(client, viewing_id, case, profile, days_ago: float, expect=201, **overrides):
    payload = viewing_payload(
        case,
        profile,
        viewed_at=(NOW() - timedelta(days=days_ago)).isoformat(),
        reason=overrides.pop("reason", "Wrong time in the record"),
        **overrides,
    )
    response = client.post(f"/api/v1/viewings/{viewing_id}/supersede/", payload, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def rules(body) -> set[str]:
    return {flag["rule"] for flag in body["flags"]}


def consent_body(**overrides):
    body = {
        "scope": ["all"],
        "granted_at": (NOW() - timedelta(days=1)).isoformat(),
        "evidence": "Signed form, scanned to the case file on 3 May",
        "given_by": "subject",
        "given_by_name": "Jane Doe",
        "method": "written",
    }
    body.update(overrides)
    return body


# --- 1. Back-dating by correction ----------------------------------------------------------------


def test_a_correction_cannot_move_a_look_back_a_month_without_a_late_entry_reason(
    alice, north_case, jane_profile, client_for
):
    client = client_for(alice)
    first = look(client, north_case, jane_profile)
    refused = correct(client, first["id"], north_case, jane_profile, days_ago=40, expect=400)
    assert "late_entry_reason" in refused["fields"]
    dot = correct(client, first["id"], north_case, jane_profile, days_ago=40, expect=400, late_entry_reason=".")
    assert "late_entry_reason" in dot["fields"]
    assert Viewing.objects.count() == 1
    # Within the setting (24 hours by default) a correction needs no late-entry reason.
    correct(client, first["id"], north_case, jane_profile, days_ago=0.5)


def test_the_shift_allowed_without_a_reason_is_a_setting(alice, north_case, jane_profile, client_for, settings):
    settings.VIEWING_CORRECTION_MAX_SHIFT_HOURS = 1
    client = client_for(alice)
    first = look(client, north_case, jane_profile)
    assert (
        "late_entry_reason"
        in correct(client, first["id"], north_case, jane_profile, days_ago=0.5, expect=400)["fields"]
    )


def test_a_back_dated_correction_still_counts_the_look_at_its_original_time(
    alice, north_case, jane_profile, client_for
):
    client = client_for(alice)
    first = look(client, north_case, jane_profile, days_ago=1)
    moved = correct(
        client,
        first["id"],
        north_case,
        jane_profile,
        days_ago=60,
        late_entry_reason="The look was in March; I typed the wrong date",
    )
    assert moved["supersedes"] == first["id"]
    second = look(client, north_case, jane_profile)
    assert "REPEAT_VIEWING" in rules(second)
    [repeat] = [flag for flag in second["flags"] if flag["rule"] == "REPEAT_VIEWING"]
    # The look is counted once, as the record of it at its original moment.
    assert repeat["counted_viewing_ids"] == [first["id"], second["id"]]


def test_moving_a_look_forward_by_small_corrections_is_measured_from_the_first_record(
    alice, north_case, jane_profile, client_for
):
    client = client_for(alice)
    first = look(client, north_case, jane_profile)
    step = correct(client, first["id"], north_case, jane_profile, days_ago=0.9)
    refused = correct(client, step["id"], north_case, jane_profile, days_ago=1.8, expect=400)
    assert "late_entry_reason" in refused["fields"]


def test_a_late_entry_reason_must_say_something(alice, north_case, jane_profile, client_for):
    client = client_for(alice)
    for reason in (".", "late", "..........", "          x"):
        body = look(client, north_case, jane_profile, days_ago=10, expect=400, late_entry_reason=reason)
        assert "late_entry_reason" in body["fields"], reason
    look(client, north_case, jane_profile, days_ago=10, late_entry_reason="Written up after two weeks of leave")


def test_late_entries_about_one_person_raise_a_flag(alice, north_case, jane_profile, client_for):
    """Looks spaced out on paper (40 and 10 days ago: never two within 28 days) still tell an
    officer: two late entries about one person within 28 days of logging."""
    client = client_for(alice)
    first = look(client, north_case, jane_profile, days_ago=40, late_entry_reason="Found in my notebook today")
    assert rules(first) == set()
    second = look(client, north_case, jane_profile, days_ago=10, late_entry_reason="Found in my notebook as well")
    assert rules(second) == {"LATE_ENTRIES"}
    [flag] = second["flags"]
    assert flag["counted_viewing_ids"] == [first["id"], second["id"]]
    assert Flag.objects.get().rule == "LATE_ENTRIES"


def test_correcting_a_late_entry_is_still_one_late_entry(alice, north_case, jane_profile, client_for):
    client = client_for(alice)
    first = look(client, north_case, jane_profile, days_ago=40, late_entry_reason="Found in my notebook today")
    reason = "Found in my notebook today, wrong purpose"
    corrected = correct(client, first["id"], north_case, jane_profile, days_ago=40, late_entry_reason=reason)
    assert "LATE_ENTRIES" not in rules(corrected)
    # Correcting it without a reason does not erase it either: the next late entry is the second.
    again = correct(client, corrected["id"], north_case, jane_profile, days_ago=40)
    assert "LATE_ENTRIES" not in rules(again)
    second = look(client, north_case, jane_profile, days_ago=10, late_entry_reason="Found in my notebook as well")
    assert "LATE_ENTRIES" in rules(second)


# --- 2. Self-certified consent -------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, field",
    [
        ({"evidence": "."}, "evidence"),
        ({"evidence": "ok ok ok"}, "evidence"),
        ({"granted_at": "1990-01-01T00:00:00Z"}, "granted_at_reason"),
        ({"granted_at": "1990-01-01T00:00:00Z", "granted_at_reason": "."}, "granted_at_reason"),
        ({"given_by": None}, "given_by"),
        ({"given_by": "neighbour"}, "given_by"),
        ({"given_by_name": "  "}, "given_by_name"),
        ({"method": "telepathy"}, "method"),
    ],
)
def test_consent_says_who_gave_it_how_and_on_what_evidence(alice, jane, client_for, override, field):
    body = {key: value for key, value in consent_body(**override).items() if value is not None}
    response = client_for(alice).post(f"/api/v1/subjects/{jane.pk}/consents/", body, format="json")
    assert response.status_code == 400 and field in response.json()["fields"], response.content
    assert not Consent.objects.exists()


def test_consent_recorded_by_the_practitioner_who_looks_does_not_stop_flags_until_an_officer_confirms_it(
    alice, olivia, north_case, jane, jane_profile, client_for
):
    client = client_for(alice)
    recorded = client.post(
        f"/api/v1/subjects/{jane.pk}/consents/",
        consent_body(granted_at="1990-01-01T00:00:00Z", granted_at_reason="Form found in the 1990 archive box"),
        format="json",
    ).json()
    assert recorded["status"] == "awaiting_confirmation" and recorded["recorded_by"] == alice.pk
    assert recorded["given_by"] == "subject" and recorded["method"] == "written"
    first = look(client, north_case, jane_profile, days_ago=1, information_recorded="Her new address")
    assert "SYSTEMATIC_RECORDING" in rules(first)
    second = look(client, north_case, jane_profile)
    assert "REPEAT_VIEWING" in rules(second)
    assert second["consent"]["id"] == recorded["id"] and second["covered_by"]["covered"] is False
    assert "confirmation" in second["covered_by"]["reason"]
    # The practitioner cannot confirm it; an officer can, and it is audited.
    assert client.post(f"/api/v1/consents/{recorded['id']}/confirm/", {}, format="json").status_code == 403
    confirmed = client_for(olivia).post(f"/api/v1/consents/{recorded['id']}/confirm/", {}, format="json")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    assert AuditEvent.objects.filter(action="consent.confirm", target_id=str(recorded["id"])).count() == 1
    third = look(client, north_case, jane_profile, information_recorded="Her new address")
    assert third["flags"] == [] and third["covered_by"]["covered"] is True
    assert third["covered_by"]["consent"]["id"] == recorded["id"]


def test_the_policy_can_let_unconfirmed_consent_stop_flags(alice, sam, north_case, jane, jane_profile, client_for):
    rules_now = DetectionPolicy.objects.order_by("-version").first().rules
    rules_now["REPEAT_VIEWING"]["params"]["consent_needs_confirmation"] = False
    assert client_for(sam).put("/api/v1/policy/", {"rules": rules_now}, format="json").status_code == 200
    client = client_for(alice)
    client.post(f"/api/v1/subjects/{jane.pk}/consents/", consent_body(), format="json")
    look(client, north_case, jane_profile, days_ago=1)
    assert look(client, north_case, jane_profile)["flags"] == []


# --- 3. Consent laundering -----------------------------------------------------------------------


def test_consent_recorded_after_the_looks_does_not_cover_them_even_when_granted_earlier_and_the_looks_corrected(
    alice, olivia, audrey, north_case, jane, jane_profile, client_for
):
    client = client_for(alice)
    first = look(client, north_case, jane_profile, days_ago=5)
    second = look(client, north_case, jane_profile)
    assert "REPEAT_VIEWING" in rules(second)
    consent = client.post(
        f"/api/v1/subjects/{jane.pk}/consents/",
        consent_body(
            granted_at=(NOW() - timedelta(days=10)).isoformat(), granted_at_reason="Signed at the first visit"
        ),
        format="json",
    ).json()
    client_for(olivia).post(f"/api/v1/consents/{consent['id']}/confirm/", {}, format="json")
    corrections = [
        correct(client, original["id"], north_case, jane_profile, days_ago=days, reason="Purpose recorded wrongly")
        for original, days in ((first, 5), (second, 0))
    ]
    for corrected in corrections:
        assert corrected["consent"] is None and corrected["covered_by"]["covered"] is False
    history = (
        client_for(audrey)
        .get("/api/v1/audit/access-history/", {"subject": jane.pk, "covered": "false"})
        .json()["viewings"]
    )
    assert {row["viewing"] for row in history} == {first["id"], second["id"], *(c["id"] for c in corrections)}
    assert all(row["covered_by"]["covered"] is False for row in history)


# --- 4. Back-dated withdrawal --------------------------------------------------------------------


def test_a_back_dated_withdrawal_uncovers_the_looks_made_or_logged_after_it_and_reopens_counting(
    alice, audrey, north_case, jane, jane_profile, client_for
):
    consent = ConsentFactory(subject=jane, scope=["instagram"], granted_at=NOW() - timedelta(days=20))
    client = client_for(alice)
    before = look(client, north_case, jane_profile, days_ago=3)
    after = look(client, north_case, jane_profile, days_ago=1)
    assert before["covered_by"]["covered"] and after["covered_by"]["covered"] and after["flags"] == []
    withdrawn = client.post(
        f"/api/v1/consents/{consent.pk}/withdraw/",
        {"reason": "She withdrew it by phone", "withdrawn_at": (NOW() - timedelta(days=2)).isoformat()},
        format="json",
    )
    assert withdrawn.status_code == 200
    detail = client.get(f"/api/v1/viewings/{after['id']}/").json()
    assert detail["covered_by"]["covered"] is False and "withdrawn" in detail["covered_by"]["reason"]
    # Both were logged after the withdrawal took effect: when a look happened is the
    # practitioner's word, when it was logged is the server's.
    earlier = client.get(f"/api/v1/viewings/{before['id']}/").json()["covered_by"]
    assert earlier["covered"] is False and "before this look was logged" in earlier["reason"]
    listed = {row["id"]: row for row in client.get(f"/api/v1/viewings/?subject={jane.pk}").json()["results"]}
    assert listed[after["id"]]["covered_by"]["covered"] is False
    uncovered = (
        client_for(audrey)
        .get("/api/v1/audit/access-history/", {"subject": jane.pk, "covered": "false"})
        .json()["viewings"]
    )
    assert [row["viewing"] for row in uncovered] == [before["id"], after["id"]]
    csv = client_for(audrey).get("/api/v1/audit/access-history/", {"subject": jane.pk, "format": "csv"})
    assert "withdrawn" in b"".join(csv.streaming_content).decode()
    # Counting reopens: the looks since the withdrawal and a new one make three.
    now = look(client, north_case, jane_profile)
    [repeat] = [flag for flag in now["flags"] if flag["rule"] == "REPEAT_VIEWING"]
    assert repeat["counted_viewing_ids"] == [before["id"], after["id"], now["id"]]


def test_looks_back_dated_to_before_a_withdrawal_are_not_covered_by_it(
    alice, north_case, jane, jane_profile, client_for
):
    consent = ConsentFactory(subject=jane, scope=["instagram"], granted_at=NOW() - timedelta(days=20))
    client = client_for(alice)
    client.post(f"/api/v1/consents/{consent.pk}/withdraw/", {"reason": "She asked us to stop"}, format="json")
    first = look(client, north_case, jane_profile, days_ago=3)
    second = look(client, north_case, jane_profile, days_ago=2)
    assert first["consent"] is None and second["covered_by"]["covered"] is False
    assert "REPEAT_VIEWING" in rules(second)


# --- 5. Another team's authorisation -------------------------------------------------------------


def test_another_teams_authorisation_does_not_cover_a_look_for_this_case(
    alice, bob, north_case, south_case, jane, jane_profile, client_for
):
    CaseSubjectFactory(case=south_case, subject=jane, linked_by=bob)
    AuthorisationFactory(
        case=south_case,
        applicant=bob,
        subjects=[jane],
        platforms=["instagram"],
        status="in_force",
        in_force_at=NOW() - timedelta(days=30),
        expires_at=NOW() + timedelta(days=30),
    )
    client = client_for(alice)
    look(client, north_case, jane_profile, days_ago=1, purpose="evidence_gathering")
    second = look(client, north_case, jane_profile, purpose="evidence_gathering")
    assert {"REPEAT_VIEWING", "EVIDENCE_PURPOSE"} <= rules(second)
    assert second["covered_by"] == {
        "covered": False,
        "consent": None,
        "authorisation": None,
        "reason": second["covered_by"]["reason"],
    }
    assert second["covered_by"]["reason"].startswith("Nothing covered this look")


def test_an_authorisation_for_the_case_covers_a_look_that_does_not_cite_it_and_says_so(
    alice, north_case, jane, jane_profile, client_for
):
    authorisation = AuthorisationFactory(
        case=north_case,
        applicant=alice,
        subjects=[jane],
        platforms=["instagram"],
        status="in_force",
        in_force_at=NOW() - timedelta(days=30),
        expires_at=NOW() + timedelta(days=30),
    )
    client = client_for(alice)
    look(client, north_case, jane_profile, days_ago=1)
    second = look(client, north_case, jane_profile)
    assert second["flags"] == []
    cover = second["covered_by"]
    assert cover["covered"] is True and cover["consent"] is None
    assert cover["authorisation"] == {
        "id": authorisation.pk,
        "urn": authorisation.urn,
        "case": north_case.pk,
        "cited": False,
    }
    assert "not cited" in cover["reason"]
    event = AuditEvent.objects.filter(action="viewing.create").order_by("-id").first()
    assert event.payload["covered_by"]["authorisation"]["id"] == authorisation.pk
    assert client.get(f"/api/v1/viewings/{second['id']}/").json()["covered_by"] == cover


def test_a_consent_covers_only_the_platforms_it_names(alice, north_case, jane, jane_profile, client_for):
    ConsentFactory(subject=jane, scope=["facebook"])
    body = look(client_for(alice), north_case, jane_profile)
    assert body["consent"] is None and body["covered_by"]["covered"] is False
