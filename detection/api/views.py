"""The detection policy and flags."""

from __future__ import annotations

from collections import defaultdict

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role
from audit.services import AuditContext, audit_record
from cases.api.views import page_schema
from detection import selectors, services
from detection.models import FlagOutcome, FlagRecipient, FlagStatus, RuleCode
from evidence_service.api.fields import IdField, ReadTogether, moment_text
from evidence_service.api.pagination import keyset_page
from evidence_service.api.permissions import RolePermission


class PolicyOutput(serializers.Serializer):
    version = serializers.IntegerField()
    rules = serializers.JSONField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)


class PolicyApi(APIView):
    permission_classes = [RolePermission]
    read_roles = (Role.RIPA_OFFICER, Role.SRO, Role.AUDITOR)
    write_roles = (Role.SRO,)

    class Input(serializers.Serializer):
        rules = serializers.JSONField(help_text="Every rule: {enabled, severity, params}.")
        note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    @extend_schema(responses=PolicyOutput)
    def get(self, request):
        with transaction.atomic():
            policy = selectors.policy_current()
            audit_record(
                ctx=AuditContext.from_request(request),
                action="policy.read",
                target_type="policy",
                target_id=policy.version,
            )
        return Response(PolicyOutput(policy).data)

    @extend_schema(request=Input, responses=PolicyOutput)
    def put(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        policy = services.policy_update(ctx=AuditContext.from_request(request), **data.validated_data)
        return Response(PolicyOutput(policy).data)


class RecipientOutput(serializers.Serializer):
    username = serializers.CharField(source="officer.username")
    reason = serializers.CharField()


class FlagListOutput(ReadTogether):
    def read_together(self, rows: list) -> None:
        _read_recipients(rows)


class FlagOutput(serializers.Serializer):
    class Meta:
        list_serializer_class = FlagListOutput

    id = serializers.IntegerField()
    rule = serializers.CharField()
    severity = serializers.CharField()
    status = serializers.CharField()
    case = serializers.IntegerField(
        source="case_id", allow_null=True, help_text="null for a practitioner whose teams do not own the case."
    )
    case_reference = serializers.CharField(
        source="case.reference", allow_null=True, help_text="null for a practitioner whose teams do not own the case."
    )
    subject = serializers.IntegerField(source="subject_id")
    explanation = serializers.CharField(
        help_text="For a practitioner whose teams do not own the case: the explanation of their own latest look."
    )
    policy_version = serializers.IntegerField()
    raised_at = serializers.DateTimeField()
    routed_to = RecipientOutput(many=True, source="recipients.all")
    outcome = serializers.CharField()
    reasoning = serializers.CharField(
        allow_null=True, help_text="The officer's; null for a practitioner whose teams do not own the case."
    )
    decided_at = serializers.DateTimeField(allow_null=True)
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)

    def to_representation(self, flag) -> dict:
        """The fields declared above, written out: building them for each flag of a page
        cost most of the page (tests/detection/test_flag_output.py checks the two agree)."""
        if getattr(flag, "routed_to_output", None) is None:
            _read_recipients([flag])
        return as_seen(
            flag,
            {
                "id": flag.pk,
                "rule": flag.rule,
                "severity": flag.severity,
                "status": flag.status,
                "case": flag.case_id,
                "case_reference": flag.case.reference,
                "subject": flag.subject_id,
                "explanation": flag.explanation,
                "policy_version": flag.policy_version,
                "raised_at": moment_text(flag.raised_at),
                "routed_to": flag.routed_to_output,
                "outcome": flag.outcome,
                "reasoning": flag.reasoning,
                "decided_at": moment_text(flag.decided_at),
                "decided_by": flag.decided_by.username if flag.decided_by_id else None,
            },
        )


def as_seen(flag, data: dict) -> dict:
    """``data``, a flag written out, as the reader may see it: a practitioner whose look
    joined a flag on another team's case (``selectors.flags_seen_by``) sees it from their
    own look, without that case, its explanation, the officer's reasoning or a draft
    application for it. The outcome, and who decided, stay."""
    own = getattr(flag, "own_explanation", None)
    if own is not None:
        data.update(case=None, case_reference=None, explanation=own, reasoning=None)
        if "draft_application" in data:
            data["draft_application"] = None
    return data


