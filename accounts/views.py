"""Session sign-in for the browsable pages, audited and throttled like API sign-in."""

from __future__ import annotations

import logging

from django.contrib.auth import views as auth_views
from django.db import DatabaseError, transaction
from django.http import HttpResponseForbidden

from accounts.services import login_attempt_start, session_login_record
from audit.models import Outcome
from audit.services import AuditContext, audit_record
from evidence_service.api.errors import Throttled

logger = logging.getLogger(__name__)


class AuditedLoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        # Checked before the form is validated: validating it checks the password.
        try:
            self.login_attempt = login_attempt_start(
                ctx=AuditContext.from_request(request), username=request.POST.get("username", ""), method="session"
            )
        except Throttled as exc:
            form = self.form_class(request, initial={"username": request.POST.get("username", "")[:150]})
            response = self.render_to_response(
                self.get_context_data(form=form, throttled_minutes=-(-exc.retry_after // 60)), status=exc.status_code
            )
            response["Retry-After"] = str(exc.retry_after)
            return response
        try:
            response = super().post(request, *args, **kwargs)
        except BaseException:
            self.login_attempt.release()
            raise
        return response

    def form_valid(self, form):
        # The sign-in and its audit event commit together, or neither does.
        with transaction.atomic():
            session_login_record(
                ctx=AuditContext.from_request(self.request), user=form.get_user(), username=form.get_user().username
            )
            response = super().form_valid(form)
            self.login_attempt.succeeded()
        return response

    def form_invalid(self, form):
        # The attempt stays counted as a failure.
        session_login_record(
            ctx=AuditContext.from_request(self.request), user=None, username=form.data.get("username", "")
        )
        return super().form_invalid(form)


def csrf_failure(request, reason: str = ""):
    """A session-page POST without a valid CSRF token: refused (403) and, like every
    denied request, audited."""
    try:
        with transaction.atomic():
            audit_record(
                ctx=AuditContext.from_request(request),
                action="request.denied",
                outcome=Outcome.DENIED,
                payload={"method": request.method, "path": request.path[:500], "status": 403, "code": "csrf_failed"},
            )
    except DatabaseError:
        logger.exception("could not audit a request refused by the CSRF check")
    return HttpResponseForbidden(
        "<!doctype html><title>Forbidden</title><h1>Forbidden (403)</h1>"
        "<p>The form could not be verified (CSRF check failed). Reload the page and try again.</p>",
        content_type="text/html; charset=utf-8",
    )
