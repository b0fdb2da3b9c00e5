"""Check before you look: POST /api/v1/viewings/check/ answers what logging the same body
would do (the flags it would raise or join, what would cover the look, advice), refuses what
logging refuses, writes nothing but its audit event, and says no more about other teams than
logging would. Detection and the check share one code path: for each situation below, what
the check predicts is what logging the same body then does."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from cases.models import Viewing
from detection.models import Flag, FlagRecipient, FlagViewing, Notification
from tests.factories import (
    AuthorisationFactory,
    CaseFactory,
    CaseSubjectFactory,
    ConsentFactory,
    ProfileFactory,
)

CHECK = "/api/v1/viewings/check/"


def body_for(case, profile, *, minutes_ago=1, **overrides):
    body = {
        "case": case.pk,
        "profile": profile.pk,
        "purpose": "safeguarding_assessment",
        "justification": "School raised a concern about a party this weekend.",
        "access_method": "logged_out_public",
        "interaction": "none",
        "information_recorded": "",
        "third_party_information": "",
        # A moment given, so that a check and the logging after it judge the same look.
        "viewed_at": (timezone.now() - timedelta(minutes=minutes_ago)).isoformat(),
    }
    body.update(overrides)
    return body


def log(client, body):
    response = client.post("/api/v1/viewings/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def earlier_look(client, case, profile, days_ago, **overrides):
    body = body_for(case, profile, minutes_ago=days_ago * 24 * 60, **overrides)
    if days_ago > 7:
        body["late_entry_reason"] = "Logged from my notebook after leave"
    return log(client, body)


def check(client, body):
    response = client.post(CHECK, body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def written():
    """Everything a look can write besides audit events."""
    return (
        Viewing.objects.count(),
        Flag.objects.count(),
        FlagViewing.objects.count(),
        FlagRecipient.objects.count(),
        Notification.objects.count(),
    )


def predicted(answer):
    return sorted((flag["rule"], flag["severity"], flag["action"], flag["flag"]) for flag in answer["flags"])


def raised(viewing):
    return sorted(
        (
            flag["rule"],
            flag["severity"],
            "join" if flag["absorbed"] else "raise",
            flag["id"] if flag["absorbed"] else None,
        )
        for flag in viewing["flags"]
    )


@pytest.fixture
def officers(olivia, sam):
    return olivia, sam


@pytest.fixture
def alice_client(alice, client_for, officers):
    return client_for(alice)


# --- One code path: the check predicts what logging then does ---------------------------------------


def _repeat(ctx):
    earlier_look(ctx["client"], ctx["case"], ctx["profile"], days_ago=3)
    return {}


def _covert(ctx):
    return {"access_method": "covert_identity"}


def _chis(ctx):
    return {"access_method": "personal_account", "interaction": "follow_or_friend_request"}


def _evidence(ctx):
    return {"purpose": "evidence_gathering"}


def _collateral(ctx):
    return {"third_party_information": "Her new partner's first name."}


def _recording(ctx):
    return {"information_recorded": "The town she now lives in."}


def _closed(ctx):
    ctx["case"].status = "closed"
    ctx["case"].save()
    return {}


def _outside(ctx):
    lapsed = AuthorisationFactory(
        case=ctx["case"],
        status="in_force",
        subjects=[ctx["profile"].subject],
        platforms=["instagram"],
        in_force_at=timezone.now() - timedelta(days=20),
        expires_at=timezone.now() - timedelta(days=1),
    )
    return {"authorisation": lapsed.pk}


def _consent(ctx):
    ConsentFactory(subject=ctx["profile"].subject, scope=["instagram"])
    earlier_look(ctx["client"], ctx["case"], ctx["profile"], days_ago=2)
    return {"information_recorded": "The town she now lives in."}


def _authorised(ctx):
    AuthorisationFactory(
        case=ctx["case"],
        status="in_force",
        subjects=[ctx["profile"].subject],
        platforms=["instagram"],
        in_force_at=timezone.now() - timedelta(days=20),
        expires_at=timezone.now() + timedelta(days=20),
    )
    earlier_look(ctx["client"], ctx["case"], ctx["profile"], days_ago=2)
    return {"purpose": "evidence_gathering"}


def _join(ctx):
    earlier_look(ctx["client"], ctx["case"], ctx["profile"], days_ago=5)
    earlier_look(ctx["client"], ctx["case"], ctx["profile"], days_ago=4, information_recorded="Her town.")
    return {"information_recorded": "Her street."}


def _many(ctx):
    for days_ago in (20, 15, 10, 9):
        earlier_look(ctx["client"], ctx["case"], ctx["profile"], days_ago=days_ago)
    return {"access_method": "personal_account", "interaction": "message", "third_party_information": "A friend."}


def _late(ctx):
    earlier_look(ctx["client"], ctx["case"], ctx["profile"], days_ago=40)
    return {
        "viewed_at": (timezone.now() - timedelta(days=9)).isoformat(),
        "late_entry_reason": "Logged from my paper notebook after two weeks of leave",
    }


def _unconfirmed_consent(ctx):
    """A consent the looker recorded, awaiting an officer: it does not stop the flag."""
    ConsentFactory(subject=ctx["profile"].subject, scope=["instagram"], status="awaiting_confirmation")
    earlier_look(ctx["client"], ctx["case"], ctx["profile"], days_ago=2)
    return {}


def _consent_after(ctx):
    """A consent recorded after the earlier look, granted before it: the earlier look stays uncovered."""
    earlier_look(ctx["client"], ctx["case"], ctx["profile"], days_ago=2)
    ConsentFactory(
        subject=ctx["profile"].subject,
        scope=["instagram"],
        granted_at=timezone.now() - timedelta(days=10),
        withdrawn_at=timezone.now() - timedelta(minutes=30),
    )
    return {}


def _other_case_authorisation(ctx):
    """An authorisation in force for another case of the person covers none of this case's looks."""
    other = CaseFactory(team=ctx["case"].team, created_by=ctx["case"].created_by)
    CaseSubjectFactory(case=other, subject=ctx["profile"].subject)
    AuthorisationFactory(
        case=other,
        status="in_force",
        subjects=[ctx["profile"].subject],
        platforms=["instagram"],
        in_force_at=timezone.now() - timedelta(days=20),
        expires_at=timezone.now() + timedelta(days=20),
    )
    earlier_look(ctx["client"], ctx["case"], ctx["profile"], days_ago=2)
    return {"purpose": "evidence_gathering"}


