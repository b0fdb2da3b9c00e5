"""Accounts: users and teams, API tokens, sign-in and sign-out. Every change is audited."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import replace

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import ApiToken, Role, Team, User, hash_token
from accounts.throttling import LoginAttempt, login_attempt_reserve, login_failures_matching
from audit.models import Outcome
from audit.services import AuditContext, audit_record
from core.services import service
from evidence_service.api.errors import InvalidInput, Throttled, Unauthenticated


@service
def team_get_or_create(*, ctx: AuditContext, name: str) -> Team:
    name = name.strip()
    if not name:
        raise InvalidInput("A team needs a name.", fields={"team": "This field may not be blank."})
    team, created = Team.objects.get_or_create(name=name)
    if created:
        audit_record(ctx=ctx, action="team.create", target_type="team", target_id=team.pk, payload={"name": name})
    return team


#: What ``user_update_details`` may change (None leaves a field as it is).
DETAIL_FIELDS = ("email", "full_name", "grade")


def _apply_details(user: User, **details: str | None) -> dict[str, dict[str, str]]:
    """Set the given contact details on ``user`` (not saved) after checking them; the
    changes as ``{field: {"from": old, "to": new}}``. Raises ``InvalidInput`` naming the
    field for a malformed address or a name with control characters."""
    changes: dict[str, dict[str, str]] = {}
    problems: dict[str, str] = {}
    for name, value in details.items():
        if value is None:
            continue
        value = value.strip()
        if name == "email" and value:
            value = User.objects.normalize_email(value)
        field = User._meta.get_field(name)
        try:
            field.clean(value, user)
        except ValidationError as exc:
            problems[name] = " ".join(exc.messages)
            continue
        if getattr(user, name) != value:
            changes[name] = {"from": getattr(user, name), "to": value}
            setattr(user, name, value)
    if problems:
        raise InvalidInput(
            "Enter a valid email address." if "email" in problems else "The details cannot be saved.",
            fields=problems,
        )
    return changes


@service
def user_create_or_update(
    *,
    ctx: AuditContext,
    username: str,
    role: str,
    team_names: list[str],
    password: str | None,
    email: str | None = None,
    full_name: str | None = None,
    grade: str | None = None,
) -> tuple[User, bool]:
    """Create the user, or bring an existing one to the given role, teams and password.
    ``email``, ``full_name`` and ``grade`` are set when given (None keeps them)."""
    if role not in Role.values:
        raise InvalidInput(f"Unknown role {role!r}.", fields={"role": f"Choose one of {', '.join(Role.values)}."})
    user = User.objects.filter(username=username).first()
    created = user is None
    if created:
        user = User(username=username)
        if not password:
            raise InvalidInput("A new user needs a password.", fields={"password": "This field is required."})
    changes = _apply_details(user, email=email, full_name=full_name, grade=grade)
    user.role = role
    if password:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise InvalidInput("The password is too weak.", fields={"password": exc.messages}) from exc
        user.set_password(password)
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as exc:
        raise InvalidInput(
            "The user cannot be saved.", fields={name: " ".join(msgs) for name, msgs in exc.message_dict.items()}
        ) from exc
    user.save()
    revoked = 0
    if password and not created:
        # A new password ends every session held with the old one.
        revoked = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    teams = [team_get_or_create(ctx=ctx, name=name) for name in team_names]
    user.teams.set(teams)
    audit_record(
        ctx=ctx,
        action="user.create" if created else "user.update",
        target_type="user",
        target_id=user.pk,
        payload={
            "username": user.username,
            "role": role,
            "teams": sorted(team.name for team in teams),
            "password_changed": bool(password),
            "tokens_revoked": revoked,
            "email": user.email,
            "full_name": user.full_name,
            "grade": user.grade,
            "changed": sorted(changes),
        },
    )
    return user, created


@service
def user_update_details(
    *,
    ctx: AuditContext,
    user: User,
    email: str | None = None,
    full_name: str | None = None,
    grade: str | None = None,
) -> dict[str, dict[str, str]]:
    """Change a user's email address, full name or grade (None leaves one as it is; an
    empty string clears it). Audited as ``user.update`` with each change's old and new
    value; nothing changed, nothing recorded. Returns the changes."""
    user = User.objects.select_for_update().get(pk=user.pk)
    changes = _apply_details(user, email=email, full_name=full_name, grade=grade)
    if not changes:
        return changes
    user.save(update_fields=list(changes))
    audit_record(
        ctx=ctx,
        action="user.update",
        target_type="user",
        target_id=user.pk,
        payload={"username": user.username, "changes": changes},
    )
    return changes


# Its own, outermost transaction (``durable``): the attempt's reservation commits before the
# password is checked, so concurrent guesses count each other; the refusal's audit event is
# committed before the refusal is raised (``commit_on``).
@service(durable=True, commit_on=(Throttled,))
def login_attempt_start(*, ctx: AuditContext, username: str, method: str) -> LoginAttempt:
    """Count a sign-in attempt against the throttle's limits (``accounts/throttling.py``:
    per username and address, per address, per username) before the password is checked.
    Over a limit the refusal is audited as ``auth.login_throttled``, naming the limit, and
    raised as ``Throttled`` (429), and the password is never looked at; whether the username
    exists plays no part. Otherwise the attempt counts as a failure unless the caller calls
    ``succeeded()`` on it (inside the transaction that records the sign-in) or ``release()``
    after an unexpected error. Both sign-in paths (token and session) come through here."""
    attempt = login_attempt_reserve(username=username, ip=ctx.ip_address)
    if attempt.refused:
        audit_record(
            ctx=ctx,
            action="auth.login_throttled",
            outcome=Outcome.DENIED,
            target_type="user",
            payload={
                "username": username[:150],
                "method": method,
                "limit": attempt.refused_scope,
                "retry_after": attempt.retry_after,
            },
        )
        error = Throttled(
            "Too many failed sign-in attempts. Try again later.",
            retry_after=attempt.retry_after,
            code="login_throttled",
        )
        error.audited = True
        raise error
    return attempt


@service
def login_failures_clear(*, ctx: AuditContext, username: str | None, ip: str | None) -> int:
    """Forget the failed sign-ins counted for a username, an address, or a username at an
    address, so that a locked-out user need not wait for the window to pass. Audited as
    ``auth.login_failures_cleared``; returns how many failures were forgotten."""
    username = username.strip() if username is not None else None
    if not username and not ip:
        raise InvalidInput(
            "Name a username, an address or both.",
            fields={"username": "Give a username or an address.", "address": "Give a username or an address."},
        )
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError as exc:
            raise InvalidInput(f"{ip!r} is not an IP address.", fields={"address": "Not an IP address."}) from exc
    deleted, _ = login_failures_matching(username=username or None, ip=ip or None).delete()
    audit_record(
        ctx=ctx,
        action="auth.login_failures_cleared",
        target_type="user",
        payload={"username": (username or "")[:150], "address": ip or "", "failures_cleared": deleted},
    )
    return deleted


# The attempt was reserved, and committed, by ``login_attempt_start`` before this runs, so that
# concurrent guesses see each other. A refused sign-in's audit event is committed before the
# refusal is raised (``commit_on``), whatever the caller does next (``durable``).
@service(durable=True, commit_on=(Unauthenticated,))
def token_issue(*, ctx: AuditContext, attempt: LoginAttempt, username: str, password: str) -> tuple[str, ApiToken]:
    """Exchange a username and password for a bearer token that expires after
    ``API_TOKEN_TTL``, for an attempt ``login_attempt_start`` let through. A failed attempt
    is audited and answers 401 without saying whether the username exists, and stays
    counted as a failure; on success the attempt's failures are forgotten in the same
    transaction as the token and its audit event. After any other error the caller gives
    the attempt back (``attempt.release()``), once this transaction has rolled back."""
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        audit_record(
            ctx=ctx,
            action="auth.login_failed",
            outcome=Outcome.DENIED,
            target_type="user",
            payload={"username": username[:150], "method": "token"},
        )
        error = Unauthenticated("Invalid username or password.", code="invalid_credentials")
        error.audited = True
        raise error
    raw = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, key_hash=hash_token(raw), expires_at=timezone.now() + settings.API_TOKEN_TTL
    )
    audit_record(
        ctx=replace(ctx, actor=user),
        action="auth.login",
        target_type="user",
        target_id=user.pk,
        payload={"method": "token", "token_id": token.pk, "expires_at": token.expires_at},
    )
    attempt.succeeded()
    return raw, token


@service
def token_revoke(*, ctx: AuditContext, token: ApiToken) -> None:
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(
        ctx=ctx,
        action="auth.logout",
        target_type="user",
        target_id=token.user_id,
        payload={"method": "token", "token_id": token.pk},
    )


@service
def session_login_record(*, ctx: AuditContext, user: User | None, username: str) -> None:
    """Audit a sign-in to the browsable pages (the session itself is Django's)."""
    if user is None:
        audit_record(
            ctx=ctx,
            action="auth.login_failed",
            outcome=Outcome.DENIED,
            target_type="user",
            payload={"username": username[:150], "method": "session"},
        )
    else:
        audit_record(
            ctx=replace(ctx, actor=user),
            action="auth.login",
            target_type="user",
            target_id=user.pk,
            payload={"method": "session"},
        )


@service
def session_logout_record(*, ctx: AuditContext) -> None:
    audit_record(
        ctx=ctx, action="auth.logout", target_type="user", target_id=ctx.actor.pk, payload={"method": "session"}
    )
