"""``Authorization: Token <token>`` authentication with expiry and revocation."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiToken, User, hash_token
from evidence_service.db import select_joined


class ExpiringTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: expected 'Token <token>'.")
        try:
            raw = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token header.") from exc
        # Every API request runs this read: one plain statement, prepared once per
        # connection (evidence_service/db.py), costs a fraction of building the query.
        found = select_joined(
            [(ApiToken, "token"), (User, "person")],
            f"""FROM {ApiToken._meta.db_table} token JOIN {User._meta.db_table} person ON person.id = token.user_id
                WHERE token.key_hash = %s AND token.revoked_at IS NULL AND token.expires_at > %s""",
            [hash_token(raw), timezone.now()],
        )
        if not found or not found[0][1].is_active:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        token, user = found[0]
        token.user = user
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's, except that a signed-in browser's unsafe request without its CSRF token is
    refused with the code the session pages use (``csrf_failed``), and audited against the
    signed-in user who sent it rather than as anonymous."""

    def enforce_csrf(self, request):
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as exc:
            refusal = exceptions.PermissionDenied(str(exc.detail), code="csrf_failed")
            refusal.actor = getattr(request._request, "user", None)
            raise refusal from None
