"""One error shape for every 4xx and 5xx answer, and the domain exceptions services raise.

Body: ``{"code": str, "message": str, "fields": {"field.path": [str, ...]}, "request_id": str}``.
``fields`` names each input field at fault (nested fields as dotted paths). Denied requests
(401, 403, and 404 for objects outside the caller's scope) are written to the audit log as
``request.denied``, and conflicts (409) as ``request.conflict``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """A domain error with its HTTP status. Raised by services and selectors."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"
    #: True when the service has already written its own audit event for this refusal.
    audited = False
    #: The people (subject ids) a refusal concerns, so that it shows in their access history.
    subject_ids: tuple[int, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, list[str] | str] | None = None,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = {key: [value] if isinstance(value, str) else list(value) for key, value in (fields or {}).items()}
        self.code = code or self.default_code
        self.extra = extra or {}


class InvalidInput(ServiceError):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"


class Forbidden(ServiceError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "forbidden"


class NotFound(ServiceError):
    """The object does not exist *or* is outside the caller's scope: the two are
    indistinguishable on purpose."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"

    def __init__(self, target_type: str, target_id: object, *, field: str | None = None) -> None:
        message = f"No {target_type.replace('_', ' ')} with id {target_id} is visible to you."
        super().__init__(message, fields={field: message} if field else None)
        self.target_type = target_type
        self.target_id = target_id


class Conflict(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class Unauthenticated(ServiceError):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "not_authenticated"


class Throttled(ServiceError):
    """Too many attempts: answered 429 with ``Retry-After`` (whole seconds)."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "throttled"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after))


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error structure as ``{"a.b": [messages]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if key != "non_field_errors" else "non_field_errors"
            flat.update(flatten_errors(value, f"{prefix}.{name}" if prefix else str(name)))
    elif isinstance(detail, list) and any(isinstance(item, (dict, list)) for item in detail):
        for index, value in enumerate(detail):
            if value:
                flat.update(flatten_errors(value, f"{prefix}.{index}" if prefix else str(index)))
    elif isinstance(detail, list):
        flat[prefix or "non_field_errors"] = [str(item) for item in detail]
    else:
        flat[prefix or "non_field_errors"] = [str(detail)]
    return flat


def error_body(request, *, code: str, message: str, fields: dict | None = None, **extra: Any) -> dict[str, Any]:
    body = {
        "code": code,
        "message": message,
        "fields": fields or {},
        "request_id": getattr(getattr(request, "_request", request), "request_id", ""),
    }
    body.update(extra)
    return body


def _classify(exc: Exception) -> tuple[int, str, str, dict[str, list[str]], dict[str, Any]]:
    if isinstance(exc, ServiceError):
        return exc.status_code, exc.code, exc.message, exc.fields, exc.extra
    if isinstance(exc, drf.ValidationError):
        fields = flatten_errors(exc.detail)
        names = ", ".join(sorted(fields))
        return 400, "invalid", f"Invalid input: {names}.", fields, {}
    if isinstance(exc, DjangoValidationError):
        fields = (
            {key: [str(m) for m in value] for key, value in exc.message_dict.items()}
            if hasattr(exc, "error_dict")
            else {"non_field_errors": [str(m) for m in exc.messages]}
        )
        return 400, "invalid", f"Invalid input: {', '.join(sorted(fields))}.", fields, {}
    if isinstance(exc, (Http404, drf.NotFound)):
        return 404, "not_found", "Not found.", {}, {}
    if isinstance(exc, (DjangoPermissionDenied,)):
        return 403, "forbidden", "You do not have permission to perform this action.", {}, {}
    if isinstance(exc, drf.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        return exc.status_code, str(code), str(exc.detail), {}, {}
    if isinstance(exc, (OperationalError, InterfaceError)):
        return 503, "service_unavailable", "The database is unavailable; nothing was saved. Try again shortly.", {}, {}
    if isinstance(exc, DatabaseError):
        return 500, "server_error", "A database error occurred; nothing was saved.", {}, {}
    return 500, "server_error", "An unexpected error occurred; nothing was saved.", {}, {}


#: Refusals written to the audit log: 401, 403 and 404 as ``request.denied``; 409 (a
#: conflict with what exists, which can reveal that it exists) as ``request.conflict``.
AUDITED_REFUSALS = {401: "request.denied", 403: "request.denied", 404: "request.denied", 409: "request.conflict"}


#: The object a URL acts on, by the URL's name: its target type in the audit log, and the
#: model, case and person fields that place a refusal on that case and in that person's
#: access history. Refusals raised without a target of their own (a 403 for an officer
#: who works on the case, a 409 for a step out of order) are recorded against it.
_TARGETS = {
    "case-detail": ("case", "cases.Case", "id", None),
    "case-close": ("case", "cases.Case", "id", None),
    "case-subject-create": ("case", "cases.Case", "id", None),
    "subject-detail": ("subject", "cases.Subject", None, "id"),
    "profile-create": ("subject", "cases.Subject", None, "id"),
    "consent-create": ("subject", "cases.Subject", None, "id"),
    "consent-withdraw": ("consent", "cases.Consent", None, "subject_id"),
    "viewing-detail": ("viewing", "cases.Viewing", "case_id", "subject_id"),
    "viewing-supersede": ("viewing", "cases.Viewing", "case_id", "subject_id"),
    "flag-detail": ("flag", "detection.Flag", "case_id", "subject_id"),
    "flag-decide": ("flag", "detection.Flag", "case_id", "subject_id"),
    "authorisation": ("authorisation", "authorisations.Authorisation", "case_id", "subjects"),
}
_TYPES = {
    **{target_type: (model, case, subjects) for target_type, model, case, subjects in _TARGETS.values()},
    "profile": ("cases.Profile", None, "subject_id"),
}


def _target_of(request) -> tuple[str, object]:
    match = getattr(request, "resolver_match", None)
    if match is None or "pk" not in match.kwargs:
        return "", ""
    name = match.url_name or ""
    known = _TARGETS.get(name) or (_TARGETS["authorisation"] if name.startswith("authorisation-") else None)
    return (known[0], match.kwargs["pk"]) if known else ("", "")


def _scope_of(target_type: str, target_id: object) -> tuple[int | None, list[int]]:
    """The case and people of the object a refusal concerns, if it exists."""
    from django.apps import apps

    text = str(target_id)
    if target_type not in _TYPES or not (text.isascii() and text.isdigit()) or int(text) > 2**63 - 1:
        return None, []
    model_name, case_field, subject_field = _TYPES[target_type]
    objects = apps.get_model(model_name).objects.filter(pk=int(text))
    fields = [field for field in (case_field, subject_field) if field]
    rows = list(objects.values_list(*fields))
    if not rows:
        return None, []
    case_id = rows[0][0] if case_field else None
    subject_ids = sorted({row[-1] for row in rows if row[-1] is not None}) if subject_field else []
    return case_id, subject_ids


def _audit_refusal(request, status_code: int, code: str, message: str, exc: Exception) -> None:
    from audit.models import Outcome
    from audit.services import AuditContext, audit_record

    target_type = getattr(exc, "target_type", "")
    target_id = getattr(exc, "target_id", "")
    if not target_type:
        target_type, target_id = _target_of(request)
    case_id, subject_ids = _scope_of(target_type, target_id)
    subject_ids = sorted({*subject_ids, *getattr(exc, "subject_ids", ())})
    ctx = AuditContext.from_request(request)
    sender = getattr(exc, "actor", None)  # who sent it, when the refusal came before sign-in was accepted
    if ctx.actor is None and sender is not None and sender.is_authenticated:
        ctx = dataclasses.replace(ctx, actor=sender)
    audit_record(
        ctx=ctx,
        action=AUDITED_REFUSALS[status_code],
        outcome=Outcome.DENIED,
        target_type=target_type,
        target_id=target_id,
        case_id=case_id,
        subject_ids=subject_ids,
        payload={
            "method": request.method,
            "path": request.path[:500],
            "status": status_code,
            "code": code,
            "reason": message[:500],
        },
    )


#: The renderers an error answer may be written by: JSON, and the browsable API's page.
ERROR_FORMATS = ("json", "api")


def exception_handler(exc: Exception, context: dict) -> Response:
    request = context.get("request")
    status_code, code, message, fields, extra = _classify(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, drf.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
    elif isinstance(exc, Throttled):
        headers["Retry-After"] = str(exc.retry_after)
    if status_code >= 500:
        logger.exception("request failed with %s", status_code, exc_info=exc)
    elif request is not None and status_code in AUDITED_REFUSALS and not getattr(exc, "audited", False):
        try:
            _audit_refusal(request, status_code, code, message, exc)
        except DatabaseError:
            logger.exception("could not audit a denied request")
            status_code, code, message, fields, extra = (
                503,
                "service_unavailable",
                "The audit log is unavailable.",
                {},
                {},
            )
    body = error_body(request, code=code, message=message, fields=fields, **extra)
    renderer = getattr(request, "accepted_renderer", None) if request is not None else None
    if request is not None and getattr(renderer, "format", None) not in ERROR_FORMATS:
        # An error is never a CSV file, a YAML schema or a template page: it has the one
        # JSON shape (or the browsable API's page of it).
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
    return Response(body, status=status_code, headers=headers)