def _read_recipients(flags) -> None:
    """Give each flag whose recipients are not in hand their entries (``routed_to_output``),
    oldest first, read for all of them in one statement."""
    pending = [flag for flag in flags if getattr(flag, "routed_to_output", None) is None]
    if not pending:
        return
    routed = defaultdict(list)
    recipients = FlagRecipient.objects.filter(flag_id__in=[flag.pk for flag in pending]).order_by("id")
    for flag_id, username, reason in recipients.values_list("flag_id", "officer__username", "reason"):
        routed[flag_id].append({"username": username, "reason": reason})
    for flag in pending:
        flag.routed_to_output = routed[flag.pk]


class FlagViewingOutput(serializers.Serializer):
    viewing = serializers.IntegerField(source="viewing_id")
    viewed_at = serializers.DateTimeField(source="viewing.viewed_at")
    practitioner = serializers.CharField(source="viewing.practitioner.username")
    case_reference = serializers.CharField(source="viewing.case.reference")
    platform = serializers.CharField(source="viewing.profile.platform")
    profile = serializers.CharField(source="viewing.profile.url")
    purpose = serializers.CharField(source="viewing.purpose")
    justification = serializers.CharField(source="viewing.justification")
    explanation = serializers.CharField()
    counted_viewing_ids = serializers.ListField(child=serializers.IntegerField())
    added_at = serializers.DateTimeField()


class FlagDetailOutput(FlagOutput):
    viewings = FlagViewingOutput(many=True, source="visible_links")
    viewings_not_shown = serializers.IntegerField(help_text="Triggering viewings on other teams' cases.")
    draft_application = serializers.JSONField(allow_null=True)

    def to_representation(self, flag) -> dict:
        # One flag: the declared fields, as DRF builds them.
        return as_seen(flag, serializers.Serializer.to_representation(self, flag))


class _FlagApi(APIView):
    permission_classes = [RolePermission]
    read_roles = (Role.PRACTITIONER, Role.RIPA_OFFICER, Role.SRO)
    write_roles = (Role.RIPA_OFFICER, Role.SRO)


class FlagListApi(_FlagApi):
    class Filters(serializers.Serializer):
        status = serializers.ChoiceField(choices=FlagStatus.choices, required=False)
        rule = serializers.ChoiceField(choices=RuleCode.choices, required=False)
        case = IdField(required=False)
        subject = IdField(required=False)

    @extend_schema(
        parameters=[Filters, OpenApiParameter("cursor", str), OpenApiParameter("limit", int)],
        responses=page_schema("FlagPage", FlagOutput),
        operation_id="flags_list",
    )
    def get(self, request):
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        with transaction.atomic():
            page = keyset_page(
                selectors.flag_list(user=request.user, **filters.validated_data), request, order=("-id",)
            )
            audit_record(
                ctx=AuditContext.from_request(request),
                action="flag.list",
                target_type="flag",
                subject_ids=[flag.subject_id for flag in page.rows]
                + ([filters.validated_data["subject"]] if "subject" in filters.validated_data else []),
                payload={"filters": filters.validated_data, "flag_ids": [flag.pk for flag in page.rows]},
            )
            # In the same transaction: whom they are routed to is read as the page was.
            selectors.flags_seen_by(user=request.user, flags=page.rows)
            results = FlagOutput(page.rows, many=True).data
        return Response({"results": results, "next": page.next_url})


def _detail(request, flag) -> dict:
    flag.visible_links, flag.viewings_not_shown = selectors.flag_viewings(user=request.user, flag=flag)
    flag.draft_application = (
        selectors.draft_application(flag) if flag.outcome == FlagOutcome.AUTHORISATION_REQUIRED else None
    )
    return FlagDetailOutput(flag).data


class FlagDetailApi(_FlagApi):
    @extend_schema(responses=FlagDetailOutput)
    def get(self, request, pk: int):
        with transaction.atomic():
            flag = selectors.flag_get(user=request.user, flag_id=pk)
            body = _detail(request, flag)
            audit_record(
                ctx=AuditContext.from_request(request),
                action="flag.read",
                target_type="flag",
                target_id=flag.pk,
                case_id=flag.case_id,
                subject_ids=[flag.subject_id],
            )
        return Response(body)


class FlagDecideApi(_FlagApi):
    class Input(serializers.Serializer):
        outcome = serializers.ChoiceField(choices=FlagOutcome.choices)
        reasoning = serializers.CharField(max_length=10000)

    @extend_schema(request=Input, responses=FlagDetailOutput)
    def post(self, request, pk: int):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        flag = selectors.flag_get(user=request.user, flag_id=pk)
        decision = services.flag_decide(ctx=AuditContext.from_request(request), flag=flag, **data.validated_data)
        return Response(_detail(request, selectors.flag_get(user=request.user, flag_id=decision.flag.pk)))
