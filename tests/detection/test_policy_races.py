"""The SRO's policy changes sent at once (a double-clicked save, two tabs) are made one
after the other: each answers 200 as a version of its own, consecutive, and each is
audited against the version it actually followed (found in review: the second answered
500, a duplicate version).

Run on a database of its own, by threads of one process that each ``PUT /policy/``
through the API: they see each other's commits, which the test's own transaction would
hide. So that the race is run every time and not only when the timing happens to fall so,
every request waits, once its input is checked, until all have got that far; and the
first to write its version holds its transaction open until every other is waiting for
its turn in the database."""

import json
import subprocess
import sys

import pytest
from django.db import connection

from bench.livedb import ROOT, live_database, manage

RACE = """
import json, os, threading, time

import psycopg
from django.db import connections
from django.test.utils import setup_test_environment
from rest_framework.test import APIClient

from accounts.models import User
from audit.models import AuditEvent
from detection import services
from detection.models import DetectionPolicy

setup_test_environment()
WRITERS = {writers}
User.objects.create_user("sam", email="sam@council.example", password="correct-horse-battery", role="sro")
signed_in = APIClient().post(
    "/api/v1/auth/token/", {{"username": "sam", "password": "correct-horse-battery"}}, format="json"
)
token = signed_in.json()["token"]
rules = DetectionPolicy.objects.order_by("-version").first().rules
rules["REPEAT_VIEWING"] = {{**rules["REPEAT_VIEWING"], "params": {{"threshold": 3, "window_days": 14}}}}
body = {{"rules": rules, "note": "Tighter repeat viewing"}}

checked = threading.Barrier(WRITERS, timeout=30)
validate_rules = services.validate_rules


def validate_together(rules):
    checked.wait()
    return validate_rules(rules)


def waiting_in_database():
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as watcher:
        return watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()[0]


first = threading.Lock()
seen_waiting = []
audit_record = services.audit_record


def record_once_the_others_wait(**kwargs):
    if kwargs["action"] == "policy.update" and first.acquire(blocking=False):
        deadline = time.monotonic() + 30
        while waiting_in_database() < WRITERS - 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        seen_waiting.append(waiting_in_database())
    return audit_record(**kwargs)


services.validate_rules = validate_together
services.audit_record = record_once_the_others_wait
answers = [None] * WRITERS


def put(n):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {{token}}")
    try:
        response = client.put("/api/v1/policy/", body, format="json")
        answers[n] = [response.status_code, response.json(), response["X-Request-ID"]]
    finally:
        connections.close_all()


threads = [threading.Thread(target=put, args=(n,)) for n in range(WRITERS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
events = AuditEvent.objects.filter(action="policy.update").order_by("id")
print(json.dumps({{
    "answers": answers,
    "seen_waiting": seen_waiting,
    "versions": list(DetectionPolicy.objects.order_by("version").values_list("version", flat=True)),
    "events": [{{"target_id": e.target_id, "request_id": e.request_id, **e.payload}} for e in events],
}}))
"""


@pytest.mark.postgres
def test_concurrent_policy_changes_become_consecutive_versions_each_audited(db, tmp_path):
    settings_dict = connection.settings_dict
    url = (
        f"postgresql://{settings_dict['USER']}@{settings_dict['HOST'] or 'localhost'}:{settings_dict['PORT'] or 5432}/x"
    )
    writers = 3
    with live_database(url, tmp_path, prefix="ces_policy") as env:
        race = subprocess.run(  # noqa: S603 - this interpreter running the project's manage.py
            [sys.executable, str(ROOT / "manage.py"), "shell", "-v", "0", "-c", RACE.format(writers=writers)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert race.returncode == 0, race.stderr
        result = json.loads(race.stdout.strip().splitlines()[-1])
        manage(env, "integrate_audit")
        verified = manage(env, "verify_audit", check=False)
    # The race was run: while the first change was being written, every other was waiting.
    assert result["seen_waiting"] == [writers - 1]
    assert [status for status, _body, _request in result["answers"]] == [200] * writers, result["answers"]
    # Versions 1 and 2 (issue 18's LATE_ENTRIES) come from the migrations.
    assert sorted(body["version"] for _status, body, _request in result["answers"]) == [3, 4, 5]
    assert result["versions"] == [1, 2, 3, 4, 5]
    events = result["events"]
    assert [(e["from_version"], e["to_version"], e["target_id"]) for e in events] == [
        (2, 3, "3"),
        (3, 4, "4"),
        (4, 5, "5"),
    ]
    # Each change is compared with the version it followed: the first changed the rule,
    # the others found it changed already.
    assert [e["changed_rules"] for e in events] == [["REPEAT_VIEWING"], [], []]
    # One event for each answer, recorded with that request's id and its version.
    answered = {request_id: body["version"] for _status, body, request_id in result["answers"]}
    assert {e["request_id"]: e["to_version"] for e in events} == answered
    assert verified.returncode == 0, verified.stderr
