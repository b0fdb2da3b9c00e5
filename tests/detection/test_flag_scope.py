"""A flag is about a person, so it takes in looks from any case about them: here Jane is on
North's case and South's. Who may decide it then depends on every case with a look in it,
not only the case that raised it; and a practitioner whose look joined another team's flag
sees it from their own look, never the other team's case or the officer's reasoning."""

import pytest

from audit.models import AuditEvent
from detection.models import Flag, FlagViewing, Notification
from detection.permissions import can_decide_flag
from tests.detection.test_detection import look
from tests.factories import CaseSubjectFactory, UserFactory

REASONING = "N-1's mother is hiding the child at her sister's; two looks were needed to find her."


@pytest.fixture
def shared(jane_profile, south_case, bob):
    """Jane is on North's case (N-1) and South's (S-1)."""
    CaseSubjectFactory(case=south_case, subject=jane_profile.subject, linked_by=bob)
    return jane_profile


@pytest.fixture
def otis(south):
    """A RIPA officer who is a member of the South team."""
    return UserFactory(username="otis", role="ripa_officer", teams=[south])


def raise_and_join(client_for, alice, bob, north_case, south_case, profile):
    """alice looks twice from North's case (raising a flag), then bob once from South's."""
    alice_client = client_for(alice)
    look(alice_client, north_case, profile, days_ago=2)
    look(alice_client, north_case, profile, days_ago=1)
    flag = Flag.objects.get()
    joined = look(client_for(bob), south_case, profile)
    [entry] = joined["flags"]
    assert entry["id"] == flag.pk and entry["absorbed"] is True
    return flag, joined


def decide(client, flag, outcome="no_authorisation_needed", reasoning=REASONING):
    return client.post(f"/api/v1/flags/{flag.pk}/decide/", {"outcome": outcome, "reasoning": reasoning}, format="json")


# --- F1: deciding -----------------------------------------------------------------------------


def test_an_officer_in_the_team_of_a_look_that_joined_may_not_decide(
    client_for, alice, bob, north_case, south_case, shared, otis, olivia, sam
):
    flag, _joined = raise_and_join(client_for, alice, bob, north_case, south_case, shared)
    assert sorted(flag.recipients.values_list("officer__username", flat=True)) == ["olivia", "otis"]
    # olivia is still free to decide, so nobody else is asked.
    assert "routed_to" not in AuditEvent.objects.get(action="flag.absorb").payload
    assert not flag.recipients.filter(officer=sam).exists()

    refused = decide(client_for(otis), flag)
    assert refused.status_code == 403, refused.json()
    assert refused.json()["code"] == "works_on_the_case"
    assert set(refused.json()) >= {"code", "message", "fields", "request_id"}
    flag.refresh_from_db()
    assert flag.status == "open" and flag.decided_by is None
    assert not AuditEvent.objects.filter(action="flag.decide").exists()
    assert AuditEvent.objects.filter(action="request.denied", actor_id=otis.pk).count() == 1
    assert not can_decide_flag(otis, flag) and can_decide_flag(olivia, flag)

    assert decide(client_for(olivia), flag).status_code == 200


def test_when_no_officer_routed_is_free_any_more_the_flag_goes_to_the_sro_too(
    client_for, alice, bob, north, south, north_case, south_case, shared, otis, sam
):
    UserFactory(username="sid", role="sro", teams=[south])  # an SRO on South's side: not free either
    UserFactory(username="nora", role="sro", teams=[north])  # nor one on North's
    flag, joined = raise_and_join(client_for, alice, bob, north_case, south_case, shared)

    routed = {recipient.officer.username: recipient.reason for recipient in flag.recipients.all()}
    assert routed == {"otis": "ripa_officer", "sam": "sro_no_officer_free"}
    [entry] = joined["flags"]
    assert entry["routed_to"] == ["otis", "sam"] and "sam" in entry["explanation"]
    absorbed = AuditEvent.objects.get(action="flag.absorb")
    assert absorbed.payload["routed_to"] == ["sam"]
    [notification] = Notification.objects.filter(recipient=sam, flag=flag)
    assert str(flag.pk) in notification.subject_line and f"http://127.0.0.1:8000/flags/{flag.pk}/" in notification.body
    assert not Notification.objects.filter(recipient__username__in=["sid", "nora"]).exists()

    assert decide(client_for(otis), flag).json()["code"] == "works_on_the_case"
    assert can_decide_flag(sam, flag) and not can_decide_flag(otis, flag)
    sam_client = client_for(sam)
    assert flag.pk in [f["id"] for f in sam_client.get("/api/v1/flags/", {"status": "open"}).json()["results"]]
    assert decide(sam_client, flag).status_code == 200


def test_a_second_look_from_the_other_case_routes_nobody_twice(
    client_for, alice, bob, north_case, south_case, shared, otis, sam
):
    flag, _joined = raise_and_join(client_for, alice, bob, north_case, south_case, shared)
    look(client_for(bob), south_case, shared)
    assert sorted(flag.recipients.values_list("officer__username", flat=True)) == ["otis", "sam"]
    assert FlagViewing.objects.filter(flag=flag).count() == 3
    assert Notification.objects.filter(recipient=sam, flag=flag).count() == 1


