"""The canonical leaf of an audit event: the exact bytes the Merkle tree hashes.

Leaf bytes are UTF-8 JSON with keys sorted, no insignificant whitespace and non-ASCII
characters written as themselves (``json.dumps(..., sort_keys=True, separators=(",", ":"),
ensure_ascii=False)``), of this object (version 1)::

    {"v": 1,
     "origin": "<AUDIT_LOG_ORIGIN>",        the log's name
     "index": 41,                           the leaf index
     "sequence": 1093,                      the event's id
     "occurred_at": "2026-11-26T09:12:50.281159Z",   UTC, microseconds
     "action": "viewing.create", "outcome": "success",
     "actor_id": 7, "actor_role": "practitioner",
     "target_type": "viewing", "target_id": "88",
     "case_id": 12, "subject_ids": [3, 5],
     "commitment": "<base64 SHA-256>"}

Committed directly: everything above — ids, roles, codes and times, none of which names
a person. Committed through ``commitment``: the personal fields ``actor_username``,
``ip_address``, ``user_agent``, ``request_id`` and ``payload`` (which holds names and
free text), as SHA-256(salt || canonical JSON of those five fields) with a random 16-byte
salt stored with the event. When a retention period ends, those fields and the salt can be
erased; the stored commitment still rebuilds the same leaf, so the tree still verifies,
and without the salt the erased values cannot be guessed back from it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from audit.models import AuditEvent

LEAF_VERSION = 1
PERSONAL_FIELDS = ("actor_username", "ip_address", "user_agent", "request_id", "payload")


# One encoder, built once: exactly what ``json.dumps(value, sort_keys=True,
# separators=(",", ":"), ensure_ascii=False)`` makes, without building an encoder per call
# (which matters when millions of leaves are built or verified).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

#: The event's columns a leaf is built from, in the order ``leaf_from_row`` takes them.
LEAF_COLUMNS = (
    "id",
    "occurred_at",
    "action",
    "outcome",
    "actor_id",
    "actor_role",
    "target_type",
    "target_id",
    "case_id",
    *PERSONAL_FIELDS,
    "commitment_salt",
)


def canonical_json(value: Any) -> bytes:
    return _CANONICAL.encode(value).encode()


def personal_data(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in PERSONAL_FIELDS}


def commitment_for(event: AuditEvent) -> bytes:
    """SHA-256(salt || canonical personal fields). ``payload`` must be as loaded from the
    database (dates already strings), which is how the integrator and verifier read it."""
    salt = bytes(event.commitment_salt or b"")
    return hashlib.sha256(salt + canonical_json(personal_data(event))).digest()


def format_time(event: AuditEvent) -> str:
    return _utc_text(event.occurred_at)


def _utc_text(moment: datetime) -> str:
    """``%Y-%m-%dT%H:%M:%S.%fZ`` in UTC (isoformat is the faster way to the same text; it
    pads years before 1000, which strftime does not everywhere)."""
    moment = moment.astimezone(UTC)
    if moment.year < 1000:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.isoformat(timespec="microseconds")[:26] + "Z"


def leaf_bytes(*, origin: str, index: int, event: AuditEvent, subject_ids: list[int], commitment: bytes) -> bytes:
    return _leaf(
        origin,
        index,
        event.pk,
        event.occurred_at,
        event.action,
        event.outcome,
        event.actor_id,
        event.actor_role,
        event.target_type,
        event.target_id,
        event.case_id,
        subject_ids,
        commitment,
    )


def _leaf(
    origin: str,
    index: int,
    sequence: int,
    occurred_at: datetime | str,  # or already as the leaf writes it
    action: str,
    outcome: str,
    actor_id: int | None,
    actor_role: str,
    target_type: str,
    target_id: str,
    case_id: int | None,
    subject_ids: list[int],
    commitment: bytes,
) -> bytes:
    return canonical_json(
        {
            "v": LEAF_VERSION,
            "origin": origin,
            "index": index,
            "sequence": sequence,
            "occurred_at": occurred_at if isinstance(occurred_at, str) else _utc_text(occurred_at),
            "action": action,
            "outcome": outcome,
            "actor_id": actor_id,
            "actor_role": actor_role,
            "target_type": target_type,
            "target_id": target_id,
            "case_id": case_id,
            "subject_ids": sorted(subject_ids),
            "commitment": base64.b64encode(commitment).decode(),
        }
    )


def commitment_from_row(row: tuple) -> bytes:
    """``commitment_for`` of an event read as a ``LEAF_COLUMNS`` tuple (values as the ORM
    loads them)."""
    personal = dict(zip(PERSONAL_FIELDS, row[9:14], strict=True))
    return hashlib.sha256(bytes(row[14] or b"") + canonical_json(personal)).digest()


def leaf_from_row(*, origin: str, index: int, row: tuple, subject_ids: list[int], commitment: bytes) -> bytes:
    """``leaf_bytes`` of an event read as a ``LEAF_COLUMNS`` tuple: the same bytes, for
    code that reads events in bulk without building model instances."""
    return _leaf(origin, index, *row[:9], subject_ids, commitment)
