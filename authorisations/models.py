"""Authorisations for surveillance (RIPA directed surveillance, CHIS) or non-RIPA viewing.

This holds what a viewing needs to cite an authorisation: its reference, type, case and
state. The application, decision and lifecycle fields come with the authorisation workflow.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuthorisationType(models.TextChoices):
    DIRECTED_SURVEILLANCE = "directed_surveillance", "Directed surveillance (RIPA)"
    CHIS = "chis", "Covert human intelligence source (RIPA)"
    NON_RIPA = "non_ripa", "Non-RIPA authorisation"


class AuthorisationStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    GRANTED = "granted", "Granted"
    REFUSED = "refused", "Refused"
    AWAITING_JUDICIAL_APPROVAL = "awaiting_judicial_approval", "Awaiting magistrate approval"
    IN_FORCE = "in_force", "In force"
    QUASHED = "quashed", "Quashed"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


class Authorisation(models.Model):
    urn = models.CharField("unique reference number", max_length=40, unique=True)
    type = models.CharField(max_length=30, choices=AuthorisationType.choices)
    status = models.CharField(max_length=30, choices=AuthorisationStatus.choices, default=AuthorisationStatus.DRAFT)
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="authorisations")
    applicant = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.urn
