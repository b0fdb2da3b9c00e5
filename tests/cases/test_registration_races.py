"""Practitioners registering the same thing at once (the same profile, the same person by
external id, the same case reference) get the answers they would get one after the other:
201 for the one that records it, then 200 for the same again or 409 for a conflict, each
with its audit event; one row is recorded, and nobody gets a 400 or a 500 (found by
probing: four registrations of one profile at once, and one answered 400 "That is not a
valid profile address.").

Run on a database of their own (one for the module), by threads of one process that each
post through the API: they see each other's commits, which the test's own transaction
would hide. So that the race is run every time and not only when the timing happens to
fall so, each request waits just before it validates its new row until all have got
there (so each has looked for the row and found none); then one goes on and commits while
the others wait until its row is committed, as the requests that lose a race do."""

import json
import subprocess
import sys
from contextlib import ExitStack

import pytest
from django.db import connection

from bench.livedb import ROOT, live_database, manage

SETUP = """
import json

from accounts.models import Team, User
from cases.models import Case, CaseSubject, Subject

north, south = Team.objects.create(name="North"), Team.objects.create(name="South")
for username, team in [("alice", north), ("carol", north), ("dave", north), ("erin", north), ("bob", south)]:
    user = User.objects.create_user(
        username, email=f"{username}@council.example", password="correct-horse-battery", role="practitioner"
    )
    user.teams.add(team)
alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")
north_case = Case.objects.create(reference="N-1", title="A family", team=north, created_by=alice)
south_case = Case.objects.create(reference="S-1", title="A family", team=south, created_by=bob)
people = {}
for name in ("jane", "john"):
    people[name] = Subject.objects.create(display_name=name.title() + " Doe", created_by=alice).pk
    CaseSubject.objects.create(case=north_case, subject_id=people[name], relationship="parent", linked_by=alice)
print(json.dumps({"north": north.pk, "north_case": north_case.pk, "south_case": south_case.pk, **people}))
"""

#: Sends the requests of ``RACE_SPEC`` at once, then reports the answers, the rows of the
#: model that match ``recorded``, the people linked to cases and the events written since.
RACE = """
import json, threading, time

from django.apps import apps
from django.db import connections
from django.test.utils import setup_test_environment
from rest_framework.test import APIClient

from audit.models import AuditEvent
from cases.models import CaseSubject

setup_test_environment()
spec = json.loads(RACE_SPEC)
model = apps.get_model(spec["model"])
recorded = model.objects.filter(**spec["recorded"])
since = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
links_since = CaseSubject.objects.order_by("-id").values_list("id", flat=True).first() or 0


def signed_in(username):
    client = APIClient()
    response = client.post(
        "/api/v1/auth/token/", {"username": username, "password": "correct-horse-battery"}, format="json"
    )
    client.credentials(HTTP_AUTHORIZATION="Token " + response.json()["token"])
    return client


requests = [(signed_in(username), path, body) for username, path, body in spec["requests"]]
arrived = threading.Barrier(len(requests), timeout=30)
full_clean = model.full_clean


def full_clean_in_turn(self, *args, **kwargs):
    # Every request has looked for the row and found none; one goes on, the others check
    # theirs once its row is committed.
    if arrived.wait() != 0:
        deadline = time.monotonic() + 30
        while not recorded.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return full_clean(self, *args, **kwargs)


answers = [None] * len(requests)


def post(n, client, path, body):
    try:
        response = client.post(path, body, format="json")
        answers[n] = [response.status_code, response.json()]
    finally:
        connections.close_all()


model.full_clean = full_clean_in_turn
threads = [threading.Thread(target=post, args=(n, *request)) for n, request in enumerate(requests)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
events = [
    {
        "action": event.action,
        "actor": event.actor_username,
        "outcome": event.outcome,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "subjects": sorted(event.subject_links.values_list("subject_id", flat=True)),
        "payload": event.payload,
    }
    for event in AuditEvent.objects.filter(id__gt=since).exclude(action__startswith="auth.").order_by("id")
]
print(json.dumps({
    "answers": answers,
    "rows": list(recorded.values()),
    "links": list(CaseSubject.objects.filter(id__gt=links_since).values_list("case_id", "subject_id")),
    "events": events,
}, default=str))
"""

PRACTITIONERS = ("alice", "carol", "dave", "erin")


