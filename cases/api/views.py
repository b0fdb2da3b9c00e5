"""Cases, subjects, profiles, consent and viewings. Each view: validate input → call a
service or selector → serialize output. Reads record their audit event in the same
transaction as the read."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role
from audit.services import AuditContext, audit_record
from authorisations.models import Authorisation
from cases import selectors, services
from cases.api.serializers import (
    CaseDetailOutput,
    CaseOutput,
    ConsentOutput,
    ExternalAuthority,
    ProfileOutput,
    SubjectDetailOutput,
    ViewingCheckOutput,
    ViewingOutput,
)
from cases.models import (
    AccessMethod,
    Case,
    ConsentGivenBy,
    ConsentMethod,
    Interaction,
    Profile,
    Purpose,
    Relationship,
)
from cases.profiles import PLATFORM_CHOICES
from evidence_service.api.errors import InvalidInput, NotFound
from evidence_service.api.fields import (
    EARLIEST_MOMENT,
    FieldsCopiedOnce,
    IdField,
    LineField,
    MomentField,
    PeriodFilters,
)
from evidence_service.api.pagination import keyset_page
from evidence_service.api.permissions import RolePermission

CASE_READERS = (Role.PRACTITIONER, Role.RIPA_OFFICER, Role.SRO)
PRACTITIONERS = (Role.PRACTITIONER,)


def page_schema(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    return type(
        name, (serializers.Serializer,), {"results": item(many=True), "next": serializers.URLField(allow_null=True)}
    )


class _Api(APIView):
    permission_classes = [RolePermission]
    read_roles: tuple = CASE_READERS
    write_roles: tuple = PRACTITIONERS


# --- Cases --------------------------------------------------------------------------------------


class CaseListCreateApi(_Api):
    class Input(serializers.Serializer):
        reference = LineField(max_length=64)
        title = LineField(max_length=200)
        team = IdField()

    class Filters(serializers.Serializer):
        status = serializers.ChoiceField(choices=["open", "closed"], required=False)

    @extend_schema(
        parameters=[Filters, OpenApiParameter("cursor", str), OpenApiParameter("limit", int)],
        responses=page_schema("CasePage", CaseOutput),
        operation_id="cases_list",
    )
    def get(self, request):
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        with transaction.atomic():
            page = keyset_page(
                selectors.case_list(user=request.user, **filters.validated_data), request, order=("-id",)
            )
            audit_record(
                ctx=AuditContext.from_request(request),
                action="case.list",
                target_type="case",
                payload={"filters": filters.validated_data, "case_ids": [case.pk for case in page.rows]},
            )
        return Response({"results": CaseOutput(page.rows, many=True).data, "next": page.next_url})

    @extend_schema(request=Input, responses={201: CaseOutput})
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        team = request.user.teams.filter(pk=data.validated_data["team"]).first()
        if team is None:
            raise NotFound("team", data.validated_data["team"], field="team")
        case = services.case_create(
            ctx=AuditContext.from_request(request),
            reference=data.validated_data["reference"],
            title=data.validated_data["title"],
            team=team,
        )
        return Response(CaseOutput(case).data, status=status.HTTP_201_CREATED)


class CaseDetailApi(_Api):
    @extend_schema(responses=CaseDetailOutput)
    def get(self, request, pk: int):
        with transaction.atomic():
            case = selectors.case_get(user=request.user, case_id=pk)
            case.subject_links_for_output = list(selectors.case_subject_links(case=case))
            audit_record(
                ctx=AuditContext.from_request(request),
                action="case.read",
                target_type="case",
                target_id=case.pk,
                case_id=case.pk,
                subject_ids=[link.subject_id for link in case.subject_links_for_output],
            )
        return Response(CaseDetailOutput(case).data)


class CaseCloseApi(_Api):
    @extend_schema(request=None, responses=CaseOutput)
    def post(self, request, pk: int):
        case = selectors.case_get(user=request.user, case_id=pk)
        case = services.case_close(ctx=AuditContext.from_request(request), case=case)
        return Response(CaseOutput(case).data)


# --- Subjects, profiles, consent ----------------------------------------------------------------


class CaseSubjectCreateApi(_Api):
    class Input(serializers.Serializer):
        display_name = LineField(max_length=200)
        relationship = serializers.ChoiceField(choices=Relationship.choices)
        external_id = LineField(
            max_length=64,
            required=False,
            allow_null=True,
            allow_blank=True,
            help_text="Compared ignoring case, spaces, hyphens, dots and invisible characters (NHS-943 476 5919 = "
            "9434765919).",
        )
        date_of_birth = serializers.DateField(required=False, allow_null=True, help_text="From 1900-01-01 to today.")
        force = serializers.BooleanField(
            required=False,
            default=False,
            help_text="Record a new person even though one with the same name and date of birth is recorded.",
        )
        force_reason = serializers.CharField(
            max_length=2000, required=False, allow_blank=True, default="", help_text="Why, with force."
        )

        def validate_date_of_birth(self, value):
            # Nobody the service records was born before 1900 (the earliest date it takes
            # in) or is yet to be born: such a date is a typing error.
            if value is not None and value < EARLIEST_MOMENT.date():
                raise serializers.ValidationError("Dates of birth before 1900 are not accepted.")
            if value is not None and value > timezone.localdate():
                raise serializers.ValidationError("A date of birth cannot be in the future.")
            return value

    class Output(serializers.Serializer):
        id = serializers.IntegerField()
        display_name = serializers.CharField()
        external_id = serializers.CharField(allow_null=True)
        date_of_birth = serializers.DateField(allow_null=True)
        case = serializers.IntegerField()
        relationship = serializers.CharField()
        existing_subject = serializers.BooleanField(help_text="True when an existing person was linked.")

    @extend_schema(request=Input, responses={201: Output, 200: Output})
    def post(self, request, pk: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        case = selectors.case_get(user=request.user, case_id=pk)
        result = services.subject_add_to_case(ctx=AuditContext.from_request(request), case=case, **data.validated_data)
        subject = result.subject
        body = {
            "id": subject.pk,
            "display_name": subject.display_name,
            "external_id": subject.external_id,
            "date_of_birth": subject.date_of_birth,
            "case": case.pk,
            "relationship": result.link.relationship,
            "existing_subject": not result.subject_created,
        }
        return Response(
            self.Output(body).data, status=status.HTTP_201_CREATED if result.link_created else status.HTTP_200_OK
        )


class SubjectDetailApi(_Api):
    @extend_schema(responses=SubjectDetailOutput)
    def get(self, request, pk: int):
        with transaction.atomic():
            subject = selectors.subject_get(user=request.user, subject_id=pk)
            subject.visible_case_links = list(selectors.subject_visible_case_links(user=request.user, subject=subject))
            subject.profiles_for_output = list(selectors.subject_profiles(user=request.user, subject=subject))
            subject.consents_for_output = list(selectors.subject_consents(user=request.user, subject=subject))
            audit_record(
                ctx=AuditContext.from_request(request),
                action="subject.read",
                target_type="subject",
                target_id=subject.pk,
                subject_ids=[subject.pk],
            )
        return Response(SubjectDetailOutput(subject).data)


class ProfileCreateApi(_Api):
    class Input(serializers.Serializer):
        platform = serializers.ChoiceField(choices=PLATFORM_CHOICES)
        handle = LineField(max_length=500, help_text="A handle (jane.doe) or the profile's address.")

    @extend_schema(request=Input, responses={201: ProfileOutput, 200: ProfileOutput})
    def post(self, request, pk: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        subject = selectors.subject_get(user=request.user, subject_id=pk)
        profile, created = services.profile_register(
            ctx=AuditContext.from_request(request), subject=subject, **data.validated_data
        )
        return Response(ProfileOutput(profile).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ConsentCreateApi(_Api):
    class Input(serializers.Serializer):
        scope = serializers.ListField(
            child=serializers.ChoiceField(choices=[*PLATFORM_CHOICES, "all"]), allow_empty=False, max_length=20
        )
        granted_at = MomentField()
        expires_at = MomentField(required=False, allow_null=True)
        evidence = serializers.CharField(
            max_length=5000, help_text="How it was given and where the record is kept (10+ characters)."
        )
        given_by = serializers.ChoiceField(choices=ConsentGivenBy.choices)
        given_by_name = serializers.CharField(max_length=200)
        method = serializers.ChoiceField(choices=ConsentMethod.choices)
        granted_at_reason = serializers.CharField(
            max_length=5000,
            required=False,
            allow_blank=True,
            default="",
            help_text="Needed when granted_at is more than 7 days before now: why it is recorded late.",
        )

    @extend_schema(request=Input, responses={201: ConsentOutput})
    def post(self, request, pk: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        subject = selectors.subject_get(user=request.user, subject_id=pk)
        consent = services.consent_record(
            ctx=AuditContext.from_request(request), subject=subject, **data.validated_data
        )
        return Response(ConsentOutput(consent).data, status=status.HTTP_201_CREATED)


class ConsentWithdrawApi(_Api):
    class Input(serializers.Serializer):
        reason = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
        withdrawn_at = MomentField(required=False, allow_null=True)

    @extend_schema(request=Input, responses=ConsentOutput)
    def post(self, request, pk: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        consent = selectors.consent_get(user=request.user, consent_id=pk)
        consent = services.consent_withdraw(
            ctx=AuditContext.from_request(request), consent=consent, **data.validated_data
        )
        return Response(ConsentOutput(consent).data)


class ConsentConfirmApi(_Api):
    """An officer confirms a consent (RIPA officers and the SRO only)."""

    write_roles = (Role.RIPA_OFFICER, Role.SRO)

    class Input(serializers.Serializer):
        note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")

    @extend_schema(request=Input, responses=ConsentOutput)
    def post(self, request, pk: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        consent = selectors.consent_get(user=request.user, consent_id=pk)
        consent = services.consent_confirm(
            ctx=AuditContext.from_request(request), consent=consent, **data.validated_data
        )
        return Response(ConsentOutput(consent).data)


# --- Viewings -------------------------------------------------------------------------------------


class ViewingInput(FieldsCopiedOnce, serializers.Serializer):
    case = IdField()
    profile = IdField()
    purpose = serializers.ChoiceField(choices=Purpose.choices)
    purpose_detail = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    justification = serializers.CharField(max_length=10000)
    access_method = serializers.ChoiceField(choices=AccessMethod.choices)
    interaction = serializers.ChoiceField(choices=Interaction.choices)
    information_recorded = serializers.CharField(
        max_length=20000, allow_blank=True, help_text="What was recorded from the profile; empty if nothing."
    )
    third_party_information = serializers.CharField(
        max_length=20000, allow_blank=True, help_text="Information about other people recorded; empty if none."
    )
    viewed_at = MomentField(required=False, allow_null=True)
    late_entry_reason = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    authorisation = IdField(required=False, allow_null=True)
    external_authority = ExternalAuthority(required=False, allow_null=True)


def _viewing_details(request, data: dict, found: tuple[Case, Profile] | None = None) -> services.ViewingDetails:
    """Resolve the ids in a viewing's input within the caller's scope (the case and profile
    unless already ``found``)."""
    if found is None:
        found = selectors.viewing_targets(user=request.user, case_id=data["case"], profile_id=data["profile"])
    case, profile = found
    authorisation = None
    if data.get("authorisation") is not None:
        # One the caller cannot see is 404 as ever; one they can see on another case is
        # bad input, not out of scope (they may read it): name the field and say why.
        authorisation = Authorisation.objects.visible_to(request.user).filter(pk=data["authorisation"]).first()
        if authorisation is None:
            raise NotFound("authorisation", data["authorisation"], field="authorisation")
        if authorisation.case_id != case.pk:
            message = "This authorisation is for another case."
            raise InvalidInput(message, fields={"authorisation": message})
    external = data.get("external_authority") or {}
    return services.ViewingDetails(
        case=case,
        profile=profile,
        purpose=data["purpose"],
        purpose_detail=data["purpose_detail"],
        justification=data["justification"],
        access_method=data["access_method"],
        interaction=data["interaction"],
        information_recorded=data["information_recorded"],
        third_party_information=data["third_party_information"],
        viewed_at=data.get("viewed_at"),
        late_entry_reason=data["late_entry_reason"],
        authorisation=authorisation,
        external_authority_kind=external.get("kind", ""),
        external_authority_reference=external.get("reference", ""),
    )


class ViewingListCreateApi(_Api):
    class Filters(PeriodFilters):
        case = IdField(required=False)
        subject = IdField(required=False)
        profile = IdField(required=False)

    @extend_schema(
        parameters=[Filters, OpenApiParameter("cursor", str), OpenApiParameter("limit", int)],
        responses=page_schema("ViewingPage", ViewingOutput),
        operation_id="viewings_list",
    )
    def get(self, request):
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        with transaction.atomic():
            viewings = selectors.viewing_list(
                user=request.user,
                case_id=f.get("case"),
                subject_id=f.get("subject"),
                profile_id=f.get("profile"),
                since=f.get("since"),
                until=f.get("until"),
            )
            page = keyset_page(viewings, request, order=("-viewed_at", "-id"))
            audit_record(
                ctx=AuditContext.from_request(request),
                action="viewing.list",
                target_type="viewing",
                case_id=f.get("case"),
                subject_ids=[viewing.subject_id for viewing in page.rows] + ([f["subject"]] if "subject" in f else []),
                payload={"filters": f, "viewing_ids": [viewing.pk for viewing in page.rows]},
            )
            # In the same transaction: their flags and the rest are read as the page was.
            results = ViewingOutput(page.rows, many=True).data
        return Response({"results": results, "next": page.next_url})

    @extend_schema(request=ViewingInput, responses={201: ViewingOutput})
    def post(self, request):
        data = ViewingInput(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        with transaction.atomic():
            # The case, the profile, the person's lock and what logging the look checks, in
            # one statement (this is most of the service's traffic).
            case, profile, context = selectors.viewing_scope(
                user=request.user,
                case_id=given["case"],
                profile_id=given["profile"],
                at=given.get("viewed_at") or timezone.now(),
            )
            details = _viewing_details(request, given, found=(case, profile))
            viewing = services.viewing_log(ctx=AuditContext.from_request(request), details=details, context=context)
        return Response(ViewingOutput(viewing).data, status=status.HTTP_201_CREATED)


class ViewingDetailApi(_Api):
    @extend_schema(responses=ViewingOutput)
    def get(self, request, pk: int):
        with transaction.atomic():
            viewing = selectors.viewing_get(user=request.user, viewing_id=pk)
            audit_record(
                ctx=AuditContext.from_request(request),
                action="viewing.read",
                target_type="viewing",
                target_id=viewing.pk,
                case_id=viewing.case_id,
                subject_ids=[viewing.subject_id],
            )
        return Response(ViewingOutput(viewing).data)


class ViewingSupersedeApi(_Api):
    class Input(ViewingInput):
        reason = serializers.CharField(max_length=5000, help_text="Why the original record is wrong.")

    @extend_schema(request=Input, responses={201: ViewingOutput})
    def post(self, request, pk: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        original = selectors.viewing_get(user=request.user, viewing_id=pk)
        details = _viewing_details(request, data.validated_data)
        viewing = services.viewing_supersede(
            ctx=AuditContext.from_request(request),
            original=original,
            reason=data.validated_data["reason"],
            details=details,
        )
        return Response(ViewingOutput(viewing).data, status=status.HTTP_201_CREATED)


class ViewingCheckApi(_Api):
    @extend_schema(
        request=ViewingInput,
        responses={200: ViewingCheckOutput},
        operation_id="viewings_check",
        description=(
            "What logging this viewing (the same body as POST /viewings/) would do, without logging it: the flags "
            "it would raise or join, what would cover it, and advice. Refused as logging would refuse it; writes "
            "nothing but its audit event (viewing.check)."
        ),
    )
    def post(self, request):
        data = ViewingInput(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        with transaction.atomic():
            # As logging reads them, without the person's lock: a check never holds up a look.
            case, profile, context = selectors.viewing_scope(
                user=request.user,
                case_id=given["case"],
                profile_id=given["profile"],
                at=given.get("viewed_at") or timezone.now(),
                lock=False,
            )
            details = _viewing_details(request, given, found=(case, profile))
            check = services.viewing_check(ctx=AuditContext.from_request(request), details=details, context=context)
        return Response(ViewingCheckOutput(check.answer).data)
