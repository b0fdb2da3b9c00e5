"""The auditor API: the event log and a person's access history, as JSON or CSV.
Every query is itself audited (``audit.query``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import selectors
from audit.models import AuditEvent
from audit.services import AuditContext, audit_record
from cases.api.views import page_schema
from evidence_service.api.pagination import keyset_page
from evidence_service.api.permissions import RolePermission


class CSVRenderer(BaseRenderer):
    """Selected with ``?format=csv``; the views stream the CSV body themselves."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data, cls=DjangoJSONEncoder).encode()


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(filename: str, header: list[str], rows: Iterable[list]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([_csv_safe(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _csv_safe(value) -> str:
    """Neutralise spreadsheet formula injection in free text written by users."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True)
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _AuditApi(APIView):
    permission_classes = [RolePermission]
    read_roles = selectors.AUDIT_READERS
    write_roles: tuple = ()
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]

    def wants_csv(self, request) -> bool:
        return getattr(request, "accepted_renderer", None) is not None and request.accepted_renderer.format == "csv"


class ActorOutput(serializers.Serializer):
    id = serializers.IntegerField(source="actor_id", allow_null=True)
    username = serializers.CharField(source="actor_username")
    role = serializers.CharField(source="actor_role")


class AuditEventOutput(serializers.Serializer):
    sequence = serializers.IntegerField(source="id")
    occurred_at = serializers.DateTimeField()
    actor = ActorOutput(source="*")
    action = serializers.CharField()
    outcome = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    case = serializers.IntegerField(source="case_id", allow_null=True)
    subjects = serializers.SerializerMethodField()
    ip_address = serializers.CharField(allow_null=True)
    user_agent = serializers.CharField()
    request_id = serializers.CharField()
    payload = serializers.JSONField()

    def get_subjects(self, event) -> list[int]:
        return sorted(link.subject_id for link in event.subject_links.all())


EVENT_CSV_HEADER = [
    "sequence",
    "occurred_at",
    "actor_id",
    "actor_username",
    "actor_role",
    "action",
    "outcome",
    "target_type",
    "target_id",
    "case",
    "subjects",
    "ip_address",
    "user_agent",
    "request_id",
    "payload",
]


def _event_row(event: AuditEvent) -> list:
    return [
        event.id,
        event.occurred_at,
        event.actor_id,
        event.actor_username,
        event.actor_role,
        event.action,
        event.outcome,
        event.target_type,
        event.target_id,
        event.case_id,
        " ".join(str(link.subject_id) for link in event.subject_links.all()),
        event.ip_address,
        event.user_agent,
        event.request_id,
        event.payload,
    ]


class AuditEventListApi(_AuditApi):
    class Filters(serializers.Serializer):
        actor = serializers.CharField(required=False, max_length=150)
        action = serializers.CharField(required=False, max_length=64)
        target_type = serializers.CharField(required=False, max_length=40)
        target_id = serializers.CharField(required=False, max_length=64)
        case = serializers.IntegerField(required=False)
        subject = serializers.IntegerField(required=False)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)

    @extend_schema(
        parameters=[
            Filters,
            OpenApiParameter("cursor", str),
            OpenApiParameter("limit", int),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses={
            200: OpenApiResponse(
                page_schema("AuditEventPage", AuditEventOutput), description="JSON page, or CSV of all matches"
            )
        },
    )
    def get(self, request):
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        events = selectors.audit_events(**filters.validated_data).prefetch_related("subject_links")
        ctx = AuditContext.from_request(request)
        if self.wants_csv(request):
            with transaction.atomic():
                audit_record(
                    ctx=ctx,
                    action="audit.query",
                    target_type="audit_event",
                    payload={"filters": filters.validated_data, "format": "csv"},
                )
            rows = (_event_row(event) for event in events.order_by("id").iterator(chunk_size=2000))
            return csv_response("audit-events.csv", EVENT_CSV_HEADER, rows)
        with transaction.atomic():
            page = keyset_page(events, request, order=("id",))
            audit_record(
                ctx=ctx,
                action="audit.query",
                target_type="audit_event",
                payload={"filters": filters.validated_data, "format": "json", "returned": len(page.rows)},
            )
        return Response({"results": AuditEventOutput(page.rows, many=True).data, "next": page.next_url})


class AccessHistoryViewing(serializers.Serializer):
    viewing = serializers.IntegerField(source="id")
    viewed_at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()
    practitioner = serializers.CharField(source="practitioner.username")
    case = serializers.IntegerField(source="case_id")
    case_reference = serializers.CharField(source="case.reference")
    platform = serializers.CharField(source="profile.platform")
    profile = serializers.CharField(source="profile.url")
    purpose = serializers.CharField()
    purpose_detail = serializers.CharField()
    justification = serializers.CharField()
    access_method = serializers.CharField()
    interaction = serializers.CharField()
    consent = serializers.IntegerField(source="consent_id", allow_null=True)
    authorisation = serializers.IntegerField(source="authorisation_id", allow_null=True)
    supersedes = serializers.IntegerField(source="supersedes_id", allow_null=True)


class AccessHistoryEvent(serializers.Serializer):
    sequence = serializers.IntegerField(source="id")
    occurred_at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_username")
    role = serializers.CharField(source="actor_role")
    action = serializers.CharField()
    outcome = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    case = serializers.IntegerField(source="case_id", allow_null=True)


class AccessHistorySubject(serializers.Serializer):
    id = serializers.IntegerField()
    display_name = serializers.CharField()
    external_id = serializers.CharField(allow_null=True)


class AccessHistoryApi(_AuditApi):
    class Filters(serializers.Serializer):
        subject = serializers.IntegerField()

    class Output(serializers.Serializer):
        subject = AccessHistorySubject()
        viewings = AccessHistoryViewing(many=True)
        events = AccessHistoryEvent(many=True)

    @extend_schema(
        parameters=[Filters, OpenApiParameter("format", str, enum=["json", "csv"])],
        responses={200: OpenApiResponse(Output, description="A person's access history (JSON, or CSV)")},
    )
    def get(self, request):
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        subject_id = filters.validated_data["subject"]
        with transaction.atomic():
            history = selectors.access_history(subject_id=subject_id)
            audit_record(
                ctx=AuditContext.from_request(request),
                action="audit.query",
                target_type="subject",
                target_id=subject_id,
                subject_ids=[subject_id],
                payload={"query": "access_history", "format": "csv" if self.wants_csv(request) else "json"},
            )
        if self.wants_csv(request):
            return csv_response(f"access-history-subject-{subject_id}.csv", HISTORY_CSV_HEADER, _history_rows(history))
        return Response(self.Output(history).data)


HISTORY_CSV_HEADER = [
    "kind",
    "when",
    "who",
    "role",
    "action",
    "outcome",
    "case",
    "case_reference",
    "platform",
    "profile",
    "purpose",
    "justification",
    "access_method",
    "interaction",
    "target",
    "reference",
]


def _history_rows(history: selectors.AccessHistory) -> list[list]:
    rows = [
        (
            viewing.viewed_at,
            [
                "viewing",
                viewing.viewed_at,
                viewing.practitioner.username,
                viewing.practitioner.role,
                "viewing",
                "success",
                viewing.case_id,
                viewing.case.reference,
                viewing.profile.platform,
                viewing.profile.url,
                viewing.purpose,
                viewing.justification,
                viewing.access_method,
                viewing.interaction,
                f"viewing:{viewing.pk}",
                viewing.pk,
            ],
        )
        for viewing in history.viewings
    ]
    rows += [
        (
            event.occurred_at,
            [
                "event",
                event.occurred_at,
                event.actor_username,
                event.actor_role,
                event.action,
                event.outcome,
                event.case_id,
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                f"{event.target_type}:{event.target_id}",
                event.id,
            ],
        )
        for event in history.events
    ]
    return [row for _when, row in sorted(rows, key=lambda item: item[0])]
