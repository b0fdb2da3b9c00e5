"""``Authorization: Token <token>`` authentication with expiry and revocation."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiToken, User, hash_token
from evidence_service.db import select


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
        # Every API request runs these two reads: plain statements, prepared once per
        # connection (evidence_service/db.py), cost a fraction of building the query.
        tokens = select(
            ApiToken,
            "token",
            f"""FROM {ApiToken._meta.db_table} token
                WHERE token.key_hash = %s AND token.revoked_at IS NULL AND token.expires_at > %s""",
            [hash_token(raw), timezone.now()],
        )
        users = (
            select(User, "person", f"FROM {User._meta.db_table} person WHERE person.id = %s", [tokens[0].user_id])
            if tokens
            else []
        )
        if not users or not users[0].is_active:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        token = tokens[0]
        token.user = users[0]
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword
