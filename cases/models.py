"""Cases, the people in them (subjects), their social media profiles, their consent,
and each viewing of a profile."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from cases.profiles import PLATFORM_CHOICES

Platform = models.TextChoices("Platform", [(p, p) for p in PLATFORM_CHOICES])


class CaseStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Relationship(models.TextChoices):
    SERVICE_USER = "service_user", "Service user"
    PARENT = "parent", "Parent"
    CARER = "carer", "Carer"
    RELATIVE = "relative", "Relative"
    OTHER = "other", "Other"


class Purpose(models.TextChoices):
    SAFEGUARDING_ASSESSMENT = "safeguarding_assessment", "Safeguarding assessment"
    LOCATE_PERSON = "locate_person", "Locate a person"
    VERIFY_INFORMATION = "verify_information", "Verify information"
    RISK_ASSESSMENT = "risk_assessment", "Risk assessment"
    EVIDENCE_GATHERING = "evidence_gathering", "Evidence gathering"
    OTHER = "other", "Other"


class AccessMethod(models.TextChoices):
    LOGGED_OUT_PUBLIC = "logged_out_public", "Logged out, public view"
    COUNCIL_OVERT_ACCOUNT = "council_overt_account", "Council's overt account"
    PERSONAL_ACCOUNT = "personal_account", "Personal account"
    COVERT_IDENTITY = "covert_identity", "Covert identity"


class Interaction(models.TextChoices):
    NONE = "none", "None"
    FOLLOW_OR_FRIEND_REQUEST = "follow_or_friend_request", "Follow or friend request"
    MESSAGE = "message", "Message"
    COMMENT = "comment", "Comment"
    JOINED_GROUP = "joined_group", "Joined a group"


class ExternalAuthorityKind(models.TextChoices):
    COURT_ORDER = "court_order", "Court order"
    POLICE_REQUEST = "police_request", "Police request"
    STATUTORY_POWER = "statutory_power", "Statutory power"
    OTHER = "other", "Other"


class CaseQuerySet(models.QuerySet):
    def visible_to(self, user) -> CaseQuerySet:
        """Practitioners see their teams' cases; RIPA officers and the SRO read all
        cases (to decide on them); other roles see none through this path."""
        if not user.is_authenticated:
            return self.none()
        if user.is_officer:
            return self.all()
        if user.is_practitioner:
            return self.filter(team__in=user.teams.all())
        return self.none()


class Case(models.Model):
    reference = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="cases")
    status = models.CharField(max_length=10, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.reference


class SubjectQuerySet(models.QuerySet):
    def visible_to(self, user) -> SubjectQuerySet:
        """A subject is visible through any case visible to the user."""
        if not user.is_authenticated:
            return self.none()
        if user.is_officer:
            return self.all()
        if user.is_practitioner:
            return self.filter(pk__in=CaseSubject.objects.filter(case__team__in=user.teams.all()).values("subject_id"))
        return self.none()


class Subject(models.Model):
    """A person. Linked to each case they appear in, so that views of the same person
    from different cases are counted together."""

    display_name = models.CharField(max_length=200)
    external_id = models.CharField(max_length=64, unique=True, null=True, blank=True)
    # The external id's normal form (cases.identity.external_id_key): what is unique, so that
    # "NHS-943 476 5919" and "9434765919" are one person. NULL without an id, and for a
    # record kept apart when the key was introduced because it collided (migration 0005).
    external_key = models.CharField(max_length=200, unique=True, null=True, blank=True, editable=False)
    date_of_birth = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    objects = SubjectQuerySet.as_manager()

    def __str__(self) -> str:
        return self.display_name


class CaseSubject(models.Model):
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="subject_links")
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="case_links")
    relationship = models.CharField(max_length=20, choices=Relationship.choices)
    linked_at = models.DateTimeField(auto_now_add=True)
    linked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "subject"], name="case_subject_once")]


class ProfileQuerySet(models.QuerySet):
    def visible_to(self, user) -> ProfileQuerySet:
        return self.filter(subject__in=Subject.objects.visible_to(user))


class Profile(models.Model):
    """A social media account of a subject, identified by its normalised handle."""

    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="profiles")
    platform = models.CharField(max_length=20, choices=Platform.choices)
    handle = models.CharField(max_length=500)
    url = models.URLField(max_length=600)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    objects = ProfileQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["platform", "handle"], name="profile_platform_handle_once")]


class ConsentGivenBy(models.TextChoices):
    SUBJECT = "subject", "The person themselves"
    PARENTAL_RESPONSIBILITY = "parental_responsibility", "Someone with parental responsibility"
    LEGAL_REPRESENTATIVE = "legal_representative", "A legal representative"


class ConsentMethod(models.TextChoices):
    WRITTEN = "written", "Written"
    VERBAL = "verbal", "Verbal"
    ELECTRONIC = "electronic", "Electronic"


class ConsentStatus(models.TextChoices):
    AWAITING_CONFIRMATION = "awaiting_confirmation", "Awaiting an officer's confirmation"
    CONFIRMED = "confirmed", "Confirmed by an officer"


class ConsentQuerySet(models.QuerySet):
    def visible_to(self, user) -> ConsentQuerySet:
        """Officers see every consent; a practitioner those their own teams recorded, of
        people on their teams' cases (never another team's: its evidence, and the power to
        withdraw it, stay with the team that recorded it)."""
        if not user.is_authenticated:
            return self.none()
        if user.is_officer:
            return self.all()
        if user.is_practitioner:
            return self.filter(subject__in=Subject.objects.visible_to(user), team__in=user.teams.all())
        return self.none()

    def in_effect_at(self, moment, logged_at=None) -> ConsentQuerySet:
        """Consents granted by ``moment`` and neither expired nor withdrawn at it, recorded
        by ``logged_at`` (when the look was first logged; default ``moment``) and not withdrawn
        by then: a consent covers only looks logged after it was recorded and before it was
        withdrawn. Scope (platforms) is checked by
        ``Consent.covers_platform``."""
        logged_at = logged_at or moment
        return self.filter(
            Q(withdrawn_at__isnull=True) | Q(withdrawn_at__gt=logged_at),
            granted_at__lte=moment,
            recorded_at__lte=logged_at,
        ).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=moment),
            Q(withdrawn_at__isnull=True) | Q(withdrawn_at__gt=moment),
        )


class Consent(models.Model):
    """A subject's recorded agreement to their profiles being viewed."""

    ALL = "all"

    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="consents")
    scope = models.JSONField(help_text='Platforms covered, or ["all"].')
    granted_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    evidence = models.TextField()
    # Who gave it and how: blank on consents recorded before these were asked ("not recorded").
    given_by = models.CharField(max_length=30, choices=ConsentGivenBy.choices, blank=True)
    given_by_name = models.CharField(max_length=200, blank=True)
    method = models.CharField(max_length=20, choices=ConsentMethod.choices, blank=True)
    granted_at_reason = models.TextField(blank=True, help_text="Why a grant more than 7 days old is recorded late.")
    status = models.CharField(max_length=30, choices=ConsentStatus.choices, default=ConsentStatus.AWAITING_CONFIRMATION)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The team that recorded it, on whose cases it covers looks. NULL only for a consent
    # recorded before teams were recorded whose team could not be worked out (migration 0006).
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    withdrawal_reason = models.TextField(blank=True)

    objects = ConsentQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["subject", "granted_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("granted_at")),
                name="consent_expires_after_granted",
            )
        ]

    def covers_platform(self, platform: str) -> bool:
        return self.ALL in self.scope or platform in self.scope


