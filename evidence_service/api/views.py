"""Service-wide endpoints: health, and JSON answers for URLs no view matched."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from audit.health import audit_health
from evidence_service.api.errors import error_body

logger = logging.getLogger(__name__)


@csrf_exempt
@require_safe
def healthz(request):
    """For load balancers, probes and monitoring: 200 ``{"status": "ok", ...}``, or 503
    ``{"status": "unavailable", "reasons": [...], ...}`` naming each problem:
    ``database_unavailable``, ``redis_unavailable``, ``audit_sequencing_stalled`` (an audit
    event has waited longer than ``AUDIT_HEALTH_MAX_LAG_SECONDS`` for its place in the
    Merkle tree) and, with a broker, ``beat_stalled`` (the periodic task Celery beat sends
    every 2 seconds has not run for that long: beat, or every worker, is down)."""
    checks: dict[str, object] = {}
    reasons: list[str] = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception:  # any failure means not healthy; the detail goes to the log only
        logger.exception("health check: database unavailable")
        checks["database"] = "unavailable"
        reasons.append("database_unavailable")
    if settings.REDIS_URL:
        try:
            import redis

            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
            checks["redis"] = "ok"
        except Exception:
            logger.exception("health check: redis unavailable")
            checks["redis"] = "unavailable"
            reasons.append("redis_unavailable")
    else:
        checks["redis"] = "not_configured"
    if checks["database"] == "ok":
        try:
            audit = audit_health()
        except Exception:
            logger.exception("health check: the audit log's state could not be read")
            reasons.append("audit_log_unreadable")
        else:
            if found := audit.reasons():
                reasons.extend(found)
                checks["audit_sequencing"] = {
                    "oldest_unsequenced_seconds": _rounded(audit.oldest_unsequenced_seconds),
                    "beat_seconds": _rounded(audit.beat_seconds),
                    "max_lag_seconds": settings.AUDIT_HEALTH_MAX_LAG_SECONDS,
                }
    if reasons:
        for reason in reasons:
            logger.warning("health check: %s", reason)
        return JsonResponse({"status": "unavailable", "reasons": reasons, **checks}, status=503)
    return JsonResponse({"status": "ok", **checks})


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def not_found(request, exception=None):
    message = "Not found."
    if not request.path_info.endswith("/"):
        try:
            resolve(request.path_info + "/")
        except Resolver404:
            pass
        else:
            message = f"Not found. The URL ends with a slash: {request.path}/"
    return JsonResponse(error_body(request, code="not_found", message=message), status=404)


def bad_request(request, exception=None):
    """A request Django refused before any view (a Host not in ALLOWED_HOSTS, say)."""
    return JsonResponse(error_body(request, code="bad_request", message="Bad request."), status=400)


def permission_denied(request, exception=None):
    return JsonResponse(
        error_body(request, code="forbidden", message="You do not have permission to perform this action."),
        status=403,
    )


def server_error(request):
    return JsonResponse(
        error_body(request, code="server_error", message="An unexpected error occurred; nothing was saved."),
        status=500,
    )
