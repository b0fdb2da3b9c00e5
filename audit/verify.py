"""Recomputing the audit log's Merkle tree from the stored events and checking it against
every signed checkpoint. Reads in chunks, keeping O(log n) hashes in memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from audit.leaves import LEAF_COLUMNS, commitment_from_row, leaf_from_row
from audit.log import node_id
from audit.models import AuditCheckpoint, AuditEvent, AuditLeaf, AuditLogState, AuditSubjectLink, AuditTreeNode
from tlog import merkle
from tlog.note import NoteError, VerifierKey, open_checkpoint, open_note, parse_checkpoint

CHUNK = 5000


class VerificationFailed(Exception):
    """The first thing found wrong, naming the leaf index or checkpoint."""


@dataclass
class Report:
    leaves: int = 0
    checkpoints: int = 0
    root: bytes = merkle.EMPTY_ROOT
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _StoredLeaf:
    index: int
    commitment: bytes
    event: tuple  # the event's LEAF_COLUMNS, as the ORM loads them
    subject_ids: list[int]


def _leaves() -> Iterator[_StoredLeaf]:
    """Every stored leaf in index order with its event, read as plain rows (building model
    instances would cost more than the hashing)."""
    last = -1
    columns = [f"event__{name}" for name in LEAF_COLUMNS]
    while True:
        chunk = list(
            AuditLeaf.objects.filter(index__gt=last)
            .order_by("index")
            .values_list("index", "commitment", *columns)[:CHUNK]
        )
        if not chunk:
            return
        subjects: dict[int, list[int]] = {}
        links = AuditSubjectLink.objects.filter(event__leaf__index__gt=last, event__leaf__index__lte=chunk[-1][0])
        for event_id, subject_id in links.values_list("event_id", "subject_id"):
            subjects.setdefault(event_id, []).append(subject_id)
        for row in chunk:
            yield _StoredLeaf(row[0], bytes(row[1]), row[2:], subjects.get(row[2], []))
        last = chunk[-1][0]


def _stored_leaf_hashes(start: int, end: int) -> dict[int, bytes]:
    return {
        key: bytes(value)
        for key, value in AuditTreeNode.objects.filter(id__gte=node_id(0, start), id__lt=node_id(0, end)).values_list(
            "id", "hash"
        )
    }


def _check_leaf(leaf: _StoredLeaf, expected: int, stored_hash: bytes | None) -> bytes:
    if leaf.index != expected:
        raise VerificationFailed(f"leaf index {expected} is missing (next stored leaf is {leaf.index})")
    event_id = leaf.event[0]
    if commitment_from_row(leaf.event) != leaf.commitment:
        raise VerificationFailed(
            f"leaf index {leaf.index} (event {event_id}): the event's personal fields or payload were altered"
        )
    data = leaf_from_row(
        origin=settings.AUDIT_LOG_ORIGIN,
        index=leaf.index,
        row=leaf.event,
        subject_ids=leaf.subject_ids,
        commitment=leaf.commitment,
    )
    digest = merkle.leaf_hash(data)
    if stored_hash is not None and stored_hash != digest:
        raise VerificationFailed(f"leaf index {leaf.index} (event {event_id}): the event was altered after sequencing")
    return digest


def _check_checkpoint(checkpoint: AuditCheckpoint, root: bytes, verifiers: list[VerifierKey]) -> None:
    """The stored checkpoint's note is signed by a trusted key, the one its ``key_id`` names
    (each note names its key, so after a rotation the right one of the trusted keys checks
    it), for this log, this size and the recomputed root."""
    where = f"checkpoint {checkpoint.pk} (tree size {checkpoint.tree_size})"
    try:
        opened = open_note(checkpoint.note, verifiers)
        signed = parse_checkpoint(opened.text)
    except NoteError as exc:
        trusted = ", ".join(key.encode() for key in verifiers)
        raise VerificationFailed(
            f"{where}: signature does not verify with the trusted keys ({trusted}): {exc}"
        ) from exc
    if checkpoint.key_id not in {signature.key_id.hex() for signature in opened.verified}:
        raise VerificationFailed(
            f"{where}: recorded as signed by key {checkpoint.key_id}, but that key did not sign it"
        )
    if signed.origin != settings.AUDIT_LOG_ORIGIN or signed.size != checkpoint.tree_size:
        raise VerificationFailed(f"{where}: the signed note names another log or size")
    if signed.root != root or bytes(checkpoint.root) != root:
        raise VerificationFailed(f"{where}: its root does not match the tree recomputed from the events")


def verify_log(*, verifiers: VerifierKey | Iterable[VerifierKey], trusted_checkpoints: list[str] = ()) -> Report:
    """Raise ``VerificationFailed`` naming the first bad index or checkpoint.

    ``verifiers``: the trusted verifier keys (the current one and those of earlier keys,
    after a rotation); a checkpoint signed by none of them fails.

    ``trusted_checkpoints`` are signed notes kept outside the database (published,
    e-mailed, or the copy the service keeps in DATA_DIR): the log must still contain the
    tree each one signed, which detects a database rolled back or replaced."""
    verifiers = [verifiers] if isinstance(verifiers, VerifierKey) else list(verifiers)
    report = Report()
    builder = merkle.TreeBuilder()
    checkpoints = iter(AuditCheckpoint.objects.order_by("tree_size"))
    pending = next(checkpoints, None)
    trusted = sorted((_open_trusted(note, verifiers) for note in trusted_checkpoints), key=lambda cp: cp.size)
    trusted_iter = iter(trusted)
    pending_trusted = next(trusted_iter, None)
    stored_hashes: dict[int, bytes] = {}

    def settle(size: int) -> None:
        nonlocal pending, pending_trusted
        while pending is not None and pending.tree_size == size:
            _check_checkpoint(pending, builder.root(), verifiers)
            report.checkpoints += 1
            pending = next(checkpoints, None)
        while pending_trusted is not None and pending_trusted.size == size:
            if pending_trusted.root != builder.root():
                raise VerificationFailed(
                    f"trusted checkpoint of size {size}: the log no longer contains the tree it signed "
                    "(events changed, removed or replaced)"
                )
            pending_trusted = next(trusted_iter, None)

    settle(0)
    for leaf in _leaves():
        if leaf.index not in stored_hashes:
            stored_hashes = _stored_leaf_hashes(leaf.index, leaf.index + CHUNK)
        builder.append(_check_leaf(leaf, builder.size, stored_hashes.get(leaf.index)))
        settle(builder.size)
    report.leaves = builder.size
    report.root = builder.root()
    if pending is not None:
        raise VerificationFailed(
            f"checkpoint {pending.pk} (tree size {pending.tree_size}) is beyond the {builder.size} leaves stored: "
            "leaves were removed"
        )
    if pending_trusted is not None:
        raise VerificationFailed(
            f"trusted checkpoint of size {pending_trusted.size} is beyond the {builder.size} leaves stored: "
            "the log was rolled back or truncated"
        )
    state = AuditLogState.objects.get(pk=1)
    if state.tree_size != builder.size or bytes(state.root) != report.root:
        raise VerificationFailed(
            f"the log state records {state.tree_size} leaves with another root than the {builder.size} recomputed"
        )
    cutoff = timezone.now() - timedelta(seconds=settings.AUDIT_SEQUENCING_GRACE_SECONDS)
    unsequenced = AuditEvent.objects.filter(leaf__isnull=True, occurred_at__lt=cutoff)
    if unsequenced.exists():
        first = unsequenced.order_by("id").values_list("id", flat=True).first()
        raise VerificationFailed(
            f"event {first} and {unsequenced.count() - 1} other(s) are older than "
            f"{settings.AUDIT_SEQUENCING_GRACE_SECONDS}s but not in the tree (run integrate_audit --full)"
        )
    return report


def _open_trusted(note: str, verifiers: list[VerifierKey]):
    try:
        checkpoint = open_checkpoint(note, verifiers)
    except NoteError as exc:
        raise VerificationFailed(f"a trusted checkpoint does not verify: {exc}") from exc
    if checkpoint.origin != settings.AUDIT_LOG_ORIGIN:
        raise VerificationFailed(f"a trusted checkpoint is for another log ({checkpoint.origin})")
    return checkpoint
