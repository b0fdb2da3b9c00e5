"""Writing audit events. Every service calls ``audit_record`` itself, inside the same
transaction as the change it records, so an action and its event commit or fail together."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from audit.models import AuditEvent, AuditSubjectLink, Outcome
from core.services import service
from evidence_service.db import insert_with_links

_ACTION = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")


@dataclass(frozen=True)
class AuditContext:
    """Who is acting and from where; built once per request (or per command) and
    handed to every service."""

    actor: Any | None  # accounts.User, or None for anonymous and system actions
    ip_address: str | None = None
    user_agent: str = ""
    request_id: str = ""
    via: str = "api"

    @classmethod
    def from_request(cls, request) -> AuditContext:
        user = getattr(request, "user", None)
        return cls(
            actor=user if user is not None and user.is_authenticated else None,
            ip_address=_client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:512],
            request_id=getattr(request, "request_id", ""),
        )

    @classmethod
    def command(cls, name: str) -> AuditContext:
        """A management command run by an operator on the server."""
        return cls(actor=None, via=f"command:{name}")


def _client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or the entry in X-Forwarded-For written by the
    outermost trusted proxy when ``TRUSTED_PROXY_HOPS`` says proxies are in front."""
    hops = settings.TRUSTED_PROXY_HOPS
    if hops:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return _valid_ip(forwarded[-hops])
    return _valid_ip(request.META.get("REMOTE_ADDR"))


def _valid_ip(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


# No savepoint inside the caller's transaction: if this fails, so does the action.
@service(savepoint=False)
def audit_record(
    *,
    ctx: AuditContext,
    action: str,
    outcome: str = Outcome.SUCCESS,
    target_type: str = "",
    target_id: object = "",
    case_id: int | None = None,
    subject_ids: Iterable[int] = (),
    payload: dict[str, Any] | None = None,
    target: Model | None = None,
    alongside: Model | None = None,
) -> AuditEvent:
    """Append one event. Must run inside the transaction of the action it records.
    ``target``: a new row the event records the creation of, inserted with the event (one
    statement on PostgreSQL); its key becomes the event's ``target_id``. ``alongside``: a
    new row the action writes besides (the event names its target itself), inserted with
    the event in the same way."""
    if not _ACTION.match(action):
        raise ValueError(f"audit action {action!r} is not of the form resource.verb")
    if outcome not in Outcome.values:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    if target is not None and (target_id not in (None, "") or alongside is not None):
        raise ValueError("give the target or its id, not both, and no other row with a new target")
    actor = ctx.actor
    body = _storable(dict(payload or {}))
    if ctx.via != "api":
        body.setdefault("via", ctx.via)
    event = AuditEvent(
        occurred_at=timezone.now(),
        actor_id=actor.pk if actor else None,
        actor_username=actor.get_username() if actor else "",
        actor_role=getattr(actor, "role", "") if actor else "",
        action=action,
        outcome=outcome,
        target_type=target_type,
        target_id=_storable(str(target_id))[:64] if target_id not in (None, "") else "",
        case_id=case_id,
        ip_address=ctx.ip_address,
        user_agent=_storable(ctx.user_agent)[:512],
        request_id=ctx.request_id,
        payload=body,
        commitment_salt=os.urandom(16),
    )
    insert_with_links(
        event,
        AuditSubjectLink,
        "subject_id",
        sorted({int(s) for s in subject_ids if s is not None}),
        before=target if target is not None else alongside,
        key_into="target_id" if target is not None else "",
    )
    _integrate_after_commit()
    return event


def _storable(value: Any) -> Any:
    """What the caller sent, made storable: NUL characters (which PostgreSQL text and
    jsonb refuse) are replaced, so that recording a hostile request cannot fail."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(str(key)): _storable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        # Lists of ids (a flag's counted looks, a hundred or more) are the common case.
        return [item if type(item) is int else _storable(item) for item in value]
    return value


def _integrate_after_commit() -> None:
    """Once per transaction, sequence the new events into the Merkle tree after commit."""
    if not settings.AUDIT_INTEGRATE_AFTER_COMMIT:
        return
    from audit.log import integrate_after_commit

    connection = transaction.get_connection()
    if any(callback is integrate_after_commit for _ids, callback, _robust in connection.run_on_commit):
        return
    transaction.on_commit(integrate_after_commit)
