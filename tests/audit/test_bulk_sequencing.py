"""Sequencing a large backlog in bulk builds exactly the tree that ``integrate`` builds."""

import json

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from audit import keys
from audit import log as audit_log
from audit.leaves import commitment_for, leaf_bytes
from audit.models import AuditCheckpoint, AuditEvent, AuditLeaf, AuditLogState, AuditTreeNode
from audit.services import AuditContext, audit_record
from bench.livedb import live_database, manage
from tlog import merkle
from tlog.note import generate_signer_key


@pytest.fixture(autouse=True)
def signing_key_in_tmp(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.AUDIT_SIGNING_KEY = None
    settings.AUDIT_SIGNING_KEY_PATH = tmp_path / "audit-signing.key"
    keys.signer.cache_clear()
    yield
    keys.signer.cache_clear()


def record_varied(n, alice=None):
    """Events unlike each other in every field a leaf commits to."""
    for i in range(n):
        with transaction.atomic():
            audit_record(
                ctx=AuditContext(
                    actor=alice if i % 3 else None,
                    ip_address=None if i % 4 == 0 else f"10.0.{i}.1",
                    user_agent=f"agent {i} \u00e9\u4e2d",
                    request_id=f"req-{i}",
                ),
                action=["case.read", "viewing.create", "subject.read"][i % 3],
                outcome=["success", "denied", "failed"][i % 5 % 3],
                target_type="subject" if i % 2 else "",
                target_id=i if i % 2 else "",
                case_id=i if i % 3 == 0 else None,
                subject_ids=[i % 7 + 1, (i * 5) % 11 + 1][: i % 3],
                payload={"n": i, "text": 'Zo\u00eb "Doe"\n', "nested": {"b": [1, 2.5, None], "a": True}},
            )


class Undo(Exception):
    pass


def tree_built_by(build):
    """The tree (leaves, nodes, state, checkpoints) that ``build`` makes, rolled back after."""
    try:
        with transaction.atomic():
            build()
            tree = {
                "leaves": list(AuditLeaf.objects.order_by("index").values_list("index", "event_id", "commitment")),
                "nodes": list(AuditTreeNode.objects.order_by("id").values_list("id", "hash")),
                "state": AuditLogState.objects.values_list(
                    "tree_size", "root", "max_event_id", "scan_from_event_id"
                ).get(),
                "checkpoints": list(
                    AuditCheckpoint.objects.order_by("tree_size").values_list("tree_size", "root", "note")
                ),
            }
            raise Undo
    except Undo:
        pass
    return {
        name: [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]
        if isinstance(rows, list)
        else tuple(bytes(v) if isinstance(v, memoryview) else v for v in rows)
        for name, rows in tree.items()
    }


@pytest.mark.parametrize("batch_size", [1, 8, 50_000])
def test_bulk_sequencing_builds_the_same_tree_as_integrate(db, alice, batch_size):
    record_varied(5, alice)
    audit_log.integrate(sweep=True)  # a tree (and checkpoint) to continue from, not a power of two
    record_varied(37, alice)
    by_integrate = tree_built_by(lambda: audit_log.integrate(sweep=True, batch_size=6))
    by_bulk = tree_built_by(lambda: audit_log.sequence_backlog(batch_size=batch_size))
    assert by_integrate["state"][0] == 42 and len(by_integrate["leaves"]) == 42
    assert len(by_integrate["checkpoints"]) == 2  # sizes 5 and 42: one checkpoint at the end
    for part in ("leaves", "nodes", "state", "checkpoints"):
        assert by_bulk[part] == by_integrate[part], part


def reference_leaf_hashes() -> list[bytes]:
    """Each sequenced event's leaf hash, built independently of the sequencer: from the ORM's
    model instances (``leaf_bytes``, as ``entries`` serves them), in the order of the events."""
    hashes = []
    for index, event in enumerate(AuditEvent.objects.order_by("id").prefetch_related("subject_links")):
        commitment = commitment_for(event)
        data = leaf_bytes(
            origin=settings.AUDIT_LOG_ORIGIN,
            index=index,
            event=event,
            subject_ids=sorted(link.subject_id for link in event.subject_links.all()),
            commitment=commitment,
        )
        hashes.append(merkle.leaf_hash(data))
    return hashes


@pytest.mark.parametrize("sequence", ["integrate", "sequence_backlog"])
def test_both_sequencers_build_the_tree_the_events_define(db, alice, sequence):
    record_varied(5, alice)
    audit_log.integrate(sweep=True)
    record_varied(30, alice)
    if sequence == "integrate":
        audit_log.integrate(sweep=True, batch_size=7)
    else:
        audit_log.sequence_backlog(batch_size=9)
    expected = reference_leaf_hashes()
    state = AuditLogState.objects.get()
    assert state.tree_size == len(expected) == 35
    assert list(AuditLeaf.objects.order_by("index").values_list("event_id", flat=True)) == list(
        AuditEvent.objects.order_by("id").values_list("id", flat=True)
    )
    stored = dict(AuditTreeNode.objects.filter(id__lt=len(expected)).values_list("id", "hash"))  # level 0
    assert [bytes(stored[audit_log.node_id(0, index)]) for index in range(len(expected))] == expected
    assert bytes(state.root) == merkle.root_from_leaf_hashes(expected)


def test_bulk_sequencing_covers_every_event_and_verifies(db, alice):
    record_varied(23, alice)
    result = audit_log.sequence_backlog(batch_size=10)
    assert (result.appended, result.tree_size, result.checkpoint.tree_size) == (23, 23, 23)
    assert not AuditEvent.objects.filter(leaf__isnull=True).exists()
    call_command("verify_audit", "--no-witness")
    assert audit_log.sequence_backlog().appended == 0  # nothing twice


def test_bulk_sequencing_refuses_to_sign_a_tree_inconsistent_with_its_last_checkpoint(db):
    record_varied(3)
    audit_log.integrate(sweep=True)
    signed = AuditCheckpoint.objects.get()
    AuditCheckpoint.objects.create(
        tree_size=signed.tree_size + 1, root=b"\x01" * 32, note="x", key_id="0", signed_at=timezone.now()
    )
    record_varied(2)
    with pytest.raises(audit_log.LogIntegrityError, match="not consistent"):
        audit_log.sequence_backlog()


def test_integrate_audit_bulk_command(db, capsys):
    record_varied(9)
    call_command("integrate_audit", "--bulk", "--batch-size", "4")
    assert "appended 9 leaves; tree size 9; checkpoint at size 9" in capsys.readouterr().out
    with pytest.raises(CommandError, match="batch-size"):
        call_command("integrate_audit", "--bulk", "--batch-size", "0")


EVENTS = """
from django.db import connection
with connection.cursor() as c:
    c.execute(\"\"\"INSERT INTO audit_auditevent (occurred_at, actor_id, actor_username, actor_role, action, outcome,
                     target_type, target_id, case_id, ip_address, user_agent, request_id, payload, commitment_salt)
                 SELECT timestamptz '2026-01-01 00:00:00+00' + g * interval '1.000001 second',
                        CASE WHEN g % 5 = 0 THEN NULL ELSE 1000 + g % 7 END, 'user' || (g % 7), 'practitioner',
                        (ARRAY['case.read','viewing.create','subject.read'])[1 + g % 3], 'success', 'subject',
                        (g % 50)::text, CASE WHEN g % 2 = 0 THEN g END,
                        CASE WHEN g % 3 = 0 THEN NULL ELSE '10.0.0.1' END::inet, 'ua \\u00e9', md5(g::text),
                        jsonb_build_object('n', g, 'name', 'Zo\\u00eb', 'x', jsonb_build_array(1.5, null, true)),
                        decode(md5(g::text), 'hex')
                 FROM generate_series(1, 2500) g\"\"\")
    c.execute(\"\"\"INSERT INTO audit_auditsubjectlink (event_id, subject_id)
                 SELECT id, s FROM audit_auditevent, generate_series(1, 3) s WHERE s <= id % 4\"\"\")
"""

DUMP = """
import json
from django.db import connection
with connection.cursor() as c:
    out = {}
    for name, sql in [
        ("leaves", "SELECT index, event_id, encode(commitment, 'hex') FROM audit_auditleaf ORDER BY index"),
        ("nodes", "SELECT id, encode(hash, 'hex') FROM audit_audittreenode ORDER BY id"),
        ("state", "SELECT tree_size, encode(root, 'hex'), max_event_id FROM audit_auditlogstate"),
        ("checkpoints", "SELECT tree_size, encode(root, 'hex'), note FROM audit_auditcheckpoint ORDER BY tree_size"),
    ]:
        c.execute(sql)
        out[name] = c.fetchall()
print(json.dumps(out))
"""


@pytest.mark.postgres
def test_the_bulk_command_reading_ahead_builds_the_tree_integrate_builds(db, tmp_path):
    """Two databases with the same events: one sequenced by the periodic path, one by
    ``integrate_audit --bulk`` (which reads the next batch on a second connection)."""
    settings_dict = connection.settings_dict
    url = (
        f"postgresql://{settings_dict['USER']}@{settings_dict['HOST'] or 'localhost'}:{settings_dict['PORT'] or 5432}/x"
    )
    key = generate_signer_key(settings.AUDIT_LOG_ORIGIN).encode()
    trees = []
    for how in (["integrate_audit"], ["integrate_audit", "--bulk", "--batch-size", "700"]):
        (tmp_path / how[-1]).mkdir()
        with live_database(url, tmp_path / how[-1], prefix="ces_bulk") as env:
            env = {**env, "AUDIT_SIGNING_KEY": key, "AUDIT_INTEGRATE_AFTER_COMMIT": "0"}
            manage(env, "shell", "-v", "0", "-c", EVENTS)
            assert "appended 2500 leaves; tree size 2500" in manage(env, *how).stdout
            verified = manage(env, "verify_audit", check=False)
            assert verified.returncode == 0, verified.stderr
            trees.append(json.loads(manage(env, "shell", "-v", "0", "-c", DUMP).stdout))
    by_integrate, by_bulk = trees
    assert len(by_integrate["leaves"]) == 2500 and len(by_integrate["checkpoints"]) == 1
    for part in ("leaves", "nodes", "state", "checkpoints"):
        assert by_bulk[part] == by_integrate[part], part
