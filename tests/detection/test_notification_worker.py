"""Notifications delivered by a real Celery worker through a real Redis, into a throwaway
PostgreSQL database that every process sees: the email arrives; and when Redis is down as
the notification is queued, it still arrives once Redis is back and the periodic resend
has run.

Each module run starts its own ``redis-server`` on a free loopback port (never the
machine's Redis) and one worker (solo pool); emails are written to files
(``EMAIL_FILE_PATH``). Every wait has a deadline, and every process is stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings

from bench.livedb import ROOT, live_database, manage
from detection.notifications import ENQUEUE_CONNECT_TIMEOUT_SECONDS

pytestmark = pytest.mark.postgres

DEADLINE = 30.0
#: Redis visibility timeout of the worker-crash test's workers (see worker_support.py).
VISIBILITY_TIMEOUT_SECONDS = 2

SETUP = """
from accounts.models import User
User.objects.create(username="olivia", role="ripa_officer", email="olivia@council.example")
"""

QUEUE = """
from django.db import transaction
from accounts.models import User
from detection.notifications import notification_queue
with transaction.atomic():
    notification = notification_queue(
        recipient=User.objects.get(username="olivia"), subject_line="{subject}", body="A flag needs your decision."
    )
print(notification.pk)
"""

LOG_VIEWING = """
from accounts.models import Team, User
from audit.services import AuditContext
from cases.models import Case, CaseSubject, Profile, Subject
from cases.services import ViewingDetails, viewing_log
from detection.models import Notification
team = Team.objects.create(name="North")
alice = User.objects.create(username="alice", role="practitioner", email="alice@council.example")
alice.teams.add(team)
case = Case.objects.create(reference="N-9", title="A family", team=team, created_by=alice)
jane = Subject.objects.create(display_name="Jane", created_by=alice)
CaseSubject.objects.create(case=case, subject=jane, relationship="parent", linked_by=alice)
profile = Profile.objects.create(subject=jane, platform="facebook", handle="jane.doe",
                                 url="https://www.facebook.com/jane.doe", created_by=alice)
viewing = viewing_log(ctx=AuditContext(actor=alice), details=ViewingDetails(
    case=case, profile=profile, purpose="evidence_gathering", justification="Preparing for the hearing",
    access_method="logged_out_public", interaction="none", information_recorded="", third_party_information=""))
print(Notification.objects.get(flag__flag_viewings__viewing=viewing, recipient__username="olivia").pk)
"""

KEPT_CONNECTION = """
import pathlib, time
from django.db import transaction
from accounts.models import User
from detection.notifications import notification_queue
signals = pathlib.Path({signals!r})
for n in range(1, 5):
    deadline = time.monotonic() + 60
    while not (signals / f"go-{{n}}").exists():
        assert time.monotonic() < deadline, n
        time.sleep(0.05)
    started = time.monotonic()
    with transaction.atomic():
        notification = notification_queue(
            recipient=User.objects.get(username="olivia"), subject_line={subject!r} + f" {{n}}", body="A flag."
        )
    (signals / f"queued-{{n}}").write_text(f"{{notification.pk}} {{time.monotonic() - started}}")