class ViewingQuerySet(models.QuerySet):
    def visible_to(self, user) -> ViewingQuerySet:
        """Practitioners see the viewings on their teams' cases; officers see all."""
        if not user.is_authenticated:
            return self.none()
        if user.is_officer:
            return self.all()
        if user.is_practitioner:
            return self.filter(case__team__in=user.teams.all())
        return self.none()


class Viewing(models.Model):
    """One look at one profile for one case by one practitioner. Never edited or
    deleted (the database rejects both); a mistake is corrected by a new viewing that
    ``supersedes`` it."""

    # These four are indexed by the (column, viewed_at) indexes below, which serve lookups by
    # the column alone too; a second single-column index would only slow every insert.
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="viewings", db_index=False)
    profile = models.ForeignKey(Profile, on_delete=models.PROTECT, related_name="viewings", db_index=False)
    # Denormalised from the profile so that counting views of a person is one indexed range.
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="viewings", db_index=False)
    practitioner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="viewings", db_index=False
    )
    viewed_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    purpose = models.CharField(max_length=30, choices=Purpose.choices)
    purpose_detail = models.CharField(max_length=500, blank=True)
    justification = models.TextField()
    access_method = models.CharField(max_length=30, choices=AccessMethod.choices)
    interaction = models.CharField(max_length=30, choices=Interaction.choices)
    information_recorded = models.TextField(blank=True)
    third_party_information = models.TextField(blank=True)
    late_entry_reason = models.TextField(blank=True)
    # Most looks cite no authorisation, and many are covered by no consent: these two are
    # indexed only where set (the partial indexes below), which is all a lookup by either needs.
    authorisation = models.ForeignKey(
        "authorisations.Authorisation",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="viewings",
        db_index=False,
    )
    external_authority_kind = models.CharField(max_length=30, choices=ExternalAuthorityKind.choices, blank=True)
    external_authority_reference = models.CharField(max_length=200, blank=True)
    consent = models.ForeignKey(
        Consent, on_delete=models.PROTECT, null=True, blank=True, related_name="viewings", db_index=False
    )
    # The authorisation that covered the look when it happened (its case's, naming the
    # person and the platform or profile), cited or not; worked out as the look is logged.
    covering_authorisation = models.ForeignKey(
        "authorisations.Authorisation",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    supersedes = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by"
    )
    supersede_reason = models.TextField(blank=True)

    objects = ViewingQuerySet.as_manager()

    class Meta:
        ordering = ["-viewed_at", "-id"]
        indexes = [
            models.Index(fields=["subject", "viewed_at"], name="viewing_subject_time"),
            models.Index(fields=["case", "viewed_at"], name="viewing_case_time"),
            models.Index(fields=["profile", "viewed_at"], name="viewing_profile_time"),
            models.Index(fields=["practitioner", "viewed_at"], name="viewing_practitioner_time"),
            models.Index(
                fields=["authorisation"], name="viewing_authorisation", condition=Q(authorisation__isnull=False)
            ),
            models.Index(fields=["consent"], name="viewing_consent", condition=Q(consent__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(supersedes__isnull=True) | ~Q(supersede_reason=""), name="viewing_supersede_has_reason"
            ),
            models.CheckConstraint(
                condition=Q(external_authority_kind="", external_authority_reference="")
                | (~Q(external_authority_kind="") & ~Q(external_authority_reference="")),
                name="viewing_external_authority_complete",
            ),
        ]
