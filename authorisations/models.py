"""Authorisations for surveillance (RIPA directed surveillance, CHIS) or non-RIPA viewing,
from the application to its end, with the magistrate's approval, reviews, renewals and
cancellation.

Whether an authorisation covers a viewing is computed from the times stored here
(``in_force_at``, ``expires_at``, ``cancelled_at``) and its scope (subjects, profiles,
platforms), never from ``status`` alone: ``status`` is the workflow's state and may lag
behind the clock until the scheduled job records an expiry.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class AuthorisationType(models.TextChoices):
    DIRECTED_SURVEILLANCE = "directed_surveillance", "Directed surveillance (RIPA)"
    CHIS = "chis", "Covert human intelligence source (RIPA)"
    NON_RIPA = "non_ripa", "Non-RIPA authorisation"


RIPA_TYPES = (AuthorisationType.DIRECTED_SURVEILLANCE, AuthorisationType.CHIS)


class AuthorisationStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    # Kept for completeness of the lifecycle; a grant moves straight on to
    # awaiting_judicial_approval (RIPA in England and Wales) or in_force.
    GRANTED = "granted", "Granted"
    REFUSED = "refused", "Refused"
    AWAITING_JUDICIAL_APPROVAL = "awaiting_judicial_approval", "Awaiting magistrate approval"
    IN_FORCE = "in_force", "In force"
    QUASHED = "quashed", "Quashed"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


class Decision(models.TextChoices):
    GRANTED = "granted", "Granted"
    REFUSED = "refused", "Refused"


class AuthorisationQuerySet(models.QuerySet):
    def visible_to(self, user) -> AuthorisationQuerySet:
        """Practitioners see the authorisations on their teams' cases; RIPA officers and
        the SRO see all; other roles see none through this path (auditors read the
        central record instead)."""
        if not user.is_authenticated:
            return self.none()
        if user.is_officer:
            return self.all()
        if user.is_practitioner:
            return self.filter(case__team__in=user.teams.all())
        return self.none()

    def with_effective_status(self, status: str, at) -> AuthorisationQuerySet:
        """Authorisations whose effective status at ``at`` is ``status`` (see
        ``Authorisation.effective_status``), decided in SQL: one still marked in force
        whose expiry has passed counts as expired, not in force."""
        lapsed = Q(status=AuthorisationStatus.IN_FORCE, expires_at__lte=at)
        if status == AuthorisationStatus.EXPIRED:
            return self.filter(Q(status=AuthorisationStatus.EXPIRED) | lapsed)
        if status == AuthorisationStatus.IN_FORCE:
            return self.filter(status=AuthorisationStatus.IN_FORCE).filter(
                Q(expires_at__gt=at) | Q(expires_at__isnull=True)
            )
        return self.filter(status=status)

    def in_force_at(self, moment) -> AuthorisationQuerySet:
        """Authorisations in force at ``moment``, from the stored times alone."""
        return self.filter(in_force_at__lte=moment, expires_at__gt=moment).filter(
            Q(cancelled_at__isnull=True) | Q(cancelled_at__gt=moment)
        )


class Authorisation(models.Model):
    """An application for authorisation and its lifecycle. The application's fields
    follow the Home Office forms; the decision's record the authorising officer's own
    statement, the limits set and the review programme."""

    urn = models.CharField("unique reference number", max_length=40, unique=True)
    type = models.CharField(max_length=30, choices=AuthorisationType.choices)
    status = models.CharField(max_length=30, choices=AuthorisationStatus.choices, default=AuthorisationStatus.DRAFT)
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="authorisations")
    applicant = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    # --- The application ---
    title = models.CharField(max_length=200, default="")
    subjects = models.ManyToManyField("cases.Subject", related_name="authorisations", blank=True)
    profiles = models.ManyToManyField("cases.Profile", related_name="authorisations", blank=True)
    platforms = models.JSONField(default=list, blank=True, help_text="Platforms in scope (any profile on them).")
    purpose = models.TextField(default="")
    information_sought = models.TextField(default="")
    planned_activity = models.TextField(blank=True, default="")
    necessity = models.TextField(default="")
    proportionality = models.TextField(default="")
    alternatives_considered = models.TextField(default="")
    collateral_intrusion = models.TextField(default="", help_text="The likely intrusion and how it is minimised.")
    confidential_information_likely = models.BooleanField(default=False)
    crime_purpose = models.BooleanField(default=False)
    offence = models.CharField(max_length=300, blank=True, default="")
    offence_max_sentence_months = models.PositiveIntegerField(null=True, blank=True)
    underage_sale_offence = models.BooleanField(default=False)
    juvenile_source = models.BooleanField(default=False)
    vulnerable_source = models.BooleanField(default=False)
    submitted_at = models.DateTimeField(null=True, blank=True)

    # --- The authorising officer's decision ---
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True, default="")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    officer_grade = models.CharField(max_length=200, blank=True, default="")
    officer_statement = models.TextField(blank=True, default="")
    officer_directly_involved = models.BooleanField(
        default=False, help_text="Whether the deciding officer declared direct involvement (the service refuses it)."
    )
    limits = models.TextField(blank=True, default="")
    review_interval_days = models.PositiveIntegerField(null=True, blank=True)
    next_review_due = models.DateTimeField(null=True, blank=True)

    # --- In force ---
    in_force_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    expiry_recorded_at = models.DateTimeField(
        null=True, blank=True, help_text="When the scheduled job moved it to expired (coverage never waits for this)."
    )

    # --- Cancellation ---
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    cancellation_reason = models.TextField(blank=True, default="")
    information_obtained = models.TextField(blank=True, default="")
    material_direction = models.TextField(
        blank=True, default="", help_text="Direction on retaining or destroying the material obtained."
    )
    staff_told_to_stop_at = models.DateTimeField(null=True, blank=True)

    objects = AuthorisationQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="authorisation_status_expiry"),
            models.Index(fields=["in_force_at", "expires_at"], name="authorisation_in_force"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(in_force_at__isnull=True)
                | (Q(expires_at__isnull=False) & Q(expires_at__gt=models.F("in_force_at"))),
                name="authorisation_expires_after_in_force",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[choice.value for choice in AuthorisationStatus]),
                name="authorisation_status_known",
            ),
        ]

    def __str__(self) -> str:
        return self.urn

    def effective_status(self, at) -> str:
        """The status as the API reports it at ``at``: an expiry the scheduled job has not
        recorded yet is taken into account (``in_force`` past ``expires_at`` is
        ``expired``). ``AuthorisationQuerySet.with_effective_status`` is the same rule in SQL."""
        if self.status == AuthorisationStatus.IN_FORCE and self.expires_at is not None and self.expires_at <= at:
            return AuthorisationStatus.EXPIRED
        return self.status

    @property
    def is_ripa(self) -> bool:
        return self.type in RIPA_TYPES

    @property
    def needs_senior_officer(self) -> bool:
        """Confidential information likely, or a juvenile or vulnerable CHIS: the Head of
        Paid Service authorises (``AUTHORISATION_SENIOR_GRANT_ROLE`` stands in for them)."""
        reasons = settings.AUTHORISATION_SENIOR_GRANT_WHEN
        return bool(
            ("confidential_information" in reasons and self.confidential_information_likely)
            or (self.type == AuthorisationType.CHIS and "juvenile_source" in reasons and self.juvenile_source)
            or (self.type == AuthorisationType.CHIS and "vulnerable_source" in reasons and self.vulnerable_source)
        )


class ReviewOutcome(models.TextChoices):
    CONTINUE = "continue", "Continue"
    CANCEL = "cancel", "Cancel"


class AuthorisationReview(models.Model):
    """A review by an authorising officer: is the authorisation still necessary and
    proportionate? ``cancel`` cancels it in the same transaction."""

    authorisation = models.ForeignKey(Authorisation, on_delete=models.PROTECT, related_name="reviews")
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reviewed_at = models.DateTimeField()
    findings = models.TextField()
    outcome = models.CharField(max_length=10, choices=ReviewOutcome.choices)
    next_review_due = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["reviewed_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome="cancel") | Q(next_review_due__isnull=False), name="review_continue_has_next_date"
            )
        ]


class RenewalStatus(models.TextChoices):
    AWAITING_JUDICIAL_APPROVAL = "awaiting_judicial_approval", "Awaiting magistrate approval"
    APPROVED = "approved", "In effect"
    REFUSED = "refused", "Refused by the magistrate"
    QUASHED = "quashed", "Quashed by the magistrate"
    WITHDRAWN = "withdrawn", "Withdrawn (the authorisation was cancelled first)"


class AuthorisationRenewal(models.Model):
    """A renewal of an authorisation in force, granted before it expires. Its new expiry
    runs from the old one. Until a RIPA renewal is approved by a magistrate the
    authorisation stays in force on its old expiry; approval moves ``expires_at`` on."""

    authorisation = models.ForeignKey(Authorisation, on_delete=models.PROTECT, related_name="renewals")
    renewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    renewed_at = models.DateTimeField()
    officer_grade = models.CharField(max_length=200)
    statement = models.TextField()
    previous_expires_at = models.DateTimeField()
    new_expires_at = models.DateTimeField()
    status = models.CharField(max_length=30, choices=RenewalStatus.choices)

    class Meta:
        ordering = ["renewed_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(new_expires_at__gt=models.F("previous_expires_at")), name="renewal_extends_expiry"
            ),
            models.UniqueConstraint(
                fields=["authorisation"],
                condition=Q(status="awaiting_judicial_approval"),
                name="renewal_one_pending_per_authorisation",
            ),
        ]


class JudicialOutcome(models.TextChoices):
    APPROVED = "approved", "Approved"
    REFUSED = "refused", "Refused"
    QUASHED = "quashed", "Refused and quashed"


class JudicialApproval(models.Model):
    """A justice of the peace's decision on a grant or a renewal (RIPA s.32A/32B; England
    and Wales only). One per grant (``renewal`` empty) and one per renewal."""

    authorisation = models.ForeignKey(Authorisation, on_delete=models.PROTECT, related_name="judicial_approvals")
    renewal = models.OneToOneField(
        AuthorisationRenewal, on_delete=models.PROTECT, null=True, blank=True, related_name="judicial_approval"
    )
    court = models.CharField(max_length=200)
    justice = models.CharField(max_length=200)
    decided_at = models.DateTimeField(help_text="The date and time of the magistrate's decision.")
    outcome = models.CharField(max_length=10, choices=JudicialOutcome.choices)
    notes = models.TextField(blank=True, default="")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["decided_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["authorisation"], condition=Q(renewal__isnull=True), name="judicial_approval_one_per_grant"
            )
        ]


class ReminderKind(models.TextChoices):
    REVIEW_OVERDUE = "review_overdue", "Review overdue"
    EXPIRY_SOON = "expiry_soon", "Expiry soon"


class AuthorisationReminder(models.Model):
    """A reminder recorded once per authorisation, kind and due moment: running the
    scheduled job again finds the row and sends nothing new. A new review date or a
    renewed expiry is a new due moment and gets its own reminder."""

    authorisation = models.ForeignKey(Authorisation, on_delete=models.PROTECT, related_name="reminders")
    kind = models.CharField(max_length=20, choices=ReminderKind.choices)
    due_at = models.DateTimeField()
    recipients = models.JSONField(default=list)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["authorisation", "kind", "due_at"], name="reminder_once_per_due_date")
        ]
        indexes = [models.Index(fields=["sent_at", "created_at"], name="reminder_unsent")]
