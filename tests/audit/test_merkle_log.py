"""Sequencing audit events into the RFC 9162 tree, checkpoints and proofs."""

import base64
import json

import pytest
from django.db import transaction

from audit import keys
from audit import log as audit_log
from audit.leaves import PERSONAL_FIELDS, commitment_for
from audit.models import AuditCheckpoint, AuditEvent, AuditLeaf, AuditLogState
from audit.services import AuditContext, audit_record
from tlog import merkle
from tlog.note import compute_key_id, open_checkpoint, parse_verifier_key


@pytest.fixture(autouse=True)
def signing_key_in_tmp(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.AUDIT_SIGNING_KEY = None
    settings.AUDIT_SIGNING_KEY_PATH = tmp_path / "audit-signing.key"
    keys.signer.cache_clear()
    yield
    keys.signer.cache_clear()


def record(n, actor=None, **kwargs):
    events = []
    for i in range(n):
        with transaction.atomic():
            events.append(
                audit_record(
                    ctx=AuditContext(actor=actor, ip_address="10.0.0.1", user_agent="ua", request_id=f"req-{i:04d}"),
                    action="case.read",
                    payload={"note": f"Jane Doe read #{i}", "when": "now"},
                    subject_ids=[i % 3 + 1],
                    **kwargs,
                )
            )
    return events


def test_committed_events_get_contiguous_leaf_indices_in_order(db):
    events = record(5)
    result = audit_log.integrate()
    assert (result.appended, result.tree_size) == (5, 5)
    leaves = list(AuditLeaf.objects.order_by("index").values_list("index", "event_id"))
    assert leaves == [(i, event.pk) for i, event in enumerate(events)]
    assert audit_log.integrate().appended == 0  # nothing twice


def test_an_event_that_committed_after_a_later_one_is_picked_up_by_the_sweep(db):
    from django.utils import timezone

    [first] = record(1)

    def event_with_id(pk):
        return AuditEvent.objects.create(id=pk, occurred_at=timezone.now(), action="case.read", commitment_salt=b"s")

    late = event_with_id(first.pk + 10)
    assert audit_log.integrate().appended == 2
    # An event numbered before `late` that only became visible (committed) afterwards.
    early = event_with_id(first.pk + 5)
    assert audit_log.integrate().appended == 0  # the fast path only looks above `late`
    assert audit_log.integrate(sweep=True).appended == 1
    order = list(AuditLeaf.objects.order_by("index").values_list("event_id", flat=True))
    assert order == [first.pk, late.pk, early.pk]


def test_the_leaf_holds_no_personal_data_only_a_salted_commitment(db, alice):
    [event] = record(1, actor=alice)
    audit_log.integrate()
    [entry] = audit_log.entries(0, 1)
    leaf = json.loads(entry.leaf)
    assert leaf["origin"] == "case-evidence.localhost/audit-log" and leaf["index"] == 0
    assert leaf["sequence"] == event.pk and leaf["action"] == "case.read" and leaf["actor_id"] == alice.pk
    assert leaf["subject_ids"] == [1]
    text = entry.leaf.decode()
    for secret in ("alice", "Jane Doe", "10.0.0.1", "req-0000"):
        assert secret not in text
    event.refresh_from_db()
    assert base64.b64decode(leaf["commitment"]) == commitment_for(event)
    assert set(PERSONAL_FIELDS) == {"actor_username", "ip_address", "user_agent", "request_id", "payload"}


def test_the_same_event_always_gives_the_same_leaf(db):
    record(3)
    audit_log.integrate()
    first = [e.leaf for e in audit_log.entries(0, 3)]
    assert [e.leaf for e in audit_log.entries(0, 3)] == first
    assert all(merkle.leaf_hash(e.leaf) == e.leaf_hash for e in audit_log.entries(0, 3))


def test_two_events_with_equal_fields_still_have_different_commitments(db):
    a, b = record(1)[0], record(1)[0]
    assert commitment_for(a) != commitment_for(b)  # different salts


def test_the_root_is_the_rfc_9162_root_of_the_leaves(db):
    for batch in (1, 2, 4, 6):
        record(batch)
        state = audit_log.integrate()
        leaves = [e.leaf for e in audit_log.entries(0, state.tree_size)]
        assert AuditLogState.objects.get().root == merkle.root_from_leaf_hashes([merkle.leaf_hash(x) for x in leaves])
    assert audit_log.root_at(0) == merkle.EMPTY_ROOT


def test_every_inclusion_and_consistency_proof_verifies(db):
    record(21)
    audit_log.integrate()
    hashes = [e.leaf_hash for e in audit_log.entries(0, 21)]
    for size in range(1, 22):
        root = merkle.root_from_leaf_hashes(hashes[:size])
        assert audit_log.root_at(size) == root
        for index in range(size):
            leaf_hash, proof = audit_log.inclusion_proof(index, size)
            assert leaf_hash == hashes[index]
            merkle.verify_inclusion(leaf_hash, index, size, proof, root)
        for first in range(size + 1):
            proof = audit_log.consistency_proof(first, size)
            merkle.verify_consistency(first, size, proof, merkle.root_from_leaf_hashes(hashes[:first]), root)


def test_proofs_take_a_constant_number_of_queries_whatever_the_size(db, django_assert_max_num_queries):
    record(70)
    audit_log.integrate()
    for index, size in [(0, 70), (37, 64), (69, 70)]:
        with django_assert_max_num_queries(1):
            audit_log.inclusion_proof(index, size)
        with django_assert_max_num_queries(3):
            audit_log.consistency_proof(index + 1, size)


def test_asking_beyond_the_tree_is_refused(db):
    record(3)
    audit_log.integrate()
    for call, args in [
        (audit_log.inclusion_proof, (3, 3)),
        (audit_log.inclusion_proof, (0, 4)),
        (audit_log.consistency_proof, (2, 4)),
        (audit_log.consistency_proof, (3, 2)),
    ]:
        with pytest.raises(audit_log.OutOfRange):
            call(*args)


def test_a_checkpoint_is_a_signed_note_in_tlog_checkpoint_form(db, settings):
    record(4)
    checkpoint = audit_log.integrate().checkpoint
    text, signature_line = checkpoint.note.split("\n\n")
    origin, size, root = text.split("\n")
    assert (origin, int(size), base64.b64decode(root)) == (settings.AUDIT_LOG_ORIGIN, 4, bytes(checkpoint.root))
    assert signature_line.startswith(f"\u2014 {settings.AUDIT_LOG_ORIGIN} ")
    vkey = parse_verifier_key(keys.verifier().encode())
    assert keys.verifier().encode().split("+")[1] == compute_key_id(vkey.name, vkey.public_key).hex()
    assert open_checkpoint(checkpoint.note, vkey).size == 4
    assert base64.b64decode(signature_line.split()[-1])[:4] == vkey.key_id


def test_the_embedded_signing_key_is_generated_once_and_kept_private(db, tmp_path):
    first = keys.signer()
    path = tmp_path / "audit-signing.key"
    assert path.stat().st_mode & 0o777 == 0o600
    keys.signer.cache_clear()
    assert keys.signer().encode() == first.encode()


def test_a_signing_key_from_the_environment_must_name_the_log(db, settings):
    from django.core.exceptions import ImproperlyConfigured

    from tlog.note import generate_signer_key

    settings.AUDIT_SIGNING_KEY = generate_signer_key("another-log.example").encode()
    keys.signer.cache_clear()
    with pytest.raises(ImproperlyConfigured, match="AUDIT_LOG_ORIGIN"):
        keys.signer()


def test_checkpoints_on_the_request_path_are_rate_limited_and_the_sweep_signs_the_rest(db, settings):
    settings.AUDIT_CHECKPOINT_INTERVAL_SECONDS = 3600
    record(2)
    assert audit_log.integrate().checkpoint is not None  # the first one
    record(2)
    assert audit_log.integrate().checkpoint is None  # too soon on the request path
    assert audit_log.integrate(sweep=True).checkpoint.tree_size == 4


def test_the_log_refuses_to_sign_a_tree_inconsistent_with_its_last_checkpoint(db):
    record(3)
    audit_log.integrate()
    forged = AuditCheckpoint.objects.get()
    # A checkpoint row whose root is not the tree's (as if the tree had been rebuilt under it).
    AuditCheckpoint.objects.create(
        tree_size=forged.tree_size + 1, root=b"\x01" * 32, note="x", key_id="0", signed_at=forged.signed_at
    )
    record(2)
    with pytest.raises(audit_log.LogIntegrityError, match="not consistent"):
        audit_log.integrate(sweep=True)


def test_events_are_sequenced_after_each_commit_on_the_request_path(db, django_capture_on_commit_callbacks, settings):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            audit_record(ctx=AuditContext.command("test"), action="case.read")
            audit_record(ctx=AuditContext.command("test"), action="case.list")
    assert len(callbacks) == 1  # once per transaction
    assert AuditLeaf.objects.count() == 2 and AuditCheckpoint.objects.get().tree_size == 2
    assert (settings.DATA_DIR / "audit-checkpoint.latest").read_text() == AuditCheckpoint.objects.get().note


def test_events_api_carries_each_events_leaf_index(db, audrey, client_for):
    record(2)
    audit_log.integrate()
    results = client_for(audrey).get("/api/v1/audit/events/?action=case.read").json()["results"]
    assert [e["leaf_index"] for e in results] == [0, 1]
    assert AuditEvent.objects.filter(leaf__isnull=True).exists()  # the login and query, not yet sequenced


def test_the_request_path_takes_one_bounded_batch_and_leaves_a_backlog_to_the_sweep(db):
    record(5)
    assert audit_log.integrate(batch_size=2, max_batches=1).appended == 2
    assert audit_log.integrate(sweep=True, batch_size=2).appended == 3
    assert AuditLeaf.objects.count() == 5