SCENARIOS = {
    "repeat viewing threshold": (_repeat, {("REPEAT_VIEWING", "medium", "raise", None)}),
    "covert access": (_covert, {("COVERT_ACCESS", "medium", "raise", None)}),
    "possible CHIS": (_chis, {("COVERT_ACCESS", "medium", "raise", None), ("POSSIBLE_CHIS", "high", "raise", None)}),
    "evidence purpose without authorisation": (_evidence, {("EVIDENCE_PURPOSE", "medium", "raise", None)}),
    "collateral intrusion": (_collateral, {("COLLATERAL_INTRUSION", "medium", "raise", None)}),
    "recording without cover": (_recording, {("SYSTEMATIC_RECORDING", "medium", "raise", None)}),
    "closed case": (_closed, {("CLOSED_CASE", "medium", "raise", None)}),
    "outside authorisation": (_outside, {("OUTSIDE_AUTHORISATION", "medium", "raise", None)}),
    "consent covering": (_consent, set()),
    "authorisation covering": (_authorised, set()),
    "existing open flags joined": (_join, {"REPEAT_VIEWING", "SYSTEMATIC_RECORDING"}),
    "many rules at once, some joined": (_many, None),
    "late entries": (_late, {("LATE_ENTRIES", "medium", "raise", None)}),
    "consent awaiting confirmation": (_unconfirmed_consent, {("REPEAT_VIEWING", "medium", "raise", None)}),
    "consent withdrawn before the look": (_consent_after, {("REPEAT_VIEWING", "medium", "raise", None)}),
    "another case's authorisation": (
        _other_case_authorisation,
        {("REPEAT_VIEWING", "medium", "raise", None), ("EVIDENCE_PURPOSE", "medium", "raise", None)},
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_check_predicts_exactly_what_logging_the_same_body_does(scenario, alice_client, north_case, jane_profile):
    setup, expected = SCENARIOS[scenario]
    extra = setup({"client": alice_client, "case": north_case, "profile": jane_profile})
    body = body_for(north_case, jane_profile, **extra)
    before, events = written(), AuditEvent.objects.count()
    answer = check(alice_client, body)
    assert written() == before  # the check wrote nothing ...
    assert AuditEvent.objects.count() == events + 1  # ... but its audit event
    viewing = log(alice_client, body)
    assert predicted(answer) == raised(viewing)
    if isinstance(expected, set) and all(isinstance(item, tuple) for item in expected):
        assert set(predicted(answer)) == expected
    elif expected:
        assert {flag["rule"] for flag in answer["flags"]} == expected
        assert {flag["action"] for flag in answer["flags"]} == {"join"}
    by_rule = {flag["rule"]: flag for flag in viewing["flags"]}
    for flag in answer["flags"]:
        logged = by_rule[flag["rule"]]
        # The flag's explanation is the rule's finding, then what happens next.
        assert logged["explanation"].startswith(flag["explanation"] + " "), (flag, logged)
        assert sorted(flag["routed_to"]) == logged["routed_to"]
        assert flag["counted_viewing_ids"] == [pk for pk in logged["counted_viewing_ids"] if pk != viewing["id"]]
        assert flag["looks_counted"] == len(logged["counted_viewing_ids"])
    # What would cover it is what the logged viewing says covered it, word for word.
    assert answer["covered_by"] == viewing["covered_by"]


def test_a_correction_is_counted_in_place_of_the_look_it_corrects(alice_client, north_case, jane_profile):
    """The plan logging writes judges a correction as it will be once written: the
    original no longer counts, the correction does (the original alone raised nothing)."""
    original = earlier_look(alice_client, north_case, jane_profile, days_ago=2)
    body = {**body_for(north_case, jane_profile, minutes_ago=2 * 24 * 60 + 5), "reason": "Wrong purpose"}
    correction = alice_client.post(f"/api/v1/viewings/{original['id']}/supersede/", body, format="json")
    assert correction.status_code == 201, correction.content
    assert correction.json()["flags"] == []
    answer = check(alice_client, body_for(north_case, jane_profile))
    [flag] = answer["flags"]
    assert flag["rule"] == "REPEAT_VIEWING" and flag["counted_viewing_ids"] == [correction.json()["id"]]


# --- What the answer says ------------------------------------------------------------------------


def test_the_third_look_in_28_days_is_advised_against_in_plain_words(alice_client, north_case, jane_profile):
    earlier_look(alice_client, north_case, jane_profile, days_ago=10)
    answer = check(alice_client, body_for(north_case, jane_profile))
    assert any("2nd look at this person in 28 days" in line for line in answer["advice"])
    [first_flag] = answer["flags"]
    log(alice_client, body_for(north_case, jane_profile, minutes_ago=3))
    flag_id = Flag.objects.get().pk
    answer = check(alice_client, body_for(north_case, jane_profile))
    [flag] = answer["flags"]
    assert (first_flag["action"], flag["action"], flag["flag"]) == ("raise", "join", flag_id)
    assert "look number 3" in flag["explanation"]
    assert any(
        "3rd look at this person in 28 days" in line and "an authorisation is needed before you look again" in line
        for line in answer["advice"]
    )
    assert any(f"open flag {flag_id}" in line and "olivia" in line for line in answer["advice"])
    assert answer["covered_by"]["covered"] is False and "Nothing covered this look" in answer["covered_by"]["reason"]


def test_a_first_look_raises_nothing_and_says_how_close_the_next_is(alice_client, north_case, jane_profile):
    answer = check(alice_client, body_for(north_case, jane_profile))
    assert answer["flags"] == []
    assert "Logging this look would raise no flag." in answer["advice"]
    assert any("1st look" in line and "one more within 28 days" in line for line in answer["advice"])


def test_what_covers_the_look_is_named_with_why(alice_client, north_case, jane_profile):
    consent = ConsentFactory(subject=jane_profile.subject, scope=["instagram"])
    answer = check(alice_client, body_for(north_case, jane_profile))
    cover = answer["covered_by"]
    assert cover["covered"] is True and cover["consent"]["id"] == consent.pk and cover["authorisation"] is None
    assert f"Consent {consent.pk} given by subject (written) was in effect for instagram" in cover["reason"]
    assert not any("look at this person in" in line for line in answer["advice"])  # covered looks are not counted


def test_an_authorisation_covering_the_look_uncited_is_named(alice_client, north_case, jane_profile):
    authorisation = AuthorisationFactory(
        case=north_case,
        status="in_force",
        subjects=[jane_profile.subject],
        platforms=["instagram"],
        in_force_at=timezone.now() - timedelta(days=20),
        expires_at=timezone.now() + timedelta(days=20),
    )
    answer = check(alice_client, body_for(north_case, jane_profile))
    cover = answer["covered_by"]
    assert cover["authorisation"] == {
        "id": authorisation.pk,
        "urn": authorisation.urn,
        "case": north_case.pk,
        "cited": False,
    }
    assert "not cited by the look" in cover["reason"] and answer["authorisation_check"] is None


def test_the_check_is_audited_with_the_person_linked_and_in_their_access_history(
    alice_client, audrey, client_for, north_case, jane_profile
):
    earlier_look(alice_client, north_case, jane_profile, days_ago=3)
    check(alice_client, body_for(north_case, jane_profile, access_method="covert_identity"))
    event = AuditEvent.objects.get(action="viewing.check")
    assert event.actor_username == "alice" and event.case_id == north_case.pk
    assert list(event.subject_links.values_list("subject_id", flat=True)) == [jane_profile.subject_id]
    assert event.target_type == "profile" and event.target_id == str(jane_profile.pk)
    assert sorted((flag["rule"], flag["action"]) for flag in event.payload["flags"]) == [
        ("COVERT_ACCESS", "raise"),
        ("REPEAT_VIEWING", "raise"),
    ]
    history = client_for(audrey).get(f"/api/v1/audit/access-history/?subject={jane_profile.subject_id}")
    assert history.status_code == 200
    assert "viewing.check" in history.content.decode()


# --- Refused as logging refuses --------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"justification": " "},
        {"purpose": "other"},
        {"viewed_at": (timezone.now() + timedelta(days=1)).isoformat()},
        {"viewed_at": (timezone.now() - timedelta(days=10)).isoformat()},
        {"external_authority": {"kind": "court_order", "reference": " "}},
        {"interaction": "wink"},
        {"case": "x"},
        {"access_method": None},
    ],
)
def test_bad_input_is_refused_with_the_same_400_as_logging_and_nothing_written(
    overrides, alice_client, north_case, jane_profile
):
    body = {**body_for(north_case, jane_profile), **overrides}
    before, events = written(), AuditEvent.objects.count()
    checked = alice_client.post(CHECK, body, format="json")
    logged = alice_client.post("/api/v1/viewings/", body, format="json")
    assert checked.status_code == logged.status_code == 400, checked.content
    assert checked.json()["fields"] == logged.json()["fields"] and checked.json()["fields"]
    assert written() == before and not AuditEvent.objects.filter(action="viewing.check").exists()
    assert AuditEvent.objects.count() >= events


