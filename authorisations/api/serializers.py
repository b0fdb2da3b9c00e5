"""Output shapes for authorisations and the central record, and the cancellation input
shared by the cancel and review operations."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from authorisations.selectors import authorisation_in_force
from cases.api.serializers import CaseRefOutput
from evidence_service.api.fields import MomentField


class AuthorisationCancellationInput(serializers.Serializer):
    reason = serializers.CharField(max_length=20000, help_text="Why it is no longer necessary or proportionate.")
    information_obtained = serializers.CharField(max_length=20000, help_text="What the activity obtained.")
    material_direction = serializers.CharField(
        max_length=20000, help_text="Direction on retaining or destroying the material obtained."
    )
    staff_told_to_stop_at = MomentField(help_text="When staff were told to stop.")


class AuthorisationSubjectOutput(serializers.Serializer):
    id = serializers.IntegerField()
    display_name = serializers.CharField()


class AuthorisationProfileOutput(serializers.Serializer):
    id = serializers.IntegerField()
    subject = serializers.IntegerField(source="subject_id")
    platform = serializers.CharField()
    handle = serializers.CharField()
    url = serializers.CharField()


class JudicialApprovalOutput(serializers.Serializer):
    id = serializers.IntegerField()
    renewal = serializers.IntegerField(source="renewal_id", allow_null=True)
    court = serializers.CharField()
    justice = serializers.CharField()
    decided_at = serializers.DateTimeField()
    outcome = serializers.CharField()
    notes = serializers.CharField()
    recorded_by = serializers.CharField(source="recorded_by.username")
    recorded_at = serializers.DateTimeField()


class AuthorisationReviewOutput(serializers.Serializer):
    id = serializers.IntegerField()
    reviewed_at = serializers.DateTimeField()
    reviewed_by = serializers.CharField(source="reviewed_by.username")
    findings = serializers.CharField()
    outcome = serializers.CharField()
    next_review_due = serializers.DateTimeField(allow_null=True)


class AuthorisationRenewalOutput(serializers.Serializer):
    id = serializers.IntegerField()
    renewed_at = serializers.DateTimeField()
    renewed_by = serializers.CharField(source="renewed_by.username")
    officer_grade = serializers.CharField()
    statement = serializers.CharField()
    previous_expires_at = serializers.DateTimeField()
    new_expires_at = serializers.DateTimeField()
    status = serializers.CharField()
    judicial_approval = serializers.SerializerMethodField()

    @extend_schema_field(JudicialApprovalOutput(allow_null=True))
    def get_judicial_approval(self, renewal):
        approval = getattr(renewal, "judicial_approval", None)
        return JudicialApprovalOutput(approval).data if approval is not None else None


class AuthorisationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    urn = serializers.CharField()
    type = serializers.CharField()
    status = serializers.SerializerMethodField(
        help_text="The workflow state, with an expiry the scheduled job has not recorded yet shown as expired; "
        "see in_force_now for whether it covers now."
    )
    in_force_now = serializers.SerializerMethodField(
        help_text="Computed from the stored times: true between coming into force and expiry or cancellation."
    )
    case = CaseRefOutput()
    title = serializers.CharField()
    applicant = serializers.CharField(source="applicant.username")
    created_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    in_force_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)

    def _at(self):
        """The moment the answer describes: ``context["at"]``, else now, fixed on first use
        so that every row (and both status and in_force_now) is read at the same moment."""
        return self.context.setdefault("at", timezone.now())

    def get_status(self, authorisation) -> str:
        return authorisation.effective_status(self._at())

    def get_in_force_now(self, authorisation) -> bool:
        return authorisation_in_force(authorisation=authorisation, at=self._at())


class AuthorisationDetailOutput(AuthorisationOutput):
    subjects = AuthorisationSubjectOutput(many=True)
    profiles = AuthorisationProfileOutput(many=True)
    platforms = serializers.ListField(child=serializers.CharField())
    purpose = serializers.CharField()
    information_sought = serializers.CharField()
    planned_activity = serializers.CharField()
    necessity = serializers.CharField()
    proportionality = serializers.CharField()
    alternatives_considered = serializers.CharField()
    collateral_intrusion = serializers.CharField()
    confidential_information_likely = serializers.BooleanField()
    crime_purpose = serializers.BooleanField()
    offence = serializers.CharField()
    offence_max_sentence_months = serializers.IntegerField(allow_null=True)
    underage_sale_offence = serializers.BooleanField()
    juvenile_source = serializers.BooleanField()
    vulnerable_source = serializers.BooleanField()
    decision = serializers.CharField()
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)
    officer_grade = serializers.CharField()
    officer_statement = serializers.CharField()
    officer_directly_involved = serializers.BooleanField()
    limits = serializers.CharField()
    review_interval_days = serializers.IntegerField(allow_null=True)
    next_review_due = serializers.DateTimeField(allow_null=True)
    expiry_recorded_at = serializers.DateTimeField(allow_null=True)
    cancelled_by = serializers.CharField(source="cancelled_by.username", allow_null=True, default=None)
    cancellation_reason = serializers.CharField()
    information_obtained = serializers.CharField()
    material_direction = serializers.CharField()
    staff_told_to_stop_at = serializers.DateTimeField(allow_null=True)
    judicial_approvals = JudicialApprovalOutput(many=True)
    reviews = AuthorisationReviewOutput(many=True)
    renewals = AuthorisationRenewalOutput(many=True)


# --- Central record -----------------------------------------------------------------------------


class CentralRecordOfficer(serializers.Serializer):
    name = serializers.CharField(help_text="The officer's full name (their username when none is recorded).")
    grade = serializers.CharField(help_text="The grade or post given with the decision (else the one on the account).")
    username = serializers.CharField()


class CentralRecordMagistrate(serializers.Serializer):
    court = serializers.CharField()
    justice = serializers.CharField()
    decided_at = serializers.DateTimeField(help_text="Date and time of the magistrate's decision.")
    decision = serializers.CharField()


class CentralRecordReview(serializers.Serializer):
    reviewed_at = serializers.DateTimeField()
    reviewed_by = serializers.CharField(help_text="The reviewing officer's full name.")
    reviewed_by_grade = serializers.CharField(help_text="Their grade or post, as on their account.")
    reviewed_by_username = serializers.CharField()
    outcome = serializers.CharField()
    findings = serializers.CharField()
    next_review_due = serializers.DateTimeField(allow_null=True)


class CentralRecordRenewal(serializers.Serializer):
    renewed_at = serializers.DateTimeField()
    renewed_by = serializers.CharField(help_text="The renewing officer's full name.")
    renewed_by_username = serializers.CharField()
    officer_grade = serializers.CharField()
    previous_expires_at = serializers.DateTimeField()
    new_expires_at = serializers.DateTimeField()
    status = serializers.CharField()
    magistrate_approval = CentralRecordMagistrate(allow_null=True)


class CentralRecordOutput(serializers.Serializer):
    id = serializers.IntegerField()
    urn = serializers.CharField()
    type = serializers.CharField()
    status = serializers.CharField()
    case_reference = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    subjects = serializers.ListField(child=serializers.CharField(), help_text="The subjects' names.")
    applicant = serializers.CharField(help_text="The applicant's full name (their username when none is recorded).")
    applicant_username = serializers.CharField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    decision = serializers.CharField(allow_null=True, help_text="granted or refused; null while awaiting a decision.")
    decided_at = serializers.DateTimeField(allow_null=True)
    date_granted = serializers.DateTimeField(allow_null=True)
    authorising_officer = CentralRecordOfficer(allow_null=True)
    urgency_used = serializers.BooleanField()
    urgency_reason = serializers.CharField()
    confidential_information_likely = serializers.BooleanField()
    officer_directly_involved = serializers.BooleanField(allow_null=True)
    magistrate_approval = CentralRecordMagistrate(allow_null=True)
    in_force_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    reviews = CentralRecordReview(many=True)
    renewals = CentralRecordRenewal(many=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)
    cancelled_by = serializers.CharField(allow_null=True, help_text="The cancelling officer's full name.")
    cancelled_by_grade = serializers.CharField(allow_null=True, help_text="Their grade or post, as on their account.")
    cancelled_by_username = serializers.CharField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    retention_until = serializers.DateTimeField(
        allow_null=True, help_text="Keep the record until then: AUTHORISATION_RETENTION_YEARS after ended_at."
    )


CENTRAL_RECORD_CSV_HEADER = [
    "urn",
    "type",
    "status",
    "case_reference",
    "title",
    "description",
    "subjects",
    "applicant",
    "submitted_at",
    "decision",
    "decided_at",
    "date_granted",
    "authorising_officer_name",
    "authorising_officer_grade",
    "urgency_used",
    "urgency_reason",
    "confidential_information_likely",
    "officer_directly_involved",
    "magistrate_court",
    "magistrate_justice",
    "magistrate_decided_at",
    "magistrate_decision",
    "in_force_at",
    "expires_at",
    "reviews",
    "renewals",
    "cancelled_at",
    "cancelled_by",
    "ended_at",
    "retention_until",
    "applicant_username",
    "authorising_officer_username",
    "cancelled_by_grade",
    "cancelled_by_username",
]


def _with_grade(name: str, grade: str) -> str:
    return f"{name} ({grade})" if grade else name


def _when(moment) -> str:
    return moment.isoformat() if moment else ""


def central_record_csv_row(entry: dict) -> list:
    officer = entry["authorising_officer"] or {}
    magistrate = entry["magistrate_approval"] or {}
    reviews = " | ".join(
        f"{_when(r['reviewed_at'])} {r['outcome']} by {_with_grade(r['reviewed_by'], r['reviewed_by_grade'])}"
        + (f", next review {_when(r['next_review_due'])}" if r["next_review_due"] else "")
        + f": {r['findings']}"
        for r in entry["reviews"]
    )
    renewals = " | ".join(
        f"{_when(r['renewed_at'])} by {r['renewed_by']} ({r['officer_grade']}), to {_when(r['new_expires_at'])}, "
        f"{r['status']}"
        + (
            f", magistrate {r['magistrate_approval']['decision']} at {r['magistrate_approval']['court']} "
            f"{_when(r['magistrate_approval']['decided_at'])}"
            if r["magistrate_approval"]
            else ""
        )
        for r in entry["renewals"]
    )
    return [
        entry["urn"],
        entry["type"],
        entry["status"],
        entry["case_reference"],
        entry["title"],
        entry["description"],
        "; ".join(entry["subjects"]),
        entry["applicant"],
        entry["submitted_at"],
        entry["decision"],
        entry["decided_at"],
        entry["date_granted"],
        officer.get("name"),
        officer.get("grade"),
        "yes" if entry["urgency_used"] else "no",
        entry["urgency_reason"],
        "yes" if entry["confidential_information_likely"] else "no",
        {True: "yes", False: "no", None: ""}[entry["officer_directly_involved"]],
        magistrate.get("court"),
        magistrate.get("justice"),
        magistrate.get("decided_at"),
        magistrate.get("decision"),
        entry["in_force_at"],
        entry["expires_at"],
        reviews,
        renewals,
        entry["cancelled_at"],
        entry["cancelled_by"],
        entry["ended_at"],
        entry["retention_until"],
        entry["applicant_username"],
        officer.get("username"),
        entry["cancelled_by_grade"],
        entry["cancelled_by_username"],
    ]
