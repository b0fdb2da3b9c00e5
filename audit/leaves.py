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
from datetime import UTC
from typing import Any

from audit.models import AuditEvent

LEAF_VERSION = 1
PERSONAL_FIELDS = ("actor_username", "ip_address", "user_agent", "request_id", "payload")


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def personal_data(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in PERSONAL_FIELDS}


def commitment_for(event: AuditEvent) -> bytes:
    """SHA-256(salt || canonical personal fields). ``payload`` must be as loaded from the
    database (dates already strings), which is how the integrator and verifier read it."""
    salt = bytes(event.commitment_salt or b"")
    return hashlib.sha256(salt + canonical_json(personal_data(event))).digest()


def format_time(event: AuditEvent) -> str:
    return event.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def leaf_bytes(*, origin: str, index: int, event: AuditEvent, subject_ids: list[int], commitment: bytes) -> bytes:
    return canonical_json(
        {
            "v": LEAF_VERSION,
            "origin": origin,
            "index": index,
            "sequence": event.pk,
            "occurred_at": format_time(event),
            "action": event.action,
            "outcome": event.outcome,
            "actor_id": event.actor_id,
            "actor_role": event.actor_role,
            "target_type": event.target_type,
            "target_id": event.target_id,
            "case_id": event.case_id,
            "subject_ids": sorted(subject_ids),
            "commitment": base64.b64encode(commitment).decode(),
        }
    )
