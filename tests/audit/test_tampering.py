"""Tampering by someone who can switch the database's protection off (a database
superuser) is caught by ``verify_audit`` and by the offline verifier, naming where."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from audit import keys
from audit import log as audit_log
from audit.models import AuditCheckpoint, AuditEvent, AuditLeaf, AuditLogState, AuditSubjectLink, AuditTreeNode
from audit.services import AuditContext, audit_record
from cases.models import Viewing

ROOT = Path(__file__).resolve().parents[2]
PROTECTED = [
    m._meta.db_table for m in (AuditEvent, AuditSubjectLink, AuditLeaf, AuditTreeNode, AuditCheckpoint, Viewing)
]


@pytest.fixture(autouse=True)
def log_with_checkpoints(db, settings, tmp_path):
    """Ten events, signed at sizes 4, 7 and 10, with the witness copy in DATA_DIR."""
    settings.DATA_DIR = tmp_path
    settings.AUDIT_SIGNING_KEY = None
    settings.AUDIT_SIGNING_KEY_PATH = tmp_path / "audit-signing.key"
    keys.signer.cache_clear()
    for count in (4, 3, 3):
        for i in range(count):
            with transaction.atomic():
                audit_record(ctx=AuditContext.command("test"), action="case.read", payload={"n": i, "who": "Jane"})
        audit_log.integrate(sweep=True)
    assert list(AuditCheckpoint.objects.values_list("tree_size", flat=True)) == [4, 7, 10]
    yield
    keys.signer.cache_clear()


def as_superuser(*statements):
    """Switch the append-only protection off, as a database superuser could, and run SQL."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Settle this test's pending foreign-key checks: PostgreSQL will not alter a
            # table with checks still pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for table in PROTECTED:
                cursor.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER USER')
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            for (name,) in cursor.fetchall():
                cursor.execute(f'DROP TRIGGER "{name}"')
        for statement, params in statements:
            cursor.execute(statement, params)


def event_at(index):
    return AuditLeaf.objects.get(index=index).event_id


def verify_audit_error(*args):
    with pytest.raises(CommandError) as caught:
        call_command("verify_audit", *args)
    return str(caught.value)


def export_bundle(tmp_path, client):
    response = client.get("/api/v1/audit/export/")
    assert response.status_code == 200, response.content
    bundle = response.json()
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    return path


def offline_verify(*args):
    return subprocess.run(  # noqa: S603 - this interpreter, the project's own tool
        [sys.executable, str(ROOT / "tools" / "verify_log.py"), *args], capture_output=True, text=True
    )


@pytest.fixture
def vkey_file(tmp_path):
    path = tmp_path / "vkey"
    path.write_text(keys.verifier().encode())
    return path


@pytest.fixture
def auditor_client(audrey, client_for):
    return client_for(audrey)


def test_an_untouched_log_verifies_both_ways(tmp_path, auditor_client, vkey_file, capsys):
    call_command("verify_audit")
    assert "audit log OK: 1" in capsys.readouterr().out
    result = offline_verify("bundle", "--vkey", str(vkey_file), str(export_bundle(tmp_path, auditor_client)))
    assert result.returncode == 0, result.stderr


def test_one_changed_byte_in_an_events_payload_is_found(tmp_path, auditor_client, vkey_file):
    client = auditor_client  # sign in before tampering; its own events come after index 9
    target = event_at(5)
    as_superuser((f"UPDATE {PROTECTED[0]} SET payload = %s WHERE id = %s", ['{"n": 1, "who": "June"}', target]))
    assert "leaf index 5" in verify_audit_error("--no-witness")
    result = offline_verify("bundle", "--vkey", str(vkey_file), str(export_bundle(tmp_path, client)))
    assert result.returncode == 1 and "5" in result.stderr


