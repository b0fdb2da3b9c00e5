"""The signing key's life: production refuses to start without one (and without the log's
name); a rotation keeps every earlier checkpoint verifiable while the old key is trusted,
and is recorded in the log; a checkpoint signed by a key nobody trusts fails."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from audit import keys
from audit import log as audit_log
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import AuditContext, audit_record
from tlog.note import Checkpoint, generate_signer_key, parse_signer_key, parse_verifier_key, sign_checkpoint

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "case-evidence.localhost/audit-log"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    # Fixed arguments: this interpreter running the project's own manage.py, module or tool.
    return subprocess.run(  # noqa: S603
        [sys.executable, *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- Start-up ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, missing",
    [
        ({}, ["AUDIT_SIGNING_KEY", "AUDIT_LOG_ORIGIN"]),
        ({"AUDIT_LOG_ORIGIN": ORIGIN}, ["AUDIT_SIGNING_KEY"]),
        ({"AUDIT_SIGNING_KEY": generate_signer_key(ORIGIN).encode()}, ["AUDIT_LOG_ORIGIN"]),
    ],
)
def test_manage_py_check_refuses_to_start_without_debug_unless_the_key_and_origin_are_set(tmp_path, given, missing):
    env = {"DATA_DIR": str(tmp_path), "SECRET_KEY": "s" * 50, **given}
    result = _run(["manage.py", "check"], env)
    assert result.returncode != 0
    for name in missing:
        assert name in result.stderr
    assert "AUDIT_SIGNING_KEY_FILE" in result.stderr or "AUDIT_SIGNING_KEY" not in missing
    assert not (tmp_path / "audit-signing.key").exists()  # nothing generated behind the operator's back


def test_the_wsgi_application_refuses_to_load_without_a_signing_key(tmp_path):
    env = {"DATA_DIR": str(tmp_path), "SECRET_KEY": "s" * 50, "AUDIT_LOG_ORIGIN": ORIGIN}
    result = _run(["-c", "import evidence_service.wsgi"], env)
    assert result.returncode != 0 and "AUDIT_SIGNING_KEY" in result.stderr
    assert "ImproperlyConfigured" in result.stderr


def test_with_the_key_and_origin_set_production_starts_and_signs_with_that_key(tmp_path):
    key = generate_signer_key("council.example/audit-log")
    env = {
        "DATA_DIR": str(tmp_path),
        "SECRET_KEY": "s" * 50,
        "AUDIT_LOG_ORIGIN": "council.example/audit-log",
        "AUDIT_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
    }
    (tmp_path / "signing.key").write_text(key.encode() + "\n")
    assert _run(["manage.py", "check"], env).returncode == 0
    printed = _run(["manage.py", "audit_verifier_key"], env)
    assert printed.stdout.strip() == key.verifier().encode(), printed.stderr


def test_debug_may_still_generate_a_key_for_the_embedded_default(tmp_path):
    result = _run(["manage.py", "audit_verifier_key"], {"DATA_DIR": str(tmp_path), "DEBUG": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{ORIGIN}+")
    assert (tmp_path / "audit-signing.key").stat().st_mode & 0o777 == 0o600


def test_a_trusted_verifier_key_of_another_log_stops_the_service(tmp_path):
    env = {
        "DATA_DIR": str(tmp_path),
        "SECRET_KEY": "s" * 50,
        "AUDIT_LOG_ORIGIN": ORIGIN,
        "AUDIT_SIGNING_KEY": generate_signer_key(ORIGIN).encode(),
        "AUDIT_VERIFIER_KEYS": generate_signer_key("other.example/log").verifier().encode(),
    }
    result = _run(["manage.py", "check"], env)
    assert result.returncode != 0 and "AUDIT_VERIFIER_KEYS" in result.stderr


# --- Rotation ----------------------------------------------------------------------------------


@pytest.fixture
def old_key(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.AUDIT_LOG_ORIGIN = ORIGIN
    key = generate_signer_key(ORIGIN)
    settings.AUDIT_SIGNING_KEY = key.encode()
    settings.AUDIT_VERIFIER_KEYS = []
    keys.signer.cache_clear()
    yield key
    keys.signer.cache_clear()


def _events(n: int) -> None:
    for i in range(n):
        with transaction.atomic():
            audit_record(ctx=AuditContext.command("test"), action="case.read", payload={"n": i})


def _rotate(settings, new_key, *, trust_old: list[str]) -> None:
    settings.AUDIT_SIGNING_KEY = new_key.encode()
    settings.AUDIT_VERIFIER_KEYS = trust_old
    keys.signer.cache_clear()


@pytest.fixture
def rotated(db, settings, old_key):
    """Checkpoints at 3 and 5 by the old key; rotated; checkpoints at 7 (and, once the
    rotation's own event is sequenced, 8) by the new key."""
    _events(3)
    audit_log.integrate(sweep=True)
    _events(2)
    audit_log.integrate(sweep=True)
    new_key = generate_signer_key(ORIGIN)
    _rotate(settings, new_key, trust_old=[old_key.verifier().encode()])
    _events(2)
    audit_log.integrate(sweep=True)
    audit_log.integrate(sweep=True)
    return new_key


def test_after_a_rotation_every_checkpoint_verifies_with_both_keys_trusted(rotated, old_key, capsys):
    signed_by = list(AuditCheckpoint.objects.order_by("tree_size").values_list("tree_size", "key_id"))
    old_id, new_id = old_key.key_id.hex(), rotated.key_id.hex()
    assert signed_by[:3] == [(3, old_id), (5, old_id), (7, new_id)]
    assert {key_id for _size, key_id in signed_by[3:]} == {new_id}
    call_command("verify_audit")
    assert "audit log OK" in capsys.readouterr().out
    # The same, with the keys given by hand (as an auditor would).
    call_command("verify_audit", "--vkey", old_key.verifier().encode(), "--vkey", rotated.verifier().encode())


def test_the_first_checkpoint_with_the_new_key_is_recorded_as_a_rotation(rotated, old_key):
    [event] = AuditEvent.objects.filter(action="audit.key_rotated")
    first_new = AuditCheckpoint.objects.get(tree_size=7)
    assert event.target_type == "audit_checkpoint" and event.target_id == str(first_new.pk)
    assert event.payload["previous_key_id"] == old_key.key_id.hex()
    assert event.payload["key_id"] == rotated.key_id.hex()
    assert event.payload["verifier_key"] == rotated.verifier().encode()
    assert event.payload["previous_key_trusted"] is True
    assert (event.payload["previous_checkpoint_tree_size"], event.payload["tree_size"]) == (5, 7)
    assert event.leaf is not None  # in the log's tree like any other event


def test_without_the_old_key_trusted_its_checkpoints_fail_verification(rotated, settings, old_key):
    settings.AUDIT_VERIFIER_KEYS = []
    with pytest.raises(CommandError, match=r"checkpoint \d+ \(tree size 3\): signature does not verify"):
        call_command("verify_audit", "--no-witness")
    with pytest.raises(CommandError, match="tree size 3"):
        call_command("verify_audit", "--no-witness", "--vkey", rotated.verifier().encode())


def test_a_rotation_that_drops_the_old_key_is_recorded_as_such(db, settings, old_key):
    _events(2)
    audit_log.integrate(sweep=True)
    _rotate(settings, generate_signer_key(ORIGIN), trust_old=[])
    _events(1)
    audit_log.integrate(sweep=True)
    [event] = AuditEvent.objects.filter(action="audit.key_rotated")
    assert event.payload["previous_key_trusted"] is False


def test_a_checkpoint_signed_by_an_untrusted_key_fails_even_among_trusted_ones(rotated, old_key, tmp_path):
    """Someone with a key of their own (the same origin) re-signs a stored checkpoint."""
    intruder = generate_signer_key(ORIGIN)
    checkpoint = AuditCheckpoint.objects.get(tree_size=5)
    note = sign_checkpoint(Checkpoint(ORIGIN, 5, bytes(checkpoint.root)), intruder)
    kept = tmp_path / "kept.note"
    kept.write_text(note)
    with pytest.raises(CommandError, match="trusted checkpoint does not verify"):
        call_command("verify_audit", "--no-witness", "--checkpoint", str(kept))
    # Signed by both, it verifies: the intruder's signature is set aside, the trusted one counts.
    kept.write_text(sign_checkpoint(Checkpoint(ORIGIN, 5, bytes(checkpoint.root)), old_key, intruder))
    call_command("verify_audit", "--no-witness", "--checkpoint", str(kept))


def test_a_checkpoint_whose_recorded_key_is_not_the_one_that_signed_it_fails(rotated, old_key):
    from tests.audit.test_tampering import as_superuser

    table = AuditCheckpoint._meta.db_table
    as_superuser((f"UPDATE {table} SET key_id = %s WHERE tree_size = 3", [rotated.key_id.hex()]))
    with pytest.raises(CommandError, match=f"recorded as signed by key {rotated.key_id.hex()}"):
        call_command("verify_audit", "--no-witness")


def test_the_checkpoint_api_names_the_signing_key_and_every_trusted_key(rotated, old_key, audrey, client_for):
    body = client_for(audrey).get("/api/v1/audit/checkpoint/").json()
    assert body["verifier_key"] == rotated.verifier().encode()
    assert body["verifier_keys"] == [rotated.verifier().encode(), old_key.verifier().encode()]


def test_an_export_across_a_rotation_verifies_offline_with_both_keys_and_not_with_one(
    rotated, old_key, audrey, client_for, tmp_path
):
    bundle = client_for(audrey).get("/api/v1/audit/export/").json()
    assert len(bundle["checkpoints"]) >= 3  # 3 and 5 by the old key, the rest by the new
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    new, old = rotated.verifier().encode(), old_key.verifier().encode()
    both = _run(["tools/verify_log.py", "bundle", "--vkey", new, "--vkey", old, str(path)], {})
    assert both.returncode == 0, both.stderr
    keyfile = tmp_path / "trusted.keys"
    keyfile.write_text(f"{new}\n{old}\n")
    assert _run(["tools/verify_log.py", "bundle", "--vkey", str(keyfile), str(path)], {}).returncode == 0
    only_new = _run(["tools/verify_log.py", "bundle", "--vkey", new, str(path)], {})
    assert only_new.returncode == 1 and "no signature by a trusted key" in only_new.stderr
    old_note = tmp_path / "old.note"
    old_note.write_text(AuditCheckpoint.objects.get(tree_size=3).note)
    assert _run(["tools/verify_log.py", "note", "--vkey", new, "--vkey", old, str(old_note)], {}).returncode == 0
    assert _run(["tools/verify_log.py", "note", "--vkey", new, str(old_note)], {}).returncode == 1


def test_the_rotation_command_prints_the_next_key_and_keeps_the_current_one_trusted(db, old_key, capsys, tmp_path):
    call_command("rotate_audit_key")
    out = capsys.readouterr().out
    [key_line] = [line for line in out.splitlines() if line.startswith("AUDIT_SIGNING_KEY=")]
    [trusted_line] = [line for line in out.splitlines() if line.startswith("AUDIT_VERIFIER_KEYS=")]
    new = parse_signer_key(key_line.split("=", 1)[1])
    assert new.name == ORIGIN and new.key_id != old_key.key_id
    assert trusted_line.split("=", 1)[1].split(",") == [old_key.verifier().encode()]
    assert new.verifier().encode() in out

    call_command("rotate_audit_key", "--output", str(tmp_path / "next.key"))
    written = tmp_path / "next.key"
    assert written.stat().st_mode & 0o777 == 0o600
    assert parse_signer_key(written.read_text().strip()).name == ORIGIN
    assert f"AUDIT_SIGNING_KEY_FILE={written}" in capsys.readouterr().out
    with pytest.raises(CommandError, match="must not exist"):
        call_command("rotate_audit_key", "--output", str(written))


def test_the_keygen_tool_makes_a_first_key_without_django(tmp_path):
    result = _run(["tools/audit_keygen.py", "council.example/audit-log"], {})
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line and not line.startswith("#"))
    key = parse_signer_key(lines["AUDIT_SIGNING_KEY"])
    assert key.name == lines["AUDIT_LOG_ORIGIN"] == "council.example/audit-log"
    verifier = result.stdout.rsplit(": ", 1)[1].strip()
    assert parse_verifier_key(verifier) == key.verifier()
    assert _run(["tools/audit_keygen.py", "bad origin"], {}).returncode == 2
