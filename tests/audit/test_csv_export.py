"""The auditor's CSV export of the event log: every matching event, in batches, each batch
reporting progress to the gunicorn worker, so that an export longer than the worker
timeout is not cut off part way."""

import contextlib
import csv
import io
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from audit.api import views as audit_views
from audit.models import AuditEvent
from audit.services import AuditContext, audit_record
from bench.livedb import live_database, manage
from evidence_service import workers


class CountingWorker:
    def __init__(self) -> None:
        self.notified = 0

    def notify(self) -> None:
        self.notified += 1


@pytest.fixture
def counting_worker():
    worker = CountingWorker()
    workers.serving_in(worker)
    yield worker
    workers.serving_in(None)


def record(n: int, subjects: list[int]) -> None:
    audit_record(
        ctx=AuditContext(actor=None),
        action="case.read",
        target_type="case",
        target_id=n,
        subject_ids=subjects,
        payload={"n": n, "text": "=SUM(A1)" if n == 0 else "plain"},
    )


def test_the_export_has_every_event_in_batches_each_reporting_progress(
    audrey, client_for, counting_worker, monkeypatch
):
    monkeypatch.setattr(audit_views, "EXPORT_BATCH", 3)
    for n in range(7):
        record(n, [30 + n, 10 + n] if n % 2 else [])
    client = client_for(audrey)
    response = client.get("/api/v1/audit/events/", {"format": "csv", "action": "case.read"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    events = list(AuditEvent.objects.filter(action="case.read").order_by("id"))
    assert [int(row["sequence"]) for row in rows] == [event.id for event in events]
    assert [row["subjects"] for row in rows[:2]] == ["", f"{11} {31}"]  # sorted, as in the JSON list
    assert rows[0]["payload"] == '{"n": 0, "text": "=SUM(A1)"}'
    assert rows[0]["actor_username"] == events[0].actor_username
    # 7 events in batches of 3: three batches, each followed by a report to the worker.
    assert counting_worker.notified == 3
    # The JSON list gives the same events and people.
    listed = client.get("/api/v1/audit/events/", {"action": "case.read"}).json()["results"]
    assert [" ".join(map(str, event["subjects"])) for event in listed] == [row["subjects"] for row in rows]


def test_outside_gunicorn_reporting_progress_does_nothing():
    workers.serving_in(None)
    workers.still_working()  # no worker: nothing to tell, and no error


# --- Under gunicorn, with a worker timeout shorter than the export ------------------------

EVENTS = """
from django.db import connection
with connection.cursor() as c:
    c.execute(\"\"\"INSERT INTO audit_auditevent (occurred_at, actor_username, actor_role, action, outcome, target_type,
                     target_id, ip_address, user_agent, request_id, payload, commitment_salt)
                 SELECT now(), 'user' || (g % 20), 'practitioner', 'case.read', 'success', 'case', g::text,
                        '10.0.0.1', 'test', md5(g::text), jsonb_build_object('n', g, 'note', repeat('x', 120)),
                        decode(md5(g::text), 'hex')
                 FROM generate_series(1, {count}) g\"\"\")
from datetime import timedelta
from django.utils import timezone
from accounts.models import ApiToken, User, hash_token
auditor = User.objects.create_user("audrey", role="auditor")
ApiToken.objects.create(user=auditor, key_hash=hash_token("{token}"), expires_at=timezone.now() + timedelta(hours=1))
"""


@pytest.mark.postgres
def test_an_export_longer_than_the_worker_timeout_arrives_whole(db, tmp_path):
    """A sync worker reports to gunicorn's arbiter only between requests; without the
    export's reports the arbiter would kill it after ``--timeout`` seconds and the CSV would
    stop part way. The client here reads at most 1 MB a second, so the export lasts well
    beyond the 2-second timeout on any machine."""
    import httpx

    from bench.load import free_loopback_port, start, stop, wait_until_healthy

    settings_dict = connection.settings_dict
    url = f"postgresql://{settings_dict['USER']}@{settings_dict['HOST'] or 'localhost'}:{settings_dict['PORT']}/x"
    count, token, timeout = 20_000, "export-test-token-" + "x" * 20, 2
    with live_database(url, tmp_path, prefix="ces_export") as env, contextlib.ExitStack() as cleanup:
        env = {**env, "REDIS_URL": "", "ALLOWED_HOSTS": "127.0.0.1"}
        manage(env, "shell", "-v", "0", "-c", EVENTS.format(count=count, token=token))
        port = free_loopback_port()
        log = Path(tmp_path) / "gunicorn.log"
        command = ["-m", "gunicorn", "evidence_service.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        server = start([sys.executable, *command, "--workers", "1", "--timeout", str(timeout)], env, log)
        cleanup.callback(stop, server)
        wait_until_healthy(f"http://127.0.0.1:{port}", server, log)

        started, received = time.monotonic(), bytearray()
        with httpx.stream(
            "GET",
            f"http://127.0.0.1:{port}/api/v1/audit/events/?format=csv&action=case.read",
            headers={"Authorization": f"Token {token}"},
            timeout=60,
        ) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw(64 * 1024):
                received += chunk
                time.sleep(len(chunk) / 1_000_000)  # about 1 MB a second at most
        took = time.monotonic() - started
        rows = list(csv.reader(io.StringIO(received.decode())))
        assert took > 2 * timeout, f"the export took {took:.1f} s: not long enough to test the timeout"
        assert len(rows) == 1 + count, f"{len(rows) - 1} of {count} rows arrived in {took:.1f} s"
        assert rows[-1][0] == str(count)
        assert "WORKER TIMEOUT" not in log.read_text()
