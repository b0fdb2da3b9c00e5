"""The tamper-evident audit log: sequencing committed events into an RFC 9162 Merkle
tree, signing checkpoints, and answering proofs.

Events are written in their action's transaction with no index (so the request path never
waits on the tree). The *integrator* then gives committed events leaf indices 0, 1, 2, ...
in the order it finds them, stores the hashes of every perfect subtree they complete, and
signs a checkpoint. It runs right after each commit in-process and every few seconds from
Celery beat; the single ``AuditLogState`` row is locked ``FOR UPDATE SKIP LOCKED`` while
it works, so there is only ever one integrator extending the tree and a request that finds
it busy simply leaves the work to it. Before a checkpoint is signed, the new tree is
proved consistent with the last signed one: the log never signs a fork.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit import keys
from audit.leaves import commitment_for, leaf_bytes
from audit.models import AuditCheckpoint, AuditEvent, AuditLeaf, AuditLogState, AuditTreeNode
from tlog import merkle
from tlog.note import Checkpoint, open_checkpoint, sign_checkpoint

logger = logging.getLogger(__name__)

LEVEL_SHIFT = 48


class LogIntegrityError(Exception):
    """The stored tree disagrees with itself or with a signed checkpoint."""


class OutOfRange(ValueError):
    """A proof or entry asked for beyond the tree."""


def node_id(level: int, index: int) -> int:
    return (level << LEVEL_SHIFT) | index


def _node_of_range(start: int, end: int) -> int:
    level = (end - start).bit_length() - 1
    return node_id(level, start >> level)


class NodeReader:
    """Perfect-subtree hashes from the database, fetched in one query per proof: the
    proof is first computed with placeholders to learn which nodes it needs."""

    def __init__(self, known: dict[int, bytes] | None = None) -> None:
        self.known = dict(known or {})

    def load(self, ranges: Iterable[tuple[int, int]]) -> None:
        wanted = {_node_of_range(start, end) for start, end in ranges} - self.known.keys()
        if wanted:
            for node in AuditTreeNode.objects.filter(id__in=wanted):
                self.known[node.id] = bytes(node.hash)
        missing = wanted - self.known.keys()
        if missing:
            raise LogIntegrityError(f"tree nodes missing from the store: {sorted(missing)[:5]}")

    def __call__(self, start: int, end: int) -> bytes:
        return self.known[_node_of_range(start, end)]

    def run(self, compute, *args):
        """Run a tlog computation that reads subtree hashes, loading them in one query."""
        needed: list[tuple[int, int]] = []

        def record(start: int, end: int) -> bytes:
            needed.append((start, end))
            return bytes(merkle.HASH_SIZE)

        compute(*args, record)
        self.load(needed)
        return compute(*args, self)


def _state_for_update() -> AuditLogState | None:
    """The log state, locked; None when another integrator holds it."""
    return AuditLogState.objects.select_for_update(skip_locked=True).filter(pk=1).first()


def _subject_ids(events: list[AuditEvent]) -> dict[int, list[int]]:
    ids: dict[int, list[int]] = {event.pk: [] for event in events}
    for event in events:
        ids[event.pk] = [link.subject_id for link in event.subject_links.all()]
    return ids


@dataclass(frozen=True)
class IntegrationResult:
    appended: int
    tree_size: int
    checkpoint: AuditCheckpoint | None


def _append(state: AuditLogState, events: list[AuditEvent]) -> bytes:
    """Give ``events`` the next leaf indices, store their leaves and the nodes they
    complete, and return the new root."""
    size = state.tree_size
    reader = NodeReader()
    reader.load(merkle.perfect_subtrees(0, size))
    now = timezone.now()
    subjects = _subject_ids(events)
    leaves: list[AuditLeaf] = []
    nodes: list[AuditTreeNode] = []
    for offset, event in enumerate(events):
        index = size + offset
        commitment = commitment_for(event)
        data = leaf_bytes(
            origin=settings.AUDIT_LOG_ORIGIN,
            index=index,
            event=event,
            subject_ids=subjects[event.pk],
            commitment=commitment,
        )
        leaves.append(AuditLeaf(index=index, event=event, commitment=commitment, sequenced_at=now))
        digest, level, position = merkle.leaf_hash(data), 0, index
        while True:
            key = node_id(level, position)
            reader.known[key] = digest
            nodes.append(AuditTreeNode(id=key, hash=digest))
            if position % 2 == 0:
                break
            digest = merkle.node_hash(reader.known[node_id(level, position - 1)], digest)
            level, position = level + 1, position // 2
    AuditLeaf.objects.bulk_create(leaves)
    AuditTreeNode.objects.bulk_create(nodes)
    new_size = size + len(events)
    return merkle.tree_root(new_size, reader)


def _sign(state: AuditLogState) -> AuditCheckpoint:
    previous = AuditCheckpoint.objects.order_by("-tree_size").first()
    if previous is not None:
        if previous.tree_size > state.tree_size:
            raise LogIntegrityError(
                f"the tree ({state.tree_size}) is smaller than checkpoint {previous.pk} ({previous.tree_size})"
            )
        proof = NodeReader().run(merkle.consistency_proof, previous.tree_size, state.tree_size)
        try:
            merkle.verify_consistency(
                previous.tree_size, state.tree_size, proof, bytes(previous.root), bytes(state.root)
            )
        except merkle.ProofError as exc:
            raise LogIntegrityError(
                f"refusing to sign: size {state.tree_size} is not consistent with checkpoint {previous.pk}: {exc}"
            ) from exc
    signer = keys.signer()
    note = sign_checkpoint(Checkpoint(settings.AUDIT_LOG_ORIGIN, state.tree_size, bytes(state.root)), signer)
    return AuditCheckpoint.objects.create(
        tree_size=state.tree_size,
        root=bytes(state.root),
        note=note,
        key_id=signer.key_id.hex(),
        signed_at=timezone.now(),
    )


def _checkpoint_due(state: AuditLogState, force: bool) -> bool:
    latest = AuditCheckpoint.objects.order_by("-tree_size").only("tree_size", "signed_at").first()
    if latest is not None and latest.tree_size >= state.tree_size:
        return False
    if force or latest is None:
        return True
    return timezone.now() - latest.signed_at >= timedelta(seconds=settings.AUDIT_CHECKPOINT_INTERVAL_SECONDS)


def integrate(
    *,
    sweep: bool = False,
    full: bool = False,
    force_checkpoint: bool = False,
    batch_size: int = 2000,
    max_batches: int | None = None,
) -> IntegrationResult | None:
    """Sequence committed events and sign a checkpoint when one is due.

    The fast path (after a commit) looks only above the highest event id sequenced so
    far. ``sweep`` (the periodic task) also looks back over the grace window for events
    that committed after higher-numbered ones, and signs whatever is unsigned. ``full``
    looks at every event ever written. ``max_batches`` bounds the work of one call (the
    request path takes one batch). Returns None when another integrator is busy."""
    appended = 0
    with transaction.atomic():
        state = _state_for_update()
        if state is None:
            return None
        if full:
            floor = 0
        elif sweep:
            floor = state.scan_from_event_id
        else:
            floor = state.max_event_id
        batches = 0
        while True:
            events = list(
                AuditEvent.objects.filter(id__gt=floor, leaf__isnull=True)
                .order_by("id")
                .prefetch_related("subject_links")[:batch_size]
            )
            if not events:
                break
            state.root = _append(state, events)
            state.tree_size += len(events)
            state.max_event_id = max(state.max_event_id, events[-1].pk)
            appended += len(events)
            floor = events[-1].pk
            batches += 1
            if len(events) < batch_size or (max_batches is not None and batches >= max_batches):
                break
        if sweep or full:
            state.scan_from_event_id = _settled_event_id(state)
        state.save()
        checkpoint = _sign(state) if _checkpoint_due(state, force_checkpoint or sweep or full) else None
    if checkpoint is not None:
        keep_witness_copy(checkpoint)
    return IntegrationResult(appended=appended, tree_size=state.tree_size, checkpoint=checkpoint)


def _settled_event_id(state: AuditLogState) -> int:
    """The highest event id below which every event has committed (or never will):
    written longer ago than the grace period, and already sequenced."""
    cutoff = timezone.now() - timedelta(seconds=settings.AUDIT_SEQUENCING_GRACE_SECONDS)
    settled = (
        AuditEvent.objects.filter(occurred_at__lt=cutoff, id__lte=state.max_event_id)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    if settled is None:
        return state.scan_from_event_id
    return max(state.scan_from_event_id, settled)


def integrate_after_commit() -> None:
    """Called by ``transaction.on_commit`` after a transaction that wrote audit events.
    A failure here never fails the request: the event is committed and the periodic
    task sequences it."""
    try:
        # Bounded work on the request path: a backlog (after an outage, say) is left to
        # the periodic sweep rather than held against one request.
        integrate(max_batches=1)
    except Exception:
        logger.exception("audit log integration after commit failed; the periodic task will retry")


def witness_path():
    return settings.DATA_DIR / "audit-checkpoint.latest"


def keep_witness_copy(checkpoint: AuditCheckpoint) -> None:
    """Keep the newest signed checkpoint outside the database too, so that a database
    rolled back to an earlier state (or replaced) is caught by ``verify_audit``. The copy
    is only ever replaced by a checkpoint of a tree that still contains the one it holds."""
    path = witness_path()
    try:
        if path.exists():
            kept = open_checkpoint(path.read_text(), keys.verifier())
            if kept.origin == settings.AUDIT_LOG_ORIGIN and kept.size >= checkpoint.tree_size:
                return
            if root_at(kept.size) != kept.root:
                logger.critical(
                    "audit log no longer contains the tree of the kept checkpoint (size %s); not replacing it",
                    kept.size,
                )
                return
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(checkpoint.note)
        os.replace(temporary, path)
    except (OSError, ValueError, OutOfRange, LogIntegrityError):
        # Includes a kept copy that does not verify with this service's key.
        logger.exception("could not keep the witness copy of checkpoint %s", checkpoint.pk)


# --- Reads --------------------------------------------------------------------------------------


def tree_size() -> int:
    return AuditLogState.objects.values_list("tree_size", flat=True).get(pk=1)


def latest_checkpoint() -> AuditCheckpoint | None:
    return AuditCheckpoint.objects.order_by("-tree_size").first()


def checkpoint_covering(size: int) -> AuditCheckpoint | None:
    """The smallest signed checkpoint whose tree includes the first ``size`` leaves."""
    return AuditCheckpoint.objects.filter(tree_size__gte=size).order_by("tree_size").first()


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise OutOfRange(message)


def inclusion_proof(index: int, size: int) -> tuple[bytes, list[bytes]]:
    """The leaf hash at ``index`` and its inclusion proof in the tree of ``size`` leaves."""
    current = tree_size()
    _require(0 < size <= current, f"tree_size must be between 1 and the current tree size {current}")
    _require(0 <= index < size, f"index must be between 0 and tree_size - 1 ({size - 1})")
    reader = NodeReader()
    proof = reader.run(merkle.inclusion_proof, index, size)
    reader.load([(index, index + 1)])
    return reader(index, index + 1), proof


def consistency_proof(first: int, second: int) -> list[bytes]:
    current = tree_size()
    _require(0 <= first <= second <= current, f"need 0 <= first <= second <= the current tree size {current}")
    return NodeReader().run(merkle.consistency_proof, first, second)


def root_at(size: int) -> bytes:
    current = tree_size()
    _require(0 <= size <= current, f"size must be between 0 and the current tree size {current}")
    return NodeReader().run(merkle.tree_root, size)


@dataclass(frozen=True)
class Entry:
    index: int
    leaf: bytes
    leaf_hash: bytes
    event: AuditEvent


def entries(start: int, end: int) -> list[Entry]:
    """Leaf bytes rebuilt from the stored events for ``[start, end)``."""
    leaves = list(
        AuditLeaf.objects.filter(index__gte=start, index__lt=end)
        .select_related("event")
        .prefetch_related("event__subject_links")
        .order_by("index")
    )
    hashes = dict(
        AuditTreeNode.objects.filter(id__gte=node_id(0, start), id__lt=node_id(0, end)).values_list("id", "hash")
    )
    result = []
    for leaf in leaves:
        event = leaf.event
        data = leaf_bytes(
            origin=settings.AUDIT_LOG_ORIGIN,
            index=leaf.index,
            event=event,
            subject_ids=[link.subject_id for link in event.subject_links.all()],
            commitment=bytes(leaf.commitment),
        )
        stored_hash = bytes(hashes.get(node_id(0, leaf.index), b""))
        result.append(Entry(index=leaf.index, leaf=data, leaf_hash=stored_hash, event=event))
    return result


def perfect_subtree_hashes(start: int, end: int) -> list[bytes]:
    if start >= end:
        return []
    ranges = merkle.perfect_subtrees(start, end)
    reader = NodeReader()
    reader.load(ranges)
    return [reader(a, b) for a, b in ranges]
