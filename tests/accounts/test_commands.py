import json

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Team, User
from audit.models import AuditEvent


def test_create_user_creates_missing_teams_and_is_audited(db, capsys):
    call_command(
        "create_user",
        "dora",
        "--role",
        "practitioner",
        "--team",
        "East",
        "--team",
        "West",
        "--password",
        "a-long-password",
    )
    user = User.objects.get(username="dora")
    assert user.role == "practitioner" and user.check_password("a-long-password")
    assert sorted(user.teams.values_list("name", flat=True)) == ["East", "West"]
    assert sorted(AuditEvent.objects.values_list("action", flat=True)) == ["team.create", "team.create", "user.create"]
    created = AuditEvent.objects.get(action="user.create")
    assert "a-long-password" not in json.dumps(created.payload)
    assert "Created dora" in capsys.readouterr().out


def test_running_create_user_again_updates_the_user(db):
    call_command("create_user", "dora", "--role", "practitioner", "--team", "East", "--password", "a-long-password")
    call_command("create_user", "dora", "--role", "ripa_officer", "--password", "another-long-one")
    user = User.objects.get(username="dora")
    assert user.role == "ripa_officer" and user.check_password("another-long-one")
    assert user.teams.count() == 0
    assert Team.objects.filter(name="East").exists()
    assert AuditEvent.objects.filter(action="user.update").count() == 1


def test_create_user_refuses_a_weak_password_and_writes_nothing(db):
    with pytest.raises(CommandError, match="too short"):
        call_command("create_user", "dora", "--role", "auditor", "--password", "short")
    assert not User.objects.exists() and not AuditEvent.objects.exists()


def test_seed_demo_creates_every_role_and_is_idempotent(db, settings, tmp_path, capsys):
    settings.DATA_DIR = tmp_path
    call_command("seed_demo", "--allow-without-debug")
    first = capsys.readouterr().out
    users_before = User.objects.count()
    events_before = AuditEvent.objects.count()
    call_command("seed_demo", "--allow-without-debug")
    second = capsys.readouterr().out
    assert first == second
    assert User.objects.count() == users_before and AuditEvent.objects.count() == events_before
    assert set(User.objects.values_list("role", flat=True)) == {
        "practitioner",
        "ripa_officer",
        "sro",
        "auditor",
        "admin",
    }
    credentials = json.loads((tmp_path / "demo-credentials.json").read_text())
    assert (tmp_path / "demo-credentials.json").stat().st_mode & 0o777 == 0o600
    for username, password in credentials.items():
        assert f"{username}" in first and password in first
        assert User.objects.get(username=username).check_password(password)


def test_seed_demo_refuses_without_debug(db):
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")
