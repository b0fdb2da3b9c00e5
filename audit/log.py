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

import json
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit import keys
from audit.leaves import LEAF_COLUMNS, commitment_from_row, leaf_bytes, leaf_from_row
from audit.models import AuditCheckpoint, AuditEvent, AuditLeaf, AuditLogState, AuditSubjectLink, AuditTreeNode
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

    def run(self, compute, *args, also: Iterable[tuple[int, int]] = ()):
        """Run a tlog computation that reads subtree hashes, loading them (and the
        ranges in ``also``) in one query."""
        needed: list[tuple[int, int]] = list(also)

        def record(start: int, end: int) -> bytes:
            needed.append((start, end))
            return bytes(merkle.HASH_SIZE)

        compute(*args, record)
        self.load(needed)
        return compute(*args, self)


def _state_for_update() -> AuditLogState | None:
    """The log state, locked; None when another integrator holds it."""
    return AuditLogState.objects.select_for_update(skip_locked=True).filter(pk=1).first()


@dataclass(frozen=True)
class IntegrationResult:
    appended: int
    tree_size: int
    checkpoint: AuditCheckpoint | None


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
    checkpoint = AuditCheckpoint.objects.create(
        tree_size=state.tree_size,
        root=bytes(state.root),
        note=note,
        key_id=signer.key_id.hex(),
        signed_at=timezone.now(),
    )
    if previous is not None and previous.key_id != checkpoint.key_id:
        _record_key_rotation(previous, checkpoint, signer.verifier())
    return checkpoint


