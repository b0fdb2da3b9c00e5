"""The detection policy (versioned rules as data), the flags it raises, who they are
routed to, and the notification outbox."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class RuleCode(models.TextChoices):
    REPEAT_VIEWING = "REPEAT_VIEWING", "Repeat viewing"
    SYSTEMATIC_RECORDING = "SYSTEMATIC_RECORDING", "Systematic recording"
    EVIDENCE_PURPOSE = "EVIDENCE_PURPOSE", "Evidence gathering"
    COLLATERAL_INTRUSION = "COLLATERAL_INTRUSION", "Collateral intrusion"
    COVERT_ACCESS = "COVERT_ACCESS", "Covert access"
    POSSIBLE_CHIS = "POSSIBLE_CHIS", "Possible covert human intelligence source"
    OUTSIDE_AUTHORISATION = "OUTSIDE_AUTHORISATION", "Outside an authorisation"
    CLOSED_CASE = "CLOSED_CASE", "Closed case"
    LATE_ENTRIES = "LATE_ENTRIES", "Late entries"
    LINK_GUESSING = "LINK_GUESSING", "Guessing details to link a person"


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class DetectionPolicy(models.Model):
    """One version of the policy. Versions are never changed (the table is append-only);
    a change by the SRO is a new version, and the newest is in force."""

    version = models.PositiveIntegerField(unique=True)
    rules = models.JSONField(help_text='{"RULE_CODE": {"enabled": bool, "severity": str, "params": {...}}}')
    note = models.TextField(blank=True)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-version"]


class FlagStatus(models.TextChoices):
    OPEN = "open", "Open"
    DECIDED = "decided", "Decided"


class FlagOutcome(models.TextChoices):
    NO_AUTHORISATION_NEEDED = "no_authorisation_needed", "No authorisation needed"
    AUTHORISATION_REQUIRED = "authorisation_required", "Authorisation required"
    STOP_VIEWING = "stop_viewing", "Stop viewing"
    REFER_TO_LEGAL = "refer_to_legal", "Refer to legal"
    REPORT_ERROR_TO_SRO = "report_error_to_sro", "Report an error to the SRO"


class FlagQuerySet(models.QuerySet):
    def visible_to(self, user) -> FlagQuerySet:
        """The SRO sees every flag; a RIPA officer the flags routed to them (the ones they
        may decide); practitioners the flags on their own viewings; others none."""
        if not user.is_authenticated:
            return self.none()
        if user.role == "sro":
            return self.all()
        # Semi-joins, not joins made distinct: a page is then read in key order and stops
        # when full, instead of sorting every flag the user may see.
        if user.role == "ripa_officer":
            return self.filter(pk__in=FlagRecipient.objects.filter(officer=user).values("flag_id"))
        if user.is_practitioner:
            return self.filter(pk__in=FlagViewing.objects.filter(viewing__practitioner=user).values("flag_id"))
        return self.none()


class Flag(models.Model):
    """Raised when a rule fires on a viewing. While open, it absorbs later viewings that
    trigger the same rule for the same person, so an officer sees one flag with all of
    them (the database allows one open flag per person and rule)."""

    rule = models.CharField(max_length=30, choices=RuleCode.choices)
    subject = models.ForeignKey("cases.Subject", on_delete=models.PROTECT, related_name="flags")
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="flags")
    severity = models.CharField(max_length=10, choices=Severity.choices)
    status = models.CharField(max_length=10, choices=FlagStatus.choices, default=FlagStatus.OPEN)
    policy_version = models.PositiveIntegerField()
    explanation = models.TextField()
    raised_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    outcome = models.CharField(max_length=30, choices=FlagOutcome.choices, blank=True)
    reasoning = models.TextField(blank=True)

    objects = FlagQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subject", "rule"], condition=Q(status="open"), name="one_open_flag_per_subject_and_rule"
            ),
            models.CheckConstraint(
                condition=Q(status="open", outcome="") | (Q(status="decided") & ~Q(outcome="")),
                name="flag_decided_has_outcome",
            ),
        ]
        indexes = [models.Index(fields=["status", "raised_at"]), models.Index(fields=["case", "status"])]


class FlagViewing(models.Model):
    """A viewing that triggered (or was absorbed into) a flag, with what was said of it."""

    # Looked up by flag through the unique (flag, viewing) index: no index of its own.
    flag = models.ForeignKey(Flag, on_delete=models.PROTECT, related_name="flag_viewings", db_index=False)
    viewing = models.ForeignKey("cases.Viewing", on_delete=models.PROTECT, related_name="flag_links")
    explanation = models.TextField()
    counted_viewing_ids = models.JSONField(default=list, blank=True)
    added_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flag", "viewing"], name="flag_viewing_once")]


class FlagRecipient(models.Model):
    """An officer a flag is routed to: they may decide it."""

    # Looked up by flag through the unique (flag, officer) index: no index of its own.
    flag = models.ForeignKey(Flag, on_delete=models.PROTECT, related_name="recipients", db_index=False)
    officer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=100)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flag", "officer"], name="flag_recipient_once")]


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"


class Notification(models.Model):
    """The outbox: an email owed to someone, kept in the database so that it survives the
    broker being down when it was queued; delivered by a Celery task, retried until sent."""

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    flag = models.ForeignKey(Flag, on_delete=models.PROTECT, null=True, blank=True, related_name="notifications")
    authorisation = models.ForeignKey(
        "authorisations.Authorisation",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="notifications",
    )
    subject_line = models.CharField(max_length=200)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"])]
