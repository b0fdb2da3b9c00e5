"""Service-wide endpoints: health, and JSON answers for URLs no view matched."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from evidence_service.api.errors import error_body

logger = logging.getLogger(__name__)


@csrf_exempt
@require_safe
def healthz(request):
    """Database (and Redis when configured) reachability, for load balancers and probes."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception:  # any failure means not healthy; the detail goes to the log only
        logger.exception("health check: database unavailable")
        checks["database"] = "unavailable"
    if settings.REDIS_URL:
        try:
            import redis

            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
            checks["redis"] = "ok"
        except Exception:
            logger.exception("health check: redis unavailable")
            checks["redis"] = "unavailable"
    else:
        checks["redis"] = "not_configured"
    healthy = all(value in ("ok", "not_configured") for value in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503)


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