def test_a_profile_of_someone_not_on_the_case_is_refused_as_logging_refuses_it(
    alice_client, north_case, jane_profile, alice, north
):
    other_case = CaseFactory(reference="N-2", team=north, created_by=alice)
    CaseSubjectFactory(case=other_case, subject=ProfileFactory().subject)
    tom = ProfileFactory(subject=other_case.subject_links.get().subject)
    body = body_for(north_case, tom)
    checked = alice_client.post(CHECK, body, format="json")
    logged = alice_client.post("/api/v1/viewings/", body, format="json")
    assert checked.status_code == logged.status_code == 400
    refusal = {"profile": ["This profile's owner is not linked to case N-1."]}
    assert checked.json()["fields"] == logged.json()["fields"] == refusal


def test_a_cited_authorisation_of_another_case_is_refused_as_logging_refuses_it(
    alice_client, alice, north, north_case, jane_profile
):
    other = AuthorisationFactory(case=CaseFactory(team=north, created_by=alice), subjects=[jane_profile.subject])
    body = body_for(north_case, jane_profile, authorisation=other.pk)
    checked = alice_client.post(CHECK, body, format="json")
    logged = alice_client.post("/api/v1/viewings/", body, format="json")
    assert checked.status_code == logged.status_code == 400
    assert checked.json()["fields"] == logged.json()["fields"] and "authorisation" in checked.json()["fields"]


