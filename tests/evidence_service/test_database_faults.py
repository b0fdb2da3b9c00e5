"""The database connection dropped in the middle of a request: a clean 503 in the error
shape, nothing half-written, and the next request served without a restart."""

import json

import pytest
from django.db import connection

from bench.livedb import live_database, manage

SCENARIO = """
import json
import psycopg
from django.db import connection
from django.test import Client
from accounts.models import Team, User
from cases.models import Case, CaseSubject, Profile, Subject, Viewing
import cases.services

team = Team.objects.create(name="North")
alice = User.objects.create_user("alice", password="correct-horse-battery", role="practitioner")
alice.teams.add(team)
case = Case.objects.create(reference="N-1", title="t", team=team, created_by=alice)
jane = Subject.objects.create(display_name="Jane", created_by=alice)
CaseSubject.objects.create(case=case, subject=jane, relationship="parent", linked_by=alice)
profile = Profile.objects.create(subject=jane, platform="x", handle="jane", url="https://x.com/jane", created_by=alice)

client = Client()
token = client.post("/api/v1/auth/token/", {{"username": "alice", "password": "correct-horse-battery"}},
                    content_type="application/json").json()["token"]
body = {{"case": case.pk, "profile": profile.pk, "purpose": "risk_assessment", "justification": "j",
        "access_method": "logged_out_public", "interaction": "none", "information_recorded": "",
        "third_party_information": ""}}
original = cases.services.audit_record

def drop_connection_then_record(**kwargs):
    # The viewing row is written; now the database connection dies, as when a server
    # restarts or a network path drops, before the audit event and the commit.
    pid = connection.connection.info.backend_pid
    with psycopg.connect({admin_url!r}, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    return original(**kwargs)

cases.services.audit_record = drop_connection_then_record
failed = client.post("/api/v1/viewings/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {{token}}")
cases.services.audit_record = original
after_failure = Viewing.objects.count()
recovered = client.post("/api/v1/viewings/", body, content_type="application/json",
                        HTTP_AUTHORIZATION=f"Token {{token}}")
print("RESULT", json.dumps({{"failed_status": failed.status_code, "failed_body": failed.json(),
                            "viewings_after_failure": after_failure, "recovered_status": recovered.status_code,
                            "viewings_after_recovery": Viewing.objects.count()}}))
"""


@pytest.mark.postgres
def test_a_connection_dropped_mid_request_answers_503_and_the_service_recovers(db, tmp_path):
    settings_dict = connection.settings_dict
    base = (
        f"postgresql://{settings_dict['USER']}@{settings_dict['HOST'] or 'localhost'}:{settings_dict['PORT'] or 5432}"
    )
    with live_database(f"{base}/x", tmp_path, prefix="ces_faults") as env:
        env = {**env, "ALLOWED_HOSTS": "testserver", "DATABASE_CONN_MAX_AGE": "60"}
        output = manage(env, "shell", "-v", "0", "-c", SCENARIO.format(admin_url=f"{base}/postgres")).stdout
    result = json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])
    assert result["failed_status"] == 503
    assert result["failed_body"]["code"] == "service_unavailable" and result["failed_body"]["request_id"]
    assert result["viewings_after_failure"] == 0  # nothing half-written
    assert result["recovered_status"] == 201 and result["viewings_after_recovery"] == 1
