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


# --- Email address, full name and grade -----------------------------------------------------------


def test_create_user_records_the_email_address_full_name_and_grade_and_audits_them(db, capsys):
    call_command(
        "create_user",
        "olga",
        "--role",
        "ripa_officer",
        "--password",
        "a-long-password",
        "--email",
        " Olga@Council.EXAMPLE ",
        "--full-name",
        "Olga Okafor",
        "--grade",
        "Head of Legal Services",
    )
    user = User.objects.get(username="olga")
    assert (user.email, user.full_name, user.grade) == ("Olga@council.example", "Olga Okafor", "Head of Legal Services")
    assert user.get_full_name() == "Olga Okafor"
    event = AuditEvent.objects.get(action="user.create")
    assert event.payload["email"] == "Olga@council.example"
    assert (event.payload["full_name"], event.payload["grade"]) == ("Olga Okafor", "Head of Legal Services")
    out = capsys.readouterr()
    assert "Olga@council.example" in out.out and "no email address" not in out.err


def test_create_user_without_an_email_address_warns_that_no_notification_can_reach_them(db, capsys):
    call_command("create_user", "dora", "--role", "practitioner", "--password", "a-long-password")
    assert "no notification can reach them" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["not-an-address", "dora@", "dora@example.org\nBcc: x@example.org", "a b@c.org"])
def test_create_user_refuses_a_malformed_email_address_naming_it_and_writes_nothing(db, address):
    with pytest.raises(CommandError, match="email: Enter a valid email address"):
        call_command("create_user", "dora", "--role", "auditor", "--password", "a-long-password", "--email", address)
    assert not User.objects.exists() and not AuditEvent.objects.exists()


def test_create_user_refuses_a_full_name_with_a_line_break(db):
    with pytest.raises(CommandError, match="full_name: May not contain line breaks"):
        call_command(
            "create_user", "dora", "--role", "auditor", "--password", "a-long-password", "--full-name", "Dora\nX"
        )
    assert not User.objects.exists()


def test_update_user_changes_the_address_name_and_grade_and_audits_old_and_new(db, capsys):
    call_command(
        "create_user", "olga", "--role", "ripa_officer", "--password", "a-long-password", "--email", "o@example.org"
    )
    call_command(
        "update_user", "olga", "--email", "olga@example.org", "--full-name", "Olga Okafor", "--grade", "Solicitor"
    )
    user = User.objects.get(username="olga")
    assert (user.email, user.full_name, user.grade) == ("olga@example.org", "Olga Okafor", "Solicitor")
    assert user.check_password("a-long-password")  # nothing else touched
    event = AuditEvent.objects.get(action="user.update")
    assert event.payload["changes"] == {
        "email": {"from": "o@example.org", "to": "olga@example.org"},
        "full_name": {"from": "", "to": "Olga Okafor"},
        "grade": {"from": "", "to": "Solicitor"},
    }
    assert event.payload["via"] == "command:update_user"
    assert "Updated olga: email, full_name, grade" in capsys.readouterr().out


def test_update_user_leaves_out_what_is_not_given_and_records_nothing_when_nothing_changes(db):
    call_command("create_user", "olga", "--role", "sro", "--password", "a-long-password", "--full-name", "Olga Okafor")
    call_command("update_user", "olga", "--grade", "Chief Executive")
    call_command("update_user", "olga", "--grade", "Chief Executive")
    user = User.objects.get(username="olga")
    assert (user.full_name, user.grade) == ("Olga Okafor", "Chief Executive")
    assert AuditEvent.objects.filter(action="user.update").count() == 1
    call_command("update_user", "olga", "--email", "")
    assert AuditEvent.objects.filter(action="user.update").count() == 1  # "" was already the address


def test_update_user_refuses_a_bad_address_an_unknown_user_or_nothing_to_do(db):
    call_command("create_user", "olga", "--role", "sro", "--password", "a-long-password", "--email", "o@example.org")
    with pytest.raises(CommandError, match="email: Enter a valid email address"):
        call_command("update_user", "olga", "--email", "olga at example.org", "--grade", "Chief Executive")
    user = User.objects.get(username="olga")
    assert (user.email, user.grade) == ("o@example.org", "")  # nothing half-written
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("update_user", "nobody", "--email", "n@example.org")
    with pytest.raises(CommandError, match="at least one of"):
        call_command("update_user", "olga")
    assert not AuditEvent.objects.filter(action="user.update").exists()


def test_seed_demo_gives_every_demo_user_an_example_address_and_a_full_name(db, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    call_command("seed_demo", "--allow-without-debug")
    for user in User.objects.all():
        assert user.email == f"{user.username}@example.org"
        assert user.full_name
    assert User.objects.get(username="olivia").grade == "Head of Legal Services"


def test_seed_demo_gives_addresses_to_demo_users_seeded_before_they_had_them(db, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    call_command("seed_demo", "--allow-without-debug")
    User.objects.filter(username="bob").update(email="", full_name="")
    call_command("seed_demo", "--allow-without-debug")
    bob = User.objects.get(username="bob")
    assert (bob.email, bob.full_name) == ("bob@example.org", "Bob Practitioner")
    assert AuditEvent.objects.filter(action="user.update", payload__username="bob").count() == 1
