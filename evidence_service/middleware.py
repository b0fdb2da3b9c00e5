"""Request correlation: every request gets an id, made here (a caller cannot choose the
id its actions are recorded under), echoed in the ``X-Request-ID`` response header and
written into each audit event the request causes."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware import common as django_common


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = uuid.uuid4().hex
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


def _policy(**directives: str) -> str:
    return "; ".join(f"{name.replace('_', '-')} {value}" for name, value in directives.items())


#: Every response: scripts, styles, images, fonts and connections from this origin only,
#: no plugins, no framing, no <base> rewriting, forms posted only back here. Nothing inline.
CONTENT_SECURITY_POLICY = _policy(
    default_src="'self'",
    script_src="'self'",
    style_src="'self'",
    img_src="'self' data:",
    font_src="'self'",
    connect_src="'self'",
    object_src="'none'",
    base_uri="'none'",
    form_action="'self'",
    frame_ancestors="'none'",
)
#: The interactive API docs only: drf-spectacular's Swagger UI page carries an inline
#: <style> block and Swagger UI sets inline style attributes, so styles (never scripts:
#: the page's start-up script is served as a file by the split view) may be inline there.
DOCS_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
#: URL names whose pages get the docs policy.
DOCS_VIEW_NAMES = frozenset({"docs"})


class ContentSecurityPolicyMiddleware:
    """Adds ``Content-Security-Policy`` to every response (Django 5.2 has no built-in
    CSP). The other security headers come from Django's ``SecurityMiddleware`` and
    ``XFrameOptionsMiddleware`` (see the security settings)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            match = getattr(request, "resolver_match", None)
            docs = match is not None and match.view_name in DOCS_VIEW_NAMES
            response["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY if docs else CONTENT_SECURITY_POLICY
        return response


class CommonMiddleware(django_common.CommonMiddleware):
    """Django's, except that an API URL without its trailing slash is not redirected: a
    client following the 301 would send its POST again as a GET, which would answer 200
    with a list while nothing was saved. The API answers such a URL 404, naming the URL
    with the slash (``evidence_service.api.views.not_found``)."""

    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        if request.path_info.startswith("/api/"):
            return False
        return super().should_redirect_with_slash(request)


class RequestBodyMiddleware:
    """API request bodies the service would misread are refused in the error shape, before
    any view: a chunked body without Content-Length (411; the WSGI layer hands Django none
    of it, and the request would be answered as if it had no body), and a compressed one
    (415; it would be parsed as if it were JSON text)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/api/") and request.method not in ("GET", "HEAD", "OPTIONS"):
            refusal = self.refusal(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    @staticmethod
    def refusal(request: HttpRequest) -> HttpResponse | None:
        from evidence_service.api.errors import error_body

        meta = request.META
        if meta.get("HTTP_TRANSFER_ENCODING", "").strip() and not meta.get("CONTENT_LENGTH"):
            body = error_body(
                request,
                code="length_required",
                message="Send the body with a Content-Length header; chunked bodies are not read.",
                fields={"Content-Length": ["This header is required with a body."]},
            )
            return JsonResponse(body, status=411)
        encoding = meta.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding not in ("", "identity"):
            body = error_body(
                request,
                code="unsupported_media_type",
                message=f"Bodies encoded as {encoding[:40]!r} are not accepted; send plain JSON.",
                fields={"Content-Encoding": ["Only identity (no encoding) is accepted."]},
            )
            return JsonResponse(body, status=415)
        return None
