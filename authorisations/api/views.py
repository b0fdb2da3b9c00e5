"""Authorisations: applications, decisions, magistrate approval, reviews, renewals,
cancellation and the central record. Each view: validate input → call a service or
selector → serialize output. Reads record their audit event in the same transaction as
the read."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role
from audit.api.views import CSVRenderer, csv_response
from audit.services import AuditContext, audit_record
from authorisations import selectors, services
from authorisations.api.serializers import (
    CENTRAL_RECORD_CSV_HEADER,
    AuthorisationCancellationInput,
    AuthorisationDetailOutput,
    AuthorisationOutput,
    CentralRecordOutput,
    central_record_csv_row,
)
from authorisations.models import (
    Authorisation,
    AuthorisationStatus,
    AuthorisationType,
    JudicialOutcome,
    ReviewOutcome,
)
from authorisations.permissions import AUTHORISATION_READERS, AUTHORISING_OFFICERS, CENTRAL_RECORD_READERS
from cases import selectors as case_selectors
from cases.api.views import page_schema
from cases.profiles import PLATFORM_CHOICES
from evidence_service.api.fields import IdField, LineField, MomentField
from evidence_service.api.pagination import keyset_page
from evidence_service.api.permissions import RolePermission

PRACTITIONERS = (Role.PRACTITIONER,)


class _Api(APIView):
    permission_classes = [RolePermission]
    read_roles: tuple = AUTHORISATION_READERS
    write_roles: tuple = AUTHORISING_OFFICERS


def _detail(request, authorisation: Authorisation) -> dict:
    """The authorisation as it now stands, for the answer to a change."""
    fresh = selectors.authorisation_get(user=request.user, authorisation_id=authorisation.pk)
    return AuthorisationDetailOutput(fresh).data


def _cancellation(data: dict) -> services.Cancellation:
    return services.Cancellation(
        reason=data["reason"],
        information_obtained=data["information_obtained"],
        material_direction=data["material_direction"],
        staff_told_to_stop_at=data["staff_told_to_stop_at"],
    )


# --- Applications -------------------------------------------------------------------------------


class AuthorisationListCreateApi(_Api):
    write_roles = PRACTITIONERS

    class Input(serializers.Serializer):
        type = serializers.ChoiceField(choices=AuthorisationType.choices)
        case = IdField()
        title = LineField(
            max_length=200, required=False, allow_blank=True, default="", help_text="Defaults to the case's title."
        )
        subjects = serializers.ListField(
            child=IdField(), allow_empty=False, max_length=100, help_text="People on the case."
        )
        profiles = serializers.ListField(
            child=IdField(), required=False, default=list, max_length=200, help_text="In scope."
        )
        platforms = serializers.ListField(
            child=serializers.ChoiceField(choices=PLATFORM_CHOICES),
            required=False,
            default=list,
            max_length=20,
            help_text="Platforms in scope: any profile of the subjects on them.",
        )
        purpose = serializers.CharField(max_length=20000)
        information_sought = serializers.CharField(max_length=20000)
        planned_activity = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="")
        necessity = serializers.CharField(max_length=20000)
        proportionality = serializers.CharField(max_length=20000)
        alternatives_considered = serializers.CharField(max_length=20000)
        collateral_intrusion = serializers.CharField(
            max_length=20000, help_text="Intrusion into others' privacy and how it is minimised."
        )
        confidential_information_likely = serializers.BooleanField()
        crime_purpose = serializers.BooleanField(required=False, default=False)
        offence = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
        offence_max_sentence_months = serializers.IntegerField(
            required=False, allow_null=True, default=None, min_value=0, max_value=1200
        )
        underage_sale_offence = serializers.BooleanField(required=False, default=False)
        juvenile_source = serializers.BooleanField(required=False, default=False, help_text="CHIS only.")
        vulnerable_source = serializers.BooleanField(required=False, default=False, help_text="CHIS only.")

    class Filters(serializers.Serializer):
        case = IdField(required=False)
        status = serializers.ChoiceField(choices=AuthorisationStatus.choices, required=False)
        type = serializers.ChoiceField(choices=AuthorisationType.choices, required=False)

    @extend_schema(
        parameters=[Filters, OpenApiParameter("cursor", str), OpenApiParameter("limit", int)],
        responses=page_schema("AuthorisationPage", AuthorisationOutput),
        operation_id="authorisations_list",
    )
    def get(self, request):
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        at = timezone.now()  # one moment for the effective status, in the filter and in each row
        with transaction.atomic():
            authorisations = selectors.authorisation_list(
                user=request.user, case_id=f.get("case"), status=f.get("status"), type=f.get("type"), at=at
            )
            page = keyset_page(authorisations, request, order=("-id",))
            audit_record(
                ctx=AuditContext.from_request(request),
                action="authorisation.list",
                target_type="authorisation",
                case_id=f.get("case"),
                payload={"filters": f, "authorisation_ids": [a.pk for a in page.rows]},
            )
        results = AuthorisationOutput(page.rows, many=True, context={"at": at}).data
        return Response({"results": results, "next": page.next_url})

    @extend_schema(request=Input, responses={201: AuthorisationDetailOutput})
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        d = dict(data.validated_data)
        case = case_selectors.case_get(user=request.user, case_id=d.pop("case"), field="case")
        application = services.Application(subject_ids=d.pop("subjects"), profile_ids=d.pop("profiles"), **d)
        authorisation = services.authorisation_create(
            ctx=AuditContext.from_request(request), case=case, application=application
        )
        return Response(_detail(request, authorisation), status=status.HTTP_201_CREATED)


class AuthorisationDetailApi(_Api):
    @extend_schema(responses=AuthorisationDetailOutput)
    def get(self, request, pk: int):
        with transaction.atomic():
            authorisation = selectors.authorisation_get(user=request.user, authorisation_id=pk)
            audit_record(
                ctx=AuditContext.from_request(request),
                action="authorisation.read",
                target_type="authorisation",
                target_id=authorisation.pk,
                case_id=authorisation.case_id,
                subject_ids=[subject.pk for subject in authorisation.subjects.all()],
            )
        return Response(AuthorisationDetailOutput(authorisation).data)


class AuthorisationSubmitApi(_Api):
    write_roles = PRACTITIONERS

    @extend_schema(request=None, responses=AuthorisationDetailOutput)
    def post(self, request, pk: int):
        authorisation = selectors.authorisation_get(user=request.user, authorisation_id=pk)
        authorisation = services.authorisation_submit(
            ctx=AuditContext.from_request(request), authorisation=authorisation
        )
        return Response(_detail(request, authorisation))


# --- Decisions ----------------------------------------------------------------------------------


OFFICER_GRADE_HELP = "Your grade or post, for the central record; by default the grade on your account."


class AuthorisationGrantApi(_Api):
    class Input(serializers.Serializer):
        officer_grade = serializers.CharField(
            max_length=200, required=False, default="", allow_blank=True, help_text=OFFICER_GRADE_HELP
        )
        statement = serializers.CharField(
            max_length=20000, help_text="Your own statement of why it is necessary and proportionate."
        )
        limits = serializers.CharField(max_length=20000, help_text="What is authorised and what is not.")
        review_interval_days = serializers.IntegerField(min_value=1, max_value=services.MAX_REVIEW_INTERVAL_DAYS)
        expires_at = MomentField(
            required=False, allow_null=True, default=None, help_text="Non-RIPA only: when it ends."
        )
        directly_involved = serializers.BooleanField(
            required=False, default=False, help_text="Whether you are directly involved in the investigation."
        )

    @extend_schema(request=Input, responses=AuthorisationDetailOutput)
    def post(self, request, pk: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        authorisation = selectors.authorisation_get(user=request.user, authorisation_id=pk)
        authorisation = services.authorisation_grant(
            ctx=AuditContext.from_request(request), authorisation=authorisation, **data.validated_data
        )
        return Response(_detail(request, authorisation))


class AuthorisationRefuseApi(_Api):
    class Input(serializers.Serializer):
        officer_grade = serializers.CharField(
            max_length=200, required=False, default="", allow_blank=True, help_text=OFFICER_GRADE_HELP
        )
        statement = serializers.CharField(max_length=20000, help_text="Why the application is refused.")
        directly_involved = serializers.BooleanField(required=False, default=False)

    @extend_schema(request=Input, responses=AuthorisationDetailOutput)
    def post(self, request, pk: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        authorisation = selectors.authorisation_get(user=request.user, authorisation_id=pk)
        authorisation = services.authorisation_refuse(
            ctx=AuditContext.from_request(request), authorisation=authorisation, **data.validated_data
        )
        return Response(_detail(request, authorisation))


class JudicialApprovalApi(_Api):
    class Input(serializers.Serializer):
        court = serializers.CharField(max_length=200)
        justice = serializers.CharField(max_length=200, help_text="The justice of the peace.")
        decided_at = MomentField(help_text="Date and time of the magistrate's decision.")
        outcome = serializers.ChoiceField(choices=JudicialOutcome.choices)
        notes = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="")

    @extend_schema(request=Input, responses={201: AuthorisationDetailOutput})
    def post(self, request, pk: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        authorisation = selectors.authorisation_get(user=request.user, authorisation_id=pk)
        services.authorisation_record_judicial_approval(
            ctx=AuditContext.from_request(request), authorisation=authorisation, **data.validated_data
        )
        return Response(_detail(request, authorisation), status=status.HTTP_201_CREATED)


# --- Reviews, renewals, cancellation ----------------------------------------------------------------


class AuthorisationReviewCreateApi(_Api):
    class Input(serializers.Serializer):
        findings = serializers.CharField(max_length=20000)
        outcome = serializers.ChoiceField(choices=ReviewOutcome.choices)
        next_review_due = MomentField(
            required=False, allow_null=True, default=None, help_text="continue: defaults to one review interval on."
        )
        cancellation = AuthorisationCancellationInput(required=False, allow_null=True, default=None)

    @extend_schema(request=Input, responses={201: AuthorisationDetailOutput})
    def post(self, request, pk: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        d = dict(data.validated_data)
        cancellation = d.pop("cancellation")
        authorisation = selectors.authorisation_get(user=request.user, authorisation_id=pk)
        services.authorisation_review(
            ctx=AuditContext.from_request(request),
            authorisation=authorisation,
            cancellation=_cancellation(cancellation) if cancellation else None,
            **d,
        )
        return Response(_detail(request, authorisation), status=status.HTTP_201_CREATED)


class AuthorisationRenewApi(_Api):
    class Input(serializers.Serializer):
        officer_grade = serializers.CharField(
            max_length=200, required=False, default="", allow_blank=True, help_text=OFFICER_GRADE_HELP
        )
        statement = serializers.CharField(
            max_length=20000, help_text="Why it is still necessary and proportionate, and what it has obtained."
        )
        expires_at = MomentField(
            required=False, allow_null=True, default=None, help_text="Non-RIPA only: when the renewal ends."
        )

    @extend_schema(request=Input, responses={201: AuthorisationDetailOutput})
    def post(self, request, pk: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        authorisation = selectors.authorisation_get(user=request.user, authorisation_id=pk)
        services.authorisation_renew(
            ctx=AuditContext.from_request(request), authorisation=authorisation, **data.validated_data
        )
        return Response(_detail(request, authorisation), status=status.HTTP_201_CREATED)


class AuthorisationCancelApi(_Api):
    @extend_schema(request=AuthorisationCancellationInput, responses=AuthorisationDetailOutput)
    def post(self, request, pk: int):
        data = AuthorisationCancellationInput(data=request.data)
        data.is_valid(raise_exception=True)
        authorisation = selectors.authorisation_get(user=request.user, authorisation_id=pk)
        authorisation = services.authorisation_cancel(
            ctx=AuditContext.from_request(request),
            authorisation=authorisation,
            cancellation=_cancellation(data.validated_data),
        )
        return Response(_detail(request, authorisation))


# --- Central record -------------------------------------------------------------------------------


class CentralRecordApi(APIView):
    permission_classes = [RolePermission]
    read_roles = CENTRAL_RECORD_READERS
    write_roles: tuple = ()
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]

    class Filters(serializers.Serializer):
        type = serializers.ChoiceField(choices=AuthorisationType.choices, required=False)
        status = serializers.ChoiceField(choices=AuthorisationStatus.choices, required=False)

    @extend_schema(
        parameters=[
            Filters,
            OpenApiParameter("cursor", str),
            OpenApiParameter("limit", int),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses={
            200: OpenApiResponse(
                page_schema("CentralRecordPage", CentralRecordOutput),
                description="JSON page in URN order, or CSV of the whole record",
            )
        },
    )
    def get(self, request):
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        at = timezone.now()  # one moment for the effective status, in the filter and in each entry
        records = selectors.central_record(**filters.validated_data, at=at)
        ctx = AuditContext.from_request(request)
        if getattr(request, "accepted_renderer", None) is not None and request.accepted_renderer.format == "csv":
            with transaction.atomic():
                authorisations = list(records.order_by("id"))
                self._audit(ctx, filters.validated_data, "csv", authorisations)
            rows = (central_record_csv_row(selectors.central_record_entry(a, at=at)) for a in authorisations)
            return csv_response("central-record.csv", CENTRAL_RECORD_CSV_HEADER, rows)
        with transaction.atomic():
            page = keyset_page(records, request, order=("id",))
            self._audit(ctx, filters.validated_data, "json", page.rows)
        entries = [selectors.central_record_entry(a, at=at) for a in page.rows]
        return Response({"results": CentralRecordOutput(entries, many=True).data, "next": page.next_url})

    @staticmethod
    def _audit(ctx: AuditContext, filters: dict, fmt: str, authorisations: list[Authorisation]) -> None:
        audit_record(
            ctx=ctx,
            action="central_record.export",
            target_type="authorisation",
            subject_ids={subject.pk for a in authorisations for subject in a.subjects.all()},
            payload={"filters": filters, "format": fmt, "urns": [a.urn for a in authorisations]},
        )