def test_a_changed_action_is_found(tmp_path, auditor_client, vkey_file):
    client = auditor_client
    as_superuser((f"UPDATE {PROTECTED[0]} SET action = 'case.list' WHERE id = %s", [event_at(2)]))
    assert "leaf index 2" in verify_audit_error()
    result = offline_verify("bundle", "--vkey", str(vkey_file), str(export_bundle(tmp_path, client)))
    assert result.returncode == 1 and "index 2" in result.stderr


def test_a_deleted_event_is_found(tmp_path, auditor_client, vkey_file):
    client = auditor_client
    target = event_at(3)
    as_superuser(
        (f"DELETE FROM {PROTECTED[3]} WHERE id = 3", []),
        (f"DELETE FROM {PROTECTED[2]} WHERE event_id = %s", [target]),
        (f"DELETE FROM {PROTECTED[0]} WHERE id = %s", [target]),
    )
    assert "leaf index 3 is missing" in verify_audit_error()
    result = offline_verify("bundle", "--vkey", str(vkey_file), str(export_bundle(tmp_path, client)))
    assert result.returncode == 1 and "3" in result.stderr


def test_two_swapped_events_are_found(tmp_path, auditor_client, vkey_file):
    client = auditor_client
    first, second = (AuditEvent.objects.get(pk=event_at(i)) for i in (6, 8))
    columns = ["occurred_at", "action", "payload", "commitment_salt", "actor_username", "request_id"]
    values = {event.pk: [getattr(event, c) for c in columns] for event in (first, second)}
    assignments = ", ".join(f"{c} = %s" for c in columns)
    as_superuser(
        (f"UPDATE {PROTECTED[0]} SET {assignments} WHERE id = %s", [*_db(values[second.pk]), first.pk]),
        (f"UPDATE {PROTECTED[0]} SET {assignments} WHERE id = %s", [*_db(values[first.pk]), second.pk]),
    )
    assert "leaf index 6" in verify_audit_error()
    result = offline_verify("bundle", "--vkey", str(vkey_file), str(export_bundle(tmp_path, client)))
    assert result.returncode == 1 and "6" in result.stderr


def _db(row):
    """Column values as raw SQL parameters (the JSON payload as text)."""
    return [json.dumps(value) if isinstance(value, dict) else value for value in row]


def test_a_log_rebuilt_and_resigned_with_another_key_is_found(tmp_path, settings, auditor_client, vkey_file):
    client = auditor_client
    true_verifier = keys.verifier().encode()
    as_superuser(
        (f"UPDATE {PROTECTED[0]} SET payload = '{{}}' WHERE id = %s", [event_at(1)]),
        (f"DELETE FROM {PROTECTED[4]}", []),
        (f"DELETE FROM {PROTECTED[3]}", []),
        (f"DELETE FROM {PROTECTED[2]}", []),
    )
    AuditLogState.objects.filter(pk=1).update(
        tree_size=0, root=audit_log.merkle.EMPTY_ROOT, max_event_id=0, scan_from_event_id=0
    )
    (tmp_path / "audit-signing.key").unlink()  # the forger has no copy of the real key
    settings.AUDIT_SIGNING_KEY_PATH = tmp_path / "forged.key"
    keys.signer.cache_clear()
    audit_log.integrate(full=True)
    # The witness copy of the real size-10 checkpoint no longer matches the rebuilt tree...
    assert "trusted checkpoint of size 10" in verify_audit_error("--vkey", true_verifier)
    # ...and, without it, the forger's checkpoints do not carry the log's signature.
    message = verify_audit_error("--vkey", true_verifier, "--no-witness")
    assert "signature does not verify" in message and "tree size 11" in message
    # Even verified with the forger's own key, the witness copy of the real last checkpoint disagrees.
    assert "trusted checkpoint" in verify_audit_error()
    result = offline_verify("bundle", "--vkey", str(vkey_file), str(export_bundle(tmp_path, client)))
    assert result.returncode == 1 and "signature" in result.stderr


