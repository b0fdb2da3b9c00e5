"""Session sign-in for the browsable pages, audited like API sign-in."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.db import transaction

from accounts.services import session_login_record
from audit.services import AuditContext


class AuditedLoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form):
        # The sign-in and its audit event commit together, or neither does.
        with transaction.atomic():
            session_login_record(
                ctx=AuditContext.from_request(self.request), user=form.get_user(), username=form.get_user().username
            )
            return super().form_valid(form)

    def form_invalid(self, form):
        session_login_record(
            ctx=AuditContext.from_request(self.request), user=None, username=form.data.get("username", "")
        )
        return super().form_invalid(form)
