"""Users, their role, and the teams they work in."""

from __future__ import annotations

import hashlib
import unicodedata

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models


def no_control_characters(value: str) -> None:
    """Names end up in emails' subjects and in CSV: no line breaks, tabs or other control
    (or invisible formatting) characters."""
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        raise ValidationError("May not contain line breaks or other control characters.", code="control_character")


class Role(models.TextChoices):
    PRACTITIONER = "practitioner", "Practitioner"
    RIPA_OFFICER = "ripa_officer", "RIPA authorising officer"
    SRO = "sro", "Senior responsible officer"
    AUDITOR = "auditor", "Auditor"
    ADMIN = "admin", "System administrator"


class Team(models.Model):
    """A group of practitioners; every case belongs to one team."""

    name = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A person who signs in. The role decides what they may do; teams decide which
    cases a practitioner works on."""

    role = models.CharField(max_length=20, choices=Role.choices)
    teams = models.ManyToManyField(Team, related_name="members", blank=True)
    # ``email`` (Django's) is where notifications go; without one, none can reach them.
    full_name = models.CharField(
        max_length=150, blank=True, validators=[no_control_characters], help_text="As the central record names them."
    )
    grade = models.CharField(
        max_length=150,
        blank=True,
        validators=[no_control_characters],
        help_text="An officer's post or grade (e.g. Head of Legal Services), shown in the central record.",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=[choice.value for choice in Role]),
                name="user_role_known",
            )
        ]

    def get_full_name(self) -> str:
        return self.full_name.strip() or super().get_full_name()

    @property
    def display_name(self) -> str:
        """The full name, or the username when there is none."""
        return self.get_full_name() or self.get_username()

    @property
    def is_practitioner(self) -> bool:
        return self.role == Role.PRACTITIONER

    @property
    def is_officer(self) -> bool:
        """RIPA officers and the SRO: they read cases and decide."""
        return self.role in (Role.RIPA_OFFICER, Role.SRO)


def hash_token(raw: str) -> str:
    """Tokens are stored only as their SHA-256, so a database read does not yield
    credentials."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A bearer token for the JSON API. It expires at ``expires_at`` and stops working
    at once when revoked (logout)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"])]


class LoginFailure(models.Model):
    """A failed sign-in, or one whose password is still being checked, kept for as long
    as the sign-in throttle's window (``accounts/throttling.py``). The username is kept
    only as a hash of its normalised form; the address is an IPv4 address or an IPv6 /64."""

    username_key = models.CharField(max_length=64)
    address = models.CharField(max_length=64)
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["username_key", "at"], name="login_failure_user_at"),
            models.Index(fields=["address", "at"], name="login_failure_address_at"),
            models.Index(fields=["at"], name="login_failure_at"),
        ]


class LoginAddress(models.Model):
    """An address a username last signed in from successfully, and when: the
    per-username limit (``LOGIN_FAILURES_PER_USER``) is not applied there for
    ``LOGIN_KNOWN_ADDRESS_DAYS``, so failures from elsewhere cannot lock a user out of
    the address they work from."""

    username_key = models.CharField(max_length=64)
    address = models.CharField(max_length=64)
    last_success_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["username_key", "address"], name="login_address_unique")]
        indexes = [models.Index(fields=["last_success_at"], name="login_address_last_success")]