@pytest.fixture(scope="module")
def _module_database():
    """The module's database and the ids of its people and cases, made once on first use
    (a migrated database takes seconds)."""
    with ExitStack() as stack:
        made = {}

        def get(url, data_dir):
            if not made:
                env = stack.enter_context(live_database(url, data_dir, prefix="ces_registration"))
                ids = json.loads(manage(env, "shell", "-v", "0", "-c", SETUP).stdout.strip().splitlines()[-1])
                made.update(env=env, ids=ids)
            return made["env"], made["ids"]

        yield get


@pytest.fixture
def world(_postgres_only, _module_database, tmp_path_factory):
    """The module's database (PostgreSQL only): the ids of North's case (``north_case``,
    with Jane and John, ``jane``, ``john``; practitioners alice, carol, dave and erin) and
    South's (``south_case``; bob)."""
    settings_dict = connection.settings_dict
    url = (
        f"postgresql://{settings_dict['USER']}@{settings_dict['HOST'] or 'localhost'}:{settings_dict['PORT'] or 5432}/x"
    )
    env, ids = _module_database(url, tmp_path_factory.mktemp("registration"))
    return {"env": env, **ids}


def race(world, *, model: str, recorded: dict, requests: list[tuple[str, str, dict]]) -> dict:
    """Send ``requests`` (username, path, body) at once, each stopping before it validates
    its new ``model`` row until all have got there; the others wait there until a row
    matching ``recorded`` is committed. The report of ``RACE``."""
    spec = json.dumps({"model": model, "recorded": recorded, "requests": requests})
    completed = subprocess.run(  # noqa: S603 - this interpreter running the project's manage.py
        [sys.executable, str(ROOT / "manage.py"), "shell", "-v", "0", "-c", f"RACE_SPEC = {spec!r}\n{RACE}"],
        env=world["env"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def statuses(result: dict) -> list[int]:
    return sorted(status for status, _body in result["answers"])


def actions(result: dict) -> list[str]:
    return sorted(event["action"] for event in result["events"])


@pytest.mark.postgres
def test_the_same_profile_registered_at_once_is_recorded_once_and_read_by_the_others(world):
    result = race(
        world,
        model="cases.Profile",
        recorded={"platform": "facebook", "handle": "janerace"},  # Facebook ignores the dot
        requests=[
            (username, f"/api/v1/subjects/{world['jane']}/profiles/", {"platform": "facebook", "handle": "Jane.Race"})
            for username in PRACTITIONERS
        ],
    )
    assert statuses(result) == [200, 200, 200, 201], result["answers"]
    [profile] = result["rows"]
    assert profile["subject_id"] == world["jane"]
    assert {body["id"] for _status, body in result["answers"]} == {profile["id"]}
    # As one after the other: the profile's creation, then a read of it by each of the others.
    assert actions(result) == ["profile.create"] + ["profile.read"] * 3
    assert {event["actor"] for event in result["events"]} == set(PRACTITIONERS)
    for event in result["events"]:
        assert (event["target_id"], event["subjects"]) == (str(profile["id"]), [world["jane"]])
        assert event["action"] == "profile.create" or event["payload"]["via"] == "registered again"


@pytest.mark.postgres
def test_a_profile_registered_at_once_to_two_people_is_one_persons_and_the_other_answers_409(world):
    result = race(
        world,
        model="cases.Profile",
        recorded={"platform": "x", "handle": "doe_race"},
        requests=[
            ("alice", f"/api/v1/subjects/{world['jane']}/profiles/", {"platform": "x", "handle": "@Doe_Race"}),
            ("carol", f"/api/v1/subjects/{world['john']}/profiles/", {"platform": "x", "handle": "doe_race"}),
        ],
    )
    assert statuses(result) == [201, 409], result["answers"]
    [profile] = result["rows"]
    refused = next(body for status, body in result["answers"] if status == 409)
    assert refused["code"] == "profile_belongs_to_another_subject" and list(refused["fields"]) == ["handle"]
    assert actions(result) == ["profile.create", "request.conflict"]
    # The refusal tells the caller the profile is known: it is in its owner's history.
    refusal = next(event for event in result["events"] if event["action"] == "request.conflict")
    assert refusal["outcome"] == "denied" and refusal["subjects"] == [profile["subject_id"]]
    assert (refusal["target_type"], refusal["target_id"]) == ("profile", str(profile["id"]))


@pytest.mark.postgres
def test_the_same_person_added_to_a_case_at_once_is_recorded_and_linked_once(world):
    body = {"display_name": "Mary Race", "relationship": "parent", "external_id": "LCS-RACE-1"}
    result = race(
        world,
        model="cases.Subject",
        recorded={"external_id": "LCS-RACE-1"},
        requests=[(username, f"/api/v1/cases/{world['north_case']}/subjects/", body) for username in PRACTITIONERS],
    )
    assert statuses(result) == [200, 200, 200, 201], result["answers"]
    [person] = result["rows"]
    assert result["links"] == [[world["north_case"], person["id"]]]
    assert {body["id"] for _status, body in result["answers"]} == {person["id"]}
    assert sorted(body["existing_subject"] for _status, body in result["answers"]) == [False, True, True, True]
    # As one after the other: created and linked once, then read by each of the others.
    assert actions(result) == ["subject.create", "subject.link"] + ["subject.read"] * 3
    for event in result["events"]:
        assert event["subjects"] == [person["id"]]
        assert event["action"] != "subject.read" or event["payload"]["already_linked"] is True


@pytest.mark.postgres
def test_a_person_added_at_once_by_another_team_with_other_details_is_not_shown_to_them(world):
    result = race(
        world,
        model="cases.Subject",
        recorded={"external_id": "LCS-RACE-2"},
        requests=[
            (
                "alice",
                f"/api/v1/cases/{world['north_case']}/subjects/",
                {"display_name": "Mary Race", "relationship": "parent", "external_id": "LCS-RACE-2"},
            ),
            (
                "bob",
                f"/api/v1/cases/{world['south_case']}/subjects/",
                {"display_name": "Someone Else", "relationship": "relative", "external_id": "LCS-RACE-2"},
            ),
        ],
    )
    # Whoever is first records the person; the other team does not know their name.
    assert statuses(result) == [201, 409], result["answers"]
    [person] = result["rows"]
    assert len(result["links"]) == 1
    refused = next(body for status, body in result["answers"] if status == 409)
    assert refused["code"] == "subject_details_mismatch" and list(refused["fields"]) == ["external_id"]
    shown = json.dumps({key: value for key, value in refused.items() if key != "request_id"})
    assert person["display_name"] not in shown
    assert actions(result) == ["subject.create", "subject.link", "subject.link_refused"]
    refusal = next(event for event in result["events"] if event["action"] == "subject.link_refused")
    assert refusal["outcome"] == "denied" and refusal["subjects"] == [person["id"]]


@pytest.mark.postgres
def test_the_same_case_reference_opened_at_once_is_one_case_and_the_others_answer_409(world):
    result = race(
        world,
        model="cases.Case",
        recorded={"reference": "N-RACE"},
        requests=[
            (username, "/api/v1/cases/", {"reference": "N-RACE", "title": "A family", "team": world["north"]})
            for username in PRACTITIONERS
        ],
    )
    assert statuses(result) == [201, 409, 409, 409], result["answers"]
    [case] = result["rows"]
    refusals = [body for status, body in result["answers"] if status == 409]
    assert all(body["code"] == "conflict" and list(body["fields"]) == ["reference"] for body in refusals)
    assert actions(result) == ["case.create"] + ["request.conflict"] * 3
    assert next(event for event in result["events"] if event["action"] == "case.create")["target_id"] == str(case["id"])


@pytest.mark.postgres
def test_guesses_sent_at_once_are_refused_no_more_than_the_days_limit(world):
    created = race(
        world,
        model="cases.Subject",
        recorded={"external_id": "NHS-GUESS-1"},
        requests=[
            (
                "alice",
                f"/api/v1/cases/{world['north_case']}/subjects/",
                {
                    "display_name": "Gina Guess",
                    "relationship": "parent",
                    "external_id": "NHS-GUESS-1",
                    "date_of_birth": "1990-02-01",
                },
            )
        ],
    )
    assert statuses(created) == [201]
    result = race(
        world,
        model="cases.Subject",
        recorded={"external_id": "NHS-GUESS-1"},
        requests=[
            (
                "bob",
                f"/api/v1/cases/{world['south_case']}/subjects/",
                {
                    "display_name": "Gina Guess",
                    "relationship": "relative",
                    "external_id": "nhs guess 1",
                    "date_of_birth": f"1990-01-{day:02d}",
                },
            )
            for day in range(1, 13)
        ],
    )
    # However the twelve interleave, each counts the refusals committed before it: no more
    # than the day's five (fewer if bob was refused earlier in this module's database) are
    # refused as wrong, the rest are out of attempts.
    wrong = statuses(result).count(409)
    assert 1 <= wrong <= 5 and statuses(result) == [409] * wrong + [429] * (12 - wrong), result["answers"]
    refused = [event for event in result["events"] if event["action"] == "subject.link_refused"]
    assert len(refused) == wrong and {event["actor"] for event in refused} == {"bob"}
    assert not result["links"]