# --- F2: what a practitioner on the other case sees -------------------------------------------


@pytest.fixture
def decided(client_for, alice, bob, north_case, south_case, shared, olivia):
    flag, joined = raise_and_join(client_for, alice, bob, north_case, south_case, shared)
    assert decide(client_for(olivia), flag, outcome="authorisation_required").status_code == 200
    flag.refresh_from_db()
    return flag, joined


def test_bobs_own_look_is_explained_without_norths_details(decided, bob):
    flag, joined = decided
    own = FlagViewing.objects.get(flag=flag, viewing__practitioner=bob).explanation
    assert joined["flags"][0]["explanation"] == own
    assert "someone in another team" in own and "look number 3" in own
    assert "N-1" not in own and "alice" not in own and "by you" not in own


def test_a_practitioner_sees_a_flag_on_another_teams_case_only_from_their_own_look(
    decided, client_for, bob, north_case, south_case
):
    flag, _joined = decided
    bob_client = client_for(bob)
    assert bob_client.get(f"/api/v1/cases/{north_case.pk}/").status_code == 404
    own = FlagViewing.objects.get(flag=flag, viewing__practitioner=bob).explanation

    [listed] = bob_client.get("/api/v1/flags/").json()["results"]
    detail = bob_client.get(f"/api/v1/flags/{flag.pk}/").json()
    for body in (listed, detail):
        assert body["id"] == flag.pk
        assert body["case"] is None and body["case_reference"] is None
        assert body["explanation"] == own != flag.explanation
        assert body["reasoning"] is None
        assert body["outcome"] == "authorisation_required" and body["decided_by"] == "olivia"
        assert "N-1" not in str(body) and "alice" not in str(body) and "sister" not in str(body)
    assert detail["draft_application"] is None
    assert [v["case_reference"] for v in detail["viewings"]] == ["S-1"] and detail["viewings_not_shown"] == 1

    # Filtering by a case he may not see finds nothing, as for any other case of another team.
    by_case = bob_client.get("/api/v1/flags/", {"case": north_case.pk})
    assert by_case.status_code == 200 and by_case.json()["results"] == []
    assert bob_client.get("/api/v1/flags/", {"subject": flag.subject_id}).json()["results"][0]["case"] is None
    assert AuditEvent.objects.filter(action="flag.read", actor_id=bob.pk, target_id=str(flag.pk)).count() == 1


def test_the_practitioner_whose_team_owns_the_case_still_sees_everything(decided, client_for, alice, north_case):
    flag, _joined = decided
    alice_client = client_for(alice)
    [listed] = alice_client.get("/api/v1/flags/", {"case": north_case.pk}).json()["results"]
    detail = alice_client.get(f"/api/v1/flags/{flag.pk}/").json()
    for body in (listed, detail):
        assert (body["case"], body["case_reference"]) == (north_case.pk, "N-1")
        assert body["explanation"] == flag.explanation and body["reasoning"] == REASONING
    assert detail["draft_application"]["case"] == north_case.pk
    assert detail["viewings_not_shown"] == 1


def test_each_practitioner_is_told_of_the_decision_from_their_own_side(decided, alice, bob):
    flag, _joined = decided
    [to_bob] = Notification.objects.filter(recipient=bob, flag=flag)
    text = to_bob.subject_line + "\n" + to_bob.body
    assert "N-1" not in text and REASONING not in text and "sister" not in text
    assert "Authorisation required" in text and "Ask olivia" in text and f"Flag {flag.pk}" in text
    [to_alice] = Notification.objects.filter(recipient=alice, flag=flag)
    assert "N-1" in to_alice.subject_line and REASONING in to_alice.body


def test_each_practitioner_s_email_links_to_what_they_may_open_on_site_url(
    client_for, alice, bob, north_case, south_case, shared, olivia, settings
):
    settings.SITE_URL = "https://evidence.council.example"
    flag, joined = raise_and_join(client_for, alice, bob, north_case, south_case, shared)
    for to_officer in Notification.objects.filter(flag=flag):
        assert f"https://evidence.council.example/flags/{flag.pk}/" in to_officer.body
        assert "/api/v1/" not in to_officer.body
    olivia.full_name = "Olivia Okafor"
    olivia.save()
    decide(client_for(olivia), flag, outcome="authorisation_required")
    [to_alice] = Notification.objects.filter(recipient=alice, flag=flag)
    assert f"https://evidence.council.example/flags/{flag.pk}/" in to_alice.body
    assert "Olivia Okafor (olivia) decided" in to_alice.body
    [to_bob] = Notification.objects.filter(recipient=bob, flag=flag)
    bob_look = FlagViewing.objects.get(flag=flag, viewing__practitioner=bob).viewing_id
    assert f"https://evidence.council.example/viewings/{bob_look}/" in to_bob.body
    assert "/flags/" not in to_bob.body  # not another team's flag page


def test_the_schema_says_which_flag_fields_may_be_null(client_for, alice):
    schema = client_for(alice).get("/api/v1/schema/", {"format": "json"}).json()
    for component in ("FlagOutput", "FlagDetailOutput"):
        fields = schema["components"]["schemas"][component]["properties"]
        for name in ("case", "case_reference", "reasoning"):
            assert fields[name].get("nullable") is True, (component, name)