def _record_key_rotation(previous: AuditCheckpoint, checkpoint: AuditCheckpoint, verifier) -> None:
    """The first checkpoint signed with a new key is recorded as ``audit.key_rotated``, in
    its own transaction, naming both keys: however the key was changed, the log says when.
    An earlier key that is no longer trusted (not in ``AUDIT_VERIFIER_KEYS``) is said so
    too, and logged: the checkpoints it signed no longer verify until it is trusted again."""
    from audit.services import AuditContext, audit_record

    previous_trusted = keys.verifier_for(previous.key_id) is not None
    if not previous_trusted:
        logger.error(
            "audit signing key changed from %s to %s but %s is not in AUDIT_VERIFIER_KEYS: "
            "the checkpoints it signed no longer verify",
            previous.key_id,
            checkpoint.key_id,
            previous.key_id,
        )
    audit_record(
        ctx=AuditContext(actor=None, via="audit-log"),
        action="audit.key_rotated",
        target_type="audit_checkpoint",
        target_id=checkpoint.pk,
        payload={
            "previous_key_id": previous.key_id,
            "key_id": checkpoint.key_id,
            "verifier_key": verifier.encode(),
            "previous_checkpoint_tree_size": previous.tree_size,
            "tree_size": checkpoint.tree_size,
            "previous_key_trusted": previous_trusted,
        },
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
            # Plain rows, hashed and written in bulk (as ``sequence_backlog`` does): the
            # periodic sweep sequences every event the service writes.
            rows, subjects = _unsequenced_batch(floor, batch_size)
            if not rows:
                break
            state.root = _append_rows(state.tree_size, rows, subjects)
            state.tree_size += len(rows)
            state.max_event_id = max(state.max_event_id, rows[-1][0])
            appended += len(rows)
            floor = rows[-1][0]
            batches += 1
            if len(rows) < batch_size or (max_batches is not None and batches >= max_batches):
                break
        if sweep or full:
            state.scan_from_event_id = _settled_event_id(state)
        state.save()
        checkpoint = _sign(state) if _checkpoint_due(state, force_checkpoint or sweep or full) else None
    if checkpoint is not None:
        keep_witness_copy(checkpoint)
    return IntegrationResult(appended=appended, tree_size=state.tree_size, checkpoint=checkpoint)


def sequence_backlog(
    *,
    full: bool = False,
    batch_size: int = 50_000,
    limit: int | None = None,
    read_ahead: bool = False,
    progress: Callable[[int], None] | None = None,
) -> IntegrationResult:
    """Sequence every unsequenced event, as ``integrate(sweep=True)`` (or ``full=True``)
    would, for a large backlog: a bulk load, a long outage, a restored database.

    The result is the same tree: the same events at the same indices, the same leaves,
    nodes and root, and a checkpoint signed once at the end, after the new tree is proved
    consistent with the last signed one. It reads events as plain rows rather than model
    instances and writes leaves and nodes with PostgreSQL's COPY (a multi-row INSERT
    elsewhere). Each batch is one transaction holding the log state's lock (waiting for
    it rather than skipping, since this is an operator's command), so the request path's
    integrators can take turns in between. ``limit`` stops after that many events (the
    rest are left to the next run). ``read_ahead`` reads the next batch on a second
    database connection while this one is hashed and written; it sees only committed
    events, so it applies on PostgreSQL outside any surrounding transaction."""
    appended = 0
    floor: int | None = None
    expected_size: int | None = None
    ahead: Future | None = None
    read_ahead = read_ahead and connection.vendor == "postgresql" and not connection.in_atomic_block
    reader = ThreadPoolExecutor(max_workers=1) if read_ahead else None
    try:
        while True:
            wanted = batch_size if limit is None else min(batch_size, limit - appended)
            if wanted <= 0:
                break
            with transaction.atomic():
                state = AuditLogState.objects.select_for_update().get(pk=1)
                if floor is None:
                    floor = 0 if full else state.scan_from_event_id
                batch = ahead.result() if ahead is not None else None
                if batch is None or state.tree_size != expected_size or len(batch[0]) < wanted:
                    # Nothing read ahead, another integrator appended in between, or the
                    # end of the backlog (read again, under the lock, to be sure of it).
                    batch = _unsequenced_batch(floor, wanted)
                rows, subjects = batch
                ahead = None
                if reader is not None and len(rows) == wanted:
                    after = appended + len(rows)
                    next_wanted = batch_size if limit is None else min(batch_size, limit - after)
                    ahead = reader.submit(_unsequenced_batch, rows[-1][0], next_wanted)
                if rows:
                    state.root = _append_rows(state.tree_size, rows, subjects)
                    state.tree_size += len(rows)
                    state.max_event_id = max(state.max_event_id, rows[-1][0])
                    floor = rows[-1][0]
                    appended += len(rows)
                if len(rows) < wanted:
                    state.scan_from_event_id = _settled_event_id(state)
                state.save()
                expected_size = state.tree_size
            if progress is not None and rows:
                progress(appended)
            if len(rows) < wanted:
                break
    finally:
        if reader is not None:
            reader.submit(lambda: connection.close()).result()  # the reader thread's own connection
            reader.shutdown()
    with transaction.atomic():
        state = AuditLogState.objects.select_for_update().get(pk=1)
        checkpoint = _sign(state) if _checkpoint_due(state, force=True) else None
    if checkpoint is not None:
        keep_witness_copy(checkpoint)
    return IntegrationResult(appended=appended, tree_size=state.tree_size, checkpoint=checkpoint)


def _unsequenced_batch(floor: int, count: int) -> tuple[list[tuple], dict[int, list[int]]]:
    """The next ``count`` unsequenced events above ``floor`` as ``LEAF_COLUMNS`` rows, and
    the people each touched."""
    if count <= 0:
        return [], {}
    if connection.vendor == "postgresql":
        rows = _unsequenced_rows_postgresql(floor, count)
    else:
        rows = list(
            AuditEvent.objects.filter(id__gt=floor, leaf__isnull=True).order_by("id").values_list(*LEAF_COLUMNS)[:count]
        )
    subjects: dict[int, list[int]] = {}
    if rows:
        first, last = rows[0][0], rows[-1][0]
        # A run of ids (or too many for one IN list): one range of the (event, subject) index.
        if last - first < 4 * len(rows) or len(rows) > 1000:
            links = AuditSubjectLink.objects.filter(event_id__gte=first, event_id__lte=last)
        else:  # a few late commits far apart: not every link in between
            links = AuditSubjectLink.objects.filter(event_id__in=[row[0] for row in rows])
        for event_id, subject_id in links.values_list("event_id", "subject_id"):
            subjects.setdefault(event_id, []).append(subject_id)
    return rows, subjects


def _unsequenced_rows_postgresql(floor: int, count: int) -> list[tuple]:
    """The ORM's rows, faster: the time comes already as the leaf writes it (strftime's
    ``%Y`` does not pad years before 1000, hence the ``ltrim``), sparing a datetime per
    row, and the payload is decoded as ``JSONField`` decodes it."""
    columns = ", ".join(
        "ltrim(to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY'), '0') || "
        "to_char(e.occurred_at AT TIME ZONE 'UTC', '-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        if name == "occurred_at"
        else f'e."{name}"'
        for name in LEAF_COLUMNS
    )
    sql = (
        f'SELECT {columns} FROM "{AuditEvent._meta.db_table}" e WHERE e.id > %s AND NOT EXISTS '
        f'(SELECT 1 FROM "{AuditLeaf._meta.db_table}" l WHERE l.event_id = e.id) ORDER BY e.id LIMIT %s'
    )
    payload = LEAF_COLUMNS.index("payload")
    loads = json.loads
    with connection.cursor() as cursor:
        cursor.execute(sql, [floor, count])
        return [(*row[:payload], loads(row[payload]), *row[payload + 1 :]) for row in cursor.fetchall()]


_LEAF_SLICE = 5000


def _append_rows(size: int, rows: list[tuple], subjects: dict[int, list[int]]) -> bytes:
    """Give the events (read as ``LEAF_COLUMNS`` rows) the leaf indices from ``size`` on,
    store their leaves and the nodes they complete, in bulk, and return the new root."""
    # The compact range of the tree so far, smallest subtree last: exactly the left
    # siblings that the next leaves complete (a ``merkle.TreeBuilder`` stack).
    reader = NodeReader()
    frontier = merkle.perfect_subtrees(0, size)
    reader.load(frontier)
    stack = [reader(start, end) for start, end in frontier]
    origin = settings.AUDIT_LOG_ORIGIN
    leaf_hash, node_hash = merkle.leaf_hash, merkle.node_hash
    nodes: list[tuple[int, bytes]] = []
    no_subjects: list[int] = []
    with _leaf_writer(timezone.now()) as write_leaves:
        # In slices, so that the database stores one slice while the next is hashed.
        for first in range(0, len(rows), _LEAF_SLICE):
            leaves: list[tuple[int, int, bytes]] = []
            for index, row in enumerate(rows[first : first + _LEAF_SLICE], start=size + first):
                commitment = commitment_from_row(row)
                leaves.append((index, row[0], commitment))
                data = leaf_from_row(
                    origin=origin,
                    index=index,
                    row=row,
                    subject_ids=subjects.get(row[0], no_subjects),
                    commitment=commitment,
                )
                digest, level, position = leaf_hash(data), 0, index
                nodes.append((position, digest))
                while position & 1:
                    digest = node_hash(stack.pop(), digest)
                    level, position = level + 1, position >> 1
                    nodes.append(((level << LEVEL_SHIFT) | position, digest))
                stack.append(digest)
            write_leaves(leaves)
    _insert_nodes(nodes)
    root = stack[-1] if stack else merkle.EMPTY_ROOT
    for left in reversed(stack[:-1]):
        root = node_hash(left, root)
    return root


# Insert only (the tables are append-only): COPY on PostgreSQL, bulk INSERT elsewhere. In
# COPY's text format columns are tab-separated and a bytea is \\x<hex>, its backslash doubled.


@contextmanager
def _leaf_writer(now):
    if connection.vendor != "postgresql":

        def create(leaves: list[tuple[int, int, bytes]]) -> None:
            AuditLeaf.objects.bulk_create(
                AuditLeaf(index=index, event_id=event_id, commitment=commitment, sequenced_at=now)
                for index, event_id, commitment in leaves
            )

        yield create
        return
    stamp = now.isoformat()
    statement = f'COPY "{AuditLeaf._meta.db_table}" ("index", "event_id", "commitment", "sequenced_at") FROM STDIN'
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        # Each slice is sent as soon as it is hashed: the server stores it meanwhile.
        with raw.copy(statement) as copy:

            def send(leaves: list[tuple[int, int, bytes]]) -> None:
                copy.write(
                    "".join(
                        f"{index}\t{event_id}\t\\\\x{commitment.hex()}\t{stamp}\n"
                        for index, event_id, commitment in leaves
                    )
                )

            yield send


def _insert_nodes(nodes: list[tuple[int, bytes]]) -> None:
    if connection.vendor != "postgresql":
        AuditTreeNode.objects.bulk_create(AuditTreeNode(id=key, hash=digest) for key, digest in nodes)
        return
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f'COPY "{AuditTreeNode._meta.db_table}" ("id", "hash") FROM STDIN') as copy:
            copy.write("".join(f"{key}\t\\\\x{digest.hex()}\n" for key, digest in nodes))


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
            kept = open_checkpoint(path.read_text(), keys.trusted_verifiers())
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
        # Includes a kept copy that does not verify with any of this service's trusted keys.
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
    """The leaf hash at ``index`` and its inclusion proof in the tree of ``size`` leaves.

    One query when the answer exists: the proof's nodes cover ``[0, size)`` and a node is
    stored only once the tree has all its leaves, so finding them all shows that ``size``
    is within the tree; the tree's size is read only to explain a refusal."""
    if 0 <= index < size:
        try:
            reader = NodeReader()
            proof = reader.run(merkle.inclusion_proof, index, size, also=[(index, index + 1)])
            return reader(index, index + 1), proof
        except LogIntegrityError:
            pass  # beyond the tree (refused below), or nodes lost (raised again below)
    current = tree_size()
    _require(0 < size <= current, f"tree_size must be between 1 and the current tree size {current}")
    _require(0 <= index < size, f"index must be between 0 and tree_size - 1 ({size - 1})")
    reader = NodeReader()
    proof = reader.run(merkle.inclusion_proof, index, size, also=[(index, index + 1)])
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