def test_another_teams_case_is_404_as_for_logging(bob, client_for, north_case, jane_profile, officers):
    client = client_for(bob)
    body = body_for(north_case, jane_profile)
    checked, logged = client.post(CHECK, body, format="json"), client.post("/api/v1/viewings/", body, format="json")
    assert checked.status_code == logged.status_code == 404
    assert checked.json()["fields"] == logged.json()["fields"]
    assert not AuditEvent.objects.filter(action="viewing.check").exists()


@pytest.mark.parametrize("who", ["audrey", "olivia", "sam", "adam"])
def test_roles_that_do_not_log_looks_may_not_check_them(who, request, client_for, north_case, jane_profile):
    client = client_for(request.getfixturevalue(who))
    body = body_for(north_case, jane_profile)
    checked, logged = client.post(CHECK, body, format="json"), client.post("/api/v1/viewings/", body, format="json")
    assert checked.status_code == logged.status_code == 403
    assert not AuditEvent.objects.filter(action="viewing.check").exists()


def test_signed_out_is_401(client, north_case, jane_profile):
    assert client.post(CHECK, body_for(north_case, jane_profile), content_type="application/json").status_code == 401


# --- No probing other teams ------------------------------------------------------------------------


def test_a_check_against_another_teams_open_flag_says_join_without_its_id_case_or_people(
    alice_client, bob, client_for, north_case, south_case, jane_profile
):
    CaseSubjectFactory(case=south_case, subject=jane_profile.subject, linked_by=bob)
    consent = ConsentFactory(subject=jane_profile.subject, scope=["facebook"])
    earlier_look(alice_client, north_case, jane_profile, days_ago=6)
    earlier_look(alice_client, north_case, jane_profile, days_ago=5)
    north_flag = Flag.objects.get()
    bobs = client_for(bob)
    body = body_for(south_case, jane_profile)
    answer = check(bobs, body)
    [flag] = answer["flags"]
    assert (flag["rule"], flag["action"], flag["flag"]) == ("REPEAT_VIEWING", "join", None)
    assert flag["counted_viewing_ids"] == [] and flag["looks_counted"] == 3  # north's looks counted, not shown
    text = str(answer)
    for secret in ("N-1", "alice", "Jane", "Consent", consent.evidence, f"flag {north_flag.pk}"):
        assert secret not in text, secret
    assert "someone in another team" in flag["explanation"]
    viewing = log(bobs, body)
    assert predicted(answer) == [("REPEAT_VIEWING", "medium", "join", None)]
    assert raised(viewing) == [("REPEAT_VIEWING", "medium", "join", north_flag.pk)]  # logging joins it, as said