"""

RESEND = """
from detection.notifications import notifications_resend_pending
print(notifications_resend_pending(older_than_seconds=0))
"""


def wait_for(condition: Callable[[], object], what: str, timeout: float = DEADLINE, logs: Callable[[], str] = str):
    """Poll ``condition`` until it answers something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{logs()}")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class RedisServer:
    """A ``redis-server`` of our own on a loopback port, with no persistence."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port, self.workdir = port, workdir
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(  # noqa: S603 - the redis-server binary, fixed arguments
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(self.answers, f"redis-server on port {self.port}", timeout=10, logs=self.log)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        stop(self.process)
        wait_for(lambda: not self.answers(), "redis-server to stop", timeout=5, logs=self.log)

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@dataclass
class Deployment:
    env: dict[str, str]
    mail_dir: Path
    redis: RedisServer
    worker_log: Path

    def shell(self, code: str, env: dict[str, str] | None = None) -> str:
        """Run ``code`` in ``manage.py shell`` as the web app would; it must exit 0."""
        done = manage(env or self.env, "shell", "-v", "0", "-c", code, check=False)
        assert done.returncode == 0, f"manage.py shell failed:\n{done.stderr}"
        return done.stdout.strip()

    def notification(self, notification_id: int) -> tuple[str, int, int]:
        """(status, attempts, notification.sent events) straight from the database."""
        with psycopg.connect(self.env["DATABASE_URL"]) as conn:
            status, attempts = conn.execute(
                "SELECT status, attempts FROM detection_notification WHERE id = %s", [notification_id]
            ).fetchone()
            (sent_events,) = conn.execute(
                "SELECT count(*) FROM audit_auditevent WHERE action = 'notification.sent'"
                " AND target_type = 'notification' AND target_id = %s",
                [str(notification_id)],
            ).fetchone()
        return status, attempts, sent_events

    def mails_with(self, text: str) -> list[str]:
        found = []
        for path in self.mail_dir.glob("*.log"):
            content = path.read_text(errors="replace")
            if text in content:
                found.append(content)
        return found

    def logs(self) -> str:
        worker = self.worker_log.read_text(errors="replace")[-6000:] if self.worker_log.exists() else ""
        return f"--- worker log (tail)\n{worker}\n--- redis log (tail)\n{self.redis.log()}"


def start_worker(env: dict[str, str], log_path: Path, logs: Callable[[], str], app: str = "evidence_service"):
    """A Celery worker as production runs it (one process, the default queue), once ready."""
    with open(log_path, "ab") as log:
        worker = subprocess.Popen(  # noqa: S603 - this interpreter running Celery
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                app,
                "worker",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "-Q",
                "celery",
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "INFO",
            ],  # fmt: skip
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: worker.poll() is not None or " ready." in log_path.read_text(errors="replace"),
            "the Celery worker to be ready",
            logs=logs,
        )
        assert worker.poll() is None, f"the worker exited\n{logs()}"
    except BaseException:
        stop(worker)
        raise
    return worker


def _database_url() -> str:
    db = settings.DATABASES["default"]
    user = quote(db.get("USER") or "postgres")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    return f"postgresql://{user}{password}@{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/postgres"


@pytest.fixture(scope="module")
def deployment(django_db_setup, tmp_path_factory) -> Iterator[Deployment]:
    """A migrated live database, a Redis of our own and one Celery worker, shared by the
    tests in this module (starting them is most of the cost). The tests also ask for
    ``db`` by name: pytest-django sets up the test database (which ``postgres`` tests check
    the engine of) only for tests that request it directly."""
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        if os.environ.get("CES_REQUIRE_POSTGRES") == "1":
            pytest.fail("CES_REQUIRE_POSTGRES=1 but the tests are not running on PostgreSQL")
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed")
    base = tmp_path_factory.mktemp("notify")
    mail_dir = base / "mail"
    mail_dir.mkdir()
    redis = RedisServer(free_port(), base)
    worker: subprocess.Popen | None = None
    with live_database(_database_url(), base / "data", prefix="ces_notify") as live_env:
        env = dict(
            live_env,
            REDIS_URL=f"redis://127.0.0.1:{redis.port}/0",
            CELERY_TASK_ALWAYS_EAGER="0",
            EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
            EMAIL_FILE_PATH=str(mail_dir),
        )
        deployment = Deployment(env=env, mail_dir=mail_dir, redis=redis, worker_log=base / "worker.log")
        try:
            redis.start()
            deployment.shell(SETUP)
            worker = start_worker(env, deployment.worker_log, deployment.logs)
            yield deployment
        finally:
            stop(worker)
            stop(redis.process)


def _queue(deployment: Deployment, subject: str, env: dict[str, str] | None = None) -> int:
    return int(deployment.shell(QUEUE.format(subject=subject), env=env).splitlines()[-1])


def _wait_until_delivered(deployment: Deployment, notification_id: int, subject: str) -> list[str]:
    wait_for(
        lambda: deployment.notification(notification_id)[0] == "sent",
        f"notification {notification_id} to be sent",
        logs=deployment.logs,
    )
    return wait_for(lambda: deployment.mails_with(subject), f"the email {subject!r}", logs=deployment.logs)


def test_a_worker_emails_a_queued_notification_once(db, deployment):
    subject = "[N-1] Flag to decide (worker)"
    started = time.monotonic()

    notification_id = _queue(deployment, subject)
    mails = _wait_until_delivered(deployment, notification_id, subject)

    assert len(mails) == 1
    assert "To: olivia@council.example" in mails[0]
    assert deployment.notification(notification_id) == ("sent", 1, 1)
    assert time.monotonic() - started < DEADLINE


def test_a_notification_queued_while_redis_is_down_is_delivered_once_redis_is_back(db, deployment):
    subject = "[N-2] Flag to decide (outage)"
    deployment.redis.stop()
    try:
        # The web app commits while the broker is down: nothing fails, the row waits.
        notification_id = _queue(deployment, subject)
        assert deployment.notification(notification_id) == ("pending", 0, 0)
    finally:
        deployment.redis.start()  # the same port: the worker reconnects by itself

    # What Celery beat does every minute.
    assert deployment.shell(RESEND).splitlines()[-1] == "1"
    mails = _wait_until_delivered(deployment, notification_id, subject)

    assert len(mails) == 1
    assert "To: olivia@council.example" in mails[0]
    assert deployment.notification(notification_id) == ("sent", 1, 1)
    # Nothing left for the periodic task.
    assert deployment.shell(RESEND).splitlines()[-1] == "0"


def test_a_viewing_logged_while_redis_is_down_still_ends_in_a_delivered_notification(db, deployment):
    """The whole path: a practitioner logs a viewing that raises a flag while the broker
    is down; the viewing, the flag and the owed email are all committed, and once Redis is
    back the periodic resend and the worker deliver it."""
    deployment.redis.stop()
    try:
        notification_id = int(deployment.shell(LOG_VIEWING).splitlines()[-1])
        assert deployment.notification(notification_id) == ("pending", 0, 0)
    finally:
        deployment.redis.start()
    assert deployment.shell(RESEND).splitlines()[-1] == "1"
    mails = _wait_until_delivered(deployment, notification_id, "Evidence gathering on case N-9")
    assert len(mails) == 1 and "To: olivia@council.example" in mails[0]


def test_one_process_queues_through_a_broker_restart(db, deployment, tmp_path):
    """A process keeps its broker connection between notifications. After Redis restarts,
    the next notification is still queued at once (the Redis client reconnects the kept
    connection). While Redis is down, queuing gives up at once and the row waits for the
    periodic task; the first notification after Redis is back is queued at once."""
    subject = "[N-4] Flag to decide (broker restart)"
    signals = tmp_path / "signals"
    signals.mkdir()
    process = subprocess.Popen(  # noqa: S603 - this interpreter running the project's manage.py
        [sys.executable, str(ROOT / "manage.py"), "shell", "-v", "0", "-c"]
        + [KEPT_CONNECTION.format(signals=str(signals), subject=subject)],
        env=deployment.env,
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )

    def queue(n: int) -> tuple[int, float]:
        (signals / f"go-{n}").touch()
        done = signals / f"queued-{n}"
        wait_for(lambda: done.exists() or process.poll() is not None, f"notification {n} to be made")
        assert done.exists(), process.communicate()[1]
        notification_id, seconds = done.read_text().split()
        return int(notification_id), float(seconds)

    try:
        first, _seconds = queue(1)
        _wait_until_delivered(deployment, first, f"{subject} 1")
        deployment.redis.stop()
        deployment.redis.start()
        second, _seconds = queue(2)  # on the kept connection, which Redis closed
        _wait_until_delivered(deployment, second, f"{subject} 2")
        deployment.redis.stop()
        try:
            third, seconds_while_down = queue(3)
        finally:
            deployment.redis.start()
        fourth, _seconds = queue(4)
        _wait_until_delivered(deployment, fourth, f"{subject} 4")
        process.wait(timeout=DEADLINE)
        errors = process.stderr.read()
    finally:
        stop(process)
    assert process.returncode == 0, errors
    assert seconds_while_down < 2 * ENQUEUE_CONNECT_TIMEOUT_SECONDS
    assert errors.count("stays pending") == 1, errors
    assert deployment.notification(third) == ("pending", 0, 0)
    assert deployment.shell(RESEND).splitlines()[-1] == "1"
    _wait_until_delivered(deployment, third, f"{subject} 3")
    assert [deployment.notification(n) for n in (first, second, third, fourth)] == [("sent", 1, 1)] * 4


def test_a_notification_whose_worker_is_killed_mid_send_is_delivered_by_the_next_worker(db, deployment, tmp_path):
    """Late acknowledgement: the message stays in Redis until the task has run, so a worker
    killed mid-send (SIGKILL: no chance to hand it back) leaves it to be delivered again.
    Runs on its own Redis database, away from the module's worker, with a test app whose
    visibility timeout is 2 s instead of an hour and a mail backend that can be held."""
    subject = "[N-3] Flag to decide (worker killed)"
    hold = tmp_path / "hold"
    env = dict(
        deployment.env,
        REDIS_URL=f"redis://127.0.0.1:{deployment.redis.port}/1",
        EMAIL_BACKEND="tests.detection.worker_support.HoldingFileEmailBackend",
        NOTIFY_HOLD_FILE=str(hold),
        NOTIFY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT_SECONDS),
    )
    logs = {"first": tmp_path / "first-worker.log", "second": tmp_path / "second-worker.log"}

    def worker_logs() -> str:
        return "\n".join(
            f"--- {name} worker log (tail)\n{path.read_text(errors='replace')[-4000:] if path.exists() else ''}"
            for name, path in logs.items()
        )

    first = second = None
    try:
        hold.touch()
        first = start_worker(env, logs["first"], worker_logs, app="tests.detection.worker_support")
        notification_id = _queue(deployment, subject, env=env)
        wait_for((tmp_path / "sending").exists, "the first worker to start sending", logs=worker_logs)

        first.kill()  # SIGKILL, mid-send
        first.wait(timeout=5)
        hold.unlink()
        # Its transaction died with it: nothing recorded, nothing sent.
        assert deployment.notification(notification_id) == ("pending", 0, 0)
        assert not deployment.mails_with(subject)

        # The next worker, as it starts, hands out again what a dead one took more than the
        # visibility timeout ago.
        time.sleep(VISIBILITY_TIMEOUT_SECONDS + 1)
        second = start_worker(env, logs["second"], worker_logs, app="tests.detection.worker_support")
        mails = _wait_until_delivered(deployment, notification_id, subject)
    finally:
        stop(first)
        stop(second)

    assert len(mails) == 1
    assert deployment.notification(notification_id) == ("sent", 1, 1)
    assert "detection.send_notification" in logs["second"].read_text()
