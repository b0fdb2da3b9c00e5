"""Many processes logging viewings of the same person at once: exactly one open
REPEAT_VIEWING flag absorbs them all (no duplicates from races), and the audit log's tree
verifies with no gaps."""

import subprocess
import sys

import pytest
from django.db import connection

from bench.livedb import ROOT, live_database, manage

SETUP = """
from accounts.models import Team, User
from cases.models import Case, CaseSubject, Profile, Subject
team = Team.objects.create(name="North")
officer = User.objects.create_user("olivia", role="ripa_officer", email="olivia@council.example")
case = None
for n in range(1, {writers} + 1):
    user = User.objects.create_user(f"worker{{n}}", role="practitioner", email=f"w{{n}}@council.example")
    user.teams.add(team)
    case = case or Case.objects.create(reference="N-1", title="t", team=team, created_by=user)
subject = Subject.objects.create(display_name="Jane", created_by=user)
CaseSubject.objects.create(case=case, subject=subject, relationship="parent", linked_by=user)
Profile.objects.create(subject=subject, platform="instagram", handle="jane", url="https://www.instagram.com/jane/",
                       created_by=user)
"""

WRITER = """
from accounts.models import User
from audit.services import AuditContext
from cases.models import Case, Profile
from cases.services import ViewingDetails, viewing_log
user = User.objects.get(username="worker{n}")
case, profile = Case.objects.get(reference="N-1"), Profile.objects.get(handle="jane")
for i in range({count}):
    viewing_log(ctx=AuditContext(actor=user), details=ViewingDetails(
        case=case, profile=profile, purpose="risk_assessment", justification=f"look {{i}}",
        access_method="logged_out_public", interaction="none", information_recorded="",
        third_party_information=""))
"""

CHECK = (
    "from detection.models import Flag, FlagViewing; from cases.models import Viewing;"
    "print(Flag.objects.filter(rule='REPEAT_VIEWING', status='open').count(), Flag.objects.count(),"
    " FlagViewing.objects.count(), Viewing.objects.count())"
)


@pytest.mark.postgres
def test_concurrent_viewings_of_one_person_share_one_open_flag(db, tmp_path):
    settings_dict = connection.settings_dict
    url = (
        f"postgresql://{settings_dict['USER']}@{settings_dict['HOST'] or 'localhost'}:{settings_dict['PORT'] or 5432}/x"
    )
    writers, per_writer = 4, 15
    with live_database(url, tmp_path, prefix="ces_flags") as env:
        manage(env, "shell", "-v", "0", "-c", SETUP.format(writers=writers))
        processes = [
            subprocess.Popen(  # noqa: S603 - this interpreter running the project's manage.py
                [
                    sys.executable,
                    str(ROOT / "manage.py"),
                    "shell",
                    "-v",
                    "0",
                    "-c",
                    WRITER.format(n=n, count=per_writer),
                ],
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
        open_flags, flags, links, viewings = map(int, manage(env, "shell", "-v", "0", "-c", CHECK).stdout.split())
        total = writers * per_writer
        assert viewings == total
        assert open_flags == 1 and flags == 1
        assert links == total - 1  # every look after the first joined the one flag
        manage(env, "integrate_audit")
        verified = manage(env, "verify_audit", check=False)
        assert verified.returncode == 0, verified.stderr
