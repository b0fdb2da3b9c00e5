"""Several processes appending audit events at once, each sequencing after its own commits
(so integrators race): the tree ends with every event, no gaps, no duplicates, no fork."""

import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from bench.livedb import ROOT, live_database, manage

WRITER = """
from django.db import transaction
from audit.services import AuditContext, audit_record
for i in range({count}):
    with transaction.atomic():
        audit_record(ctx=AuditContext.command("writer-{n}"), action="case.read", payload={{"i": i}}, subject_ids=[{n}])
"""


@pytest.mark.postgres
def test_concurrent_writers_never_fork_the_tree(db, tmp_path):
    url = (
        f"postgresql://{connection.settings_dict['USER']}@{connection.settings_dict['HOST'] or 'localhost'}:"
        f"{connection.settings_dict['PORT'] or 5432}/x"
    )
    writers, per_writer = 4, 60
    with live_database(url, tmp_path, prefix="ces_concurrency") as env:
        processes = [
            subprocess.Popen(  # noqa: S603 - this interpreter running the project's manage.py
                [sys.executable, str(ROOT / "manage.py"), "shell", "-c", WRITER.format(count=per_writer, n=n)],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(1, writers + 1)
        ]
        for process in processes:
            _out, err = process.communicate(timeout=180)
            assert process.returncode == 0, err
        manage(env, "integrate_audit")
        verified = manage(env, "verify_audit", check=False)
        assert verified.returncode == 0, verified.stderr
        assert f"audit log OK: {writers * per_writer} leaves" in verified.stdout
        counts = manage(
            env,
            "shell",
            "-v",
            "0",
            "-c",
            (
                "from audit.models import *;"
                "print(AuditEvent.objects.count(), AuditLeaf.objects.count(), AuditCheckpoint.objects.count(),"
                " AuditLeaf.objects.order_by('-index').values_list('index', flat=True).first())"
            ),
        ).stdout.split()
        events, leaves, checkpoints, last_index = map(int, counts)
        assert events == leaves == writers * per_writer and last_index == leaves - 1
        assert checkpoints >= 1
    assert settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