def test_a_consent_another_team_recorded_does_not_cover_and_its_details_stay_hidden(
    alice_client, bob, client_for, north_case, south_case, jane_profile
):
    """Teams stay apart (issue 18, item 5): another team's consent covers nothing of this
    team's, and the check shows none of its evidence."""
    CaseSubjectFactory(case=south_case, subject=jane_profile.subject, linked_by=bob)
    ConsentFactory(subject=jane_profile.subject, scope=["instagram"], evidence="Signed form in North's file ZEBRA")
    answer = check(client_for(bob), body_for(south_case, jane_profile))
    assert answer["covered_by"]["consent"] is None
    assert "ZEBRA" not in str(answer) and "North" not in str(answer)


# --- Read only, and no lock ------------------------------------------------------------------------


def test_a_write_inside_the_checks_read_only_block_is_undone_and_refused_on_postgresql(db):
    from django.db import DatabaseError, transaction

    from accounts.models import Team
    from evidence_service.db import read_only

    with transaction.atomic():
        with read_only():
            try:
                with transaction.atomic():
                    Team.objects.create(name="Written in a check")
                refused = False
            except DatabaseError:
                refused = True
        assert refused is (connection.vendor == "postgresql")
        assert not Team.objects.filter(name="Written in a check").exists()
        Team.objects.create(name="Written after it")  # the transaction may write again
    assert Team.objects.filter(name="Written after it").exists()


def test_a_check_costs_about_what_logging_does(alice_client, north_case, jane_profile):
    earlier_look(alice_client, north_case, jane_profile, days_ago=3)
    earlier_look(alice_client, north_case, jane_profile, days_ago=2)
    body = body_for(north_case, jane_profile)
    with CaptureQueriesContext(connection) as checking:
        check(alice_client, body)
    with CaptureQueriesContext(connection) as logging:
        log(alice_client, body)
    print(f"statements: check {len(checking)}, logging {len(logging)}")
    assert len(checking) <= len(logging) + 4, ([q["sql"] for q in checking], len(logging))


@pytest.mark.postgres
def test_a_check_takes_no_lock_so_it_never_waits_for_a_look_being_logged(alice_client, north_case, jane_profile):
    """Logging takes the person's lock (held until it commits) and locks the open flags it
    joins; a check takes neither, so it answers while another look at the person is being
    logged, and runs in a block the database keeps read-only."""
    earlier_look(alice_client, north_case, jane_profile, days_ago=3)
    earlier_look(alice_client, north_case, jane_profile, days_ago=2)
    body = body_for(north_case, jane_profile)

    def statements(url):
        with CaptureQueriesContext(connection) as captured:
            assert alice_client.post(url, body, format="json").status_code in (200, 201)
        return " ".join(str(query["sql"]) for query in captured).upper()

    checking, logging = statements(CHECK), statements("/api/v1/viewings/")
    assert "PG_ADVISORY" in logging and "FOR UPDATE" in logging
    assert "PG_ADVISORY" not in checking and "FOR UPDATE" not in checking
    assert "SET TRANSACTION READ ONLY" in checking