def test_a_log_rolled_back_to_an_older_state_is_found(tmp_path, auditor_client, vkey_file):
    """A restore of an older backup: internally consistent, but shorter than a checkpoint
    the service has already handed out (its own witness copy, or one an auditor kept)."""
    kept = AuditCheckpoint.objects.get(tree_size=10).note
    later_nodes = [
        node_id
        for node_id in AuditTreeNode.objects.values_list("id", flat=True)
        if ((node_id & ((1 << 48) - 1)) + 1) << (node_id >> 48) > 7
    ]
    later_events = list(AuditLeaf.objects.filter(index__gte=7).values_list("event_id", flat=True))
    as_superuser(
        (f"DELETE FROM {PROTECTED[4]} WHERE tree_size > 7", []),
        *[(f"DELETE FROM {PROTECTED[3]} WHERE id = %s", [node]) for node in later_nodes],
        (f'DELETE FROM {PROTECTED[2]} WHERE "index" >= 7', []),
        *[(f"DELETE FROM {PROTECTED[0]} WHERE id = %s", [event]) for event in later_events],
    )
    seven = AuditCheckpoint.objects.get(tree_size=7)
    AuditLogState.objects.filter(pk=1).update(tree_size=7, root=seven.root, max_event_id=max(later_events))
    call_command("verify_audit", "--no-witness")  # consistent in itself...
    message = verify_audit_error()  # ...but not with the checkpoint kept outside the database
    assert "trusted checkpoint of size 10" in message and "rolled back" in message
    old, new, proof = tmp_path / "kept.note", tmp_path / "current.note", tmp_path / "proof.json"
    old.write_text(kept)
    new.write_text(seven.note)
    proof.write_text("[]")
    result = offline_verify(
        "consistency", "--vkey", str(vkey_file), "--old", str(old), "--new", str(new), "--proof-json", str(proof)
    )
    assert result.returncode == 1 and "10" in result.stderr


def test_a_forged_checkpoint_signature_is_found(tmp_path, auditor_client, vkey_file):
    client = auditor_client
    note = AuditCheckpoint.objects.get(tree_size=10).note
    text, signature = note.split("\n\n")
    name_part, b64 = signature.rsplit(" ", 1)
    forged = text + "\n\n" + name_part + " " + ("A" if b64[10] != "A" else "B").join([b64[:10], b64[11:]])
    as_superuser((f"UPDATE {PROTECTED[4]} SET note = %s WHERE tree_size = 10", [forged]))
    message = verify_audit_error("--no-witness")
    assert "tree size 10" in message and "signature" in message
    result = offline_verify("bundle", "--vkey", str(vkey_file), str(export_bundle(tmp_path, client)))
    assert result.returncode == 1


@pytest.mark.postgres
def test_tampering_on_postgresql_needs_the_triggers_switched_off_first(db):
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'UPDATE {PROTECTED[2]} SET commitment = %s WHERE "index" = 0', [b"x" * 32])


def test_a_long_log_is_exported_as_consecutive_bundles_that_each_verify(
    tmp_path, auditor_client, vkey_file, monkeypatch
):
    from audit.api import views as audit_views

    monkeypatch.setattr(audit_views, "MAX_EXPORT", 4)
    size = AuditCheckpoint.objects.order_by("-tree_size").first().tree_size
    too_long = auditor_client.get("/api/v1/audit/export/?start=0&end=5")
    assert too_long.status_code == 400 and "At most 4" in too_long.json()["fields"]["end"][0]
    beyond = auditor_client.get(f"/api/v1/audit/export/?start={size + 1}")
    assert beyond.status_code == 400 and list(beyond.json()["fields"]) == ["start"]
    covered = []
    for start in range(0, size, 4):
        response = auditor_client.get(f"/api/v1/audit/export/?start={start}")
        assert response.status_code == 200, response.content
        bundle = response.json()
        covered += [entry["index"] for entry in bundle["entries"]]
        path = tmp_path / f"bundle-{start}.json"
        path.write_text(json.dumps(bundle))
        result = offline_verify("bundle", "--vkey", str(vkey_file), str(path))
        assert result.returncode == 0, result.stderr
    assert covered == list(range(size))
