"""The auditor API: the event log and a person's access history, as JSON or CSV.
Every query is itself audited (``audit.query``)."""

from __future__ import annotations

import base64
import contextlib
import csv
import itertools
import json
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import keys, selectors
from audit import log as audit_log
from audit.leaves import personal_data
from audit.models import AuditCheckpoint
from audit.services import AuditContext, audit_record
from cases.api.serializers import CoveredByOutput
from cases.api.views import page_schema
from evidence_service.api.errors import InvalidInput, NotFound
from evidence_service.api.fields import IdField, PeriodFilters, WholeNumberField, moment_text
from evidence_service.api.pagination import keyset_page
from evidence_service.api.permissions import RolePermission
from evidence_service.workers import still_working


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


#: Rows written out together: one piece of the streamed answer each, rather than one a row.
CSV_ROWS_PER_CHUNK = 500


def csv_response(filename: str, header: list[str], rows: Iterable[list]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        chunk = [writer.writerow(header)]
        for row in rows:
            chunk.append(writer.writerow([_csv_safe(value) for value in row]))
            if len(chunk) >= CSV_ROWS_PER_CHUNK:
                yield "".join(chunk)
                chunk = []
        yield "".join(chunk)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


_FORMULA_STARTS = frozenset("=+-@\t\r")


def _csv_safe(value) -> str:
    """Neutralise spreadsheet formula injection in free text written by users."""
    kind = type(value)
    if kind is str:
        text = value
    elif kind is int:
        text = str(value)
    elif value is None:
        return ""
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True)
    else:
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text and text[0] in _FORMULA_STARTS else text


class _AuditApi(APIView):
    permission_classes = [RolePermission]
    read_roles = selectors.AUDIT_READERS
    write_roles: tuple = ()
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]

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
    leaf_index = serializers.SerializerMethodField(help_text="Index in the Merkle tree; null until sequenced.")

    def get_leaf_index(self, event) -> int | None:
        leaf = getattr(event, "leaf", None)
        return leaf.index if leaf else None

    def get_subjects(self, event) -> list[int]:
        return sorted(link.subject_id for link in event.subject_links.all())


# The list and the access history are built as plain dicts from ``values()`` rows, which
# is several times faster than these serializers over model instances; the serializers
# stay the documented shape (the OpenAPI schema), and tests/audit/test_audit_api.py
# checks that both give the same answer.


def _event_output(row: dict, subjects: list[int]) -> dict:
    """``AuditEventOutput`` of a ``selectors.EVENT_LIST_FIELDS`` row."""
    return {
        "sequence": row["id"],
        "occurred_at": moment_text(row["occurred_at"]),
        "actor": {"id": row["actor_id"], "username": row["actor_username"], "role": row["actor_role"]},
        "action": row["action"],
        "outcome": row["outcome"],
        "target_type": row["target_type"],
        "target_id": row["target_id"],
        "case": row["case_id"],
        "subjects": subjects,
        "ip_address": row["ip_address"],
        "user_agent": row["user_agent"],
        "request_id": row["request_id"],
        "payload": row["payload"],
        "leaf_index": row["leaf__index"],
    }


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


#: Rows of the CSV export read at a time, with one more query for the people they touched.
EXPORT_BATCH = 2000


def _event_export_rows(events) -> Iterator[list]:
    """Every event of ``events`` as a CSV row, in sequence order.

    Read in one transaction on PostgreSQL, so the export is of the log as it stood when it
    began, through a server-side cursor (a cursor outside a transaction would be held, and
    PostgreSQL would first copy the whole result aside); EXPORT_BATCH rows at a time as plain
    tuples, each batch's people in one query. After each batch the gunicorn worker reports
    that it is still working (``evidence_service.workers``), so that an export longer than
    the worker timeout is not cut off while it makes progress."""
    fields = [field for field in selectors.EVENT_LIST_FIELDS if field != "leaf__index"]
    case_at = fields.index("case_id") + 1
    # PostgreSQL only: SQLite's transactions here begin IMMEDIATE, taking the write lock for
    # as long as the export streams (and one statement is consistent there anyway).
    with transaction.atomic() if connection.vendor == "postgresql" else contextlib.nullcontext():
        rows = events.order_by("id").values_list(*fields).iterator(chunk_size=EXPORT_BATCH)
        while batch := list(itertools.islice(rows, EXPORT_BATCH)):
            subjects = selectors.subjects_of_events([event[0] for event in batch])
            for event in batch:
                yield [*event[:case_at], " ".join(map(str, subjects[event[0]])), *event[case_at:]]
            still_working()


def _asked_about(filters: dict) -> list[int]:
    """The people a query is filtered by, if any: ``subject``, or a ``target_id`` of
    ``target_type=subject`` (another way of asking about one person's record)."""
    people = [filters["subject"]] if filters.get("subject") is not None else []
    target = str(filters.get("target_id") or "")
    if filters.get("target_type") == "subject" and target.isascii() and target.isdigit() and int(target) < 2**63:
        people.append(int(target))
    return sorted(set(people))


class AuditEventListApi(_AuditApi):
    renderer_classes = [*_AuditApi.renderer_classes, CSVRenderer]

    class Filters(PeriodFilters):
        actor = serializers.CharField(required=False, max_length=150)
        action = serializers.CharField(required=False, max_length=64)
        target_type = serializers.CharField(required=False, max_length=40)
        target_id = serializers.CharField(required=False, max_length=64)
        case = IdField(required=False)
        subject = IdField(required=False)

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
        ctx = AuditContext.from_request(request)
        if self.wants_csv(request):
            with transaction.atomic():
                audit_record(
                    ctx=ctx,
                    action="audit.query",
                    target_type="audit_event",
                    # A query about a person is a look at their record: it is in their access history.
                    subject_ids=_asked_about(filters.validated_data),
                    payload={"filters": filters.validated_data, "format": "csv"},
                )
            rows = _event_export_rows(selectors.audit_events(**filters.validated_data))
            return csv_response("audit-events.csv", EVENT_CSV_HEADER, rows)
        with transaction.atomic():
            page = keyset_page(
                selectors.audit_events(**filters.validated_data).values(*selectors.EVENT_LIST_FIELDS),
                request,
                order=("id",),
                keys_first=selectors.narrow_by_actor_range(**filters.validated_data),
            )
            audit_record(
                ctx=ctx,
                action="audit.query",
                target_type="audit_event",
                subject_ids=_asked_about(filters.validated_data),
                payload={"filters": filters.validated_data, "format": "json", "returned": len(page.rows)},
            )
        subjects = selectors.subjects_of_events([row["id"] for row in page.rows])
        return Response(
            {"results": [_event_output(row, subjects[row["id"]]) for row in page.rows], "next": page.next_url}
        )


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
    covered_by = CoveredByOutput(help_text="What covered the look when it happened and why, or why nothing did.")


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
    renderer_classes = [*_AuditApi.renderer_classes, CSVRenderer]

    class Filters(serializers.Serializer):
        subject = IdField()
        covered = serializers.BooleanField(
            required=False,
            allow_null=True,
            default=None,
            help_text="false: only the looks nothing covered; true: only the covered ones.",
        )

    class Output(serializers.Serializer):
        subject = AccessHistorySubject()
        viewings = AccessHistoryViewing(many=True)
        events = AccessHistoryEvent(many=True, help_text="One page of the events, oldest first (see ``next``).")
        next = serializers.URLField(
            allow_null=True, help_text="The next page of events (the same person and viewings); null on the last."
        )

    @extend_schema(
        parameters=[
            Filters,
            OpenApiParameter("format", str, enum=["json", "csv"]),
            OpenApiParameter("cursor", str),
            OpenApiParameter("limit", int, description="Events per page (JSON only; the CSV has every one)."),
        ],
        responses={200: OpenApiResponse(Output, description="A person's access history (JSON, or CSV)")},
    )
    def get(self, request):
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        subject_id = filters.validated_data["subject"]
        csv_wanted = self.wants_csv(request)
        pages: list = []

        def one_page(events):
            # A long history answers page by page, each one indexed read, like the event list.
            pages.append(keyset_page(events, request, order=("id",)))
            return pages[0].rows

        with transaction.atomic():
            covered = filters.validated_data.get("covered")
            history = selectors.access_history(
                subject_id=subject_id, events_page=None if csv_wanted else one_page, covered=covered
            )
            audit_record(
                ctx=AuditContext.from_request(request),
                action="audit.query",
                target_type="subject",
                target_id=subject_id,
                subject_ids=[subject_id],
                payload={
                    "query": "access_history",
                    "format": "csv" if csv_wanted else "json",
                    "cursor": bool(request.query_params.get("cursor")),
                    "covered": covered,
                    "events_returned": len(history.events),
                },
            )
        if csv_wanted:
            return csv_response(f"access-history-subject-{subject_id}.csv", HISTORY_CSV_HEADER, _history_rows(history))
        return Response({**_history_output(history), "next": pages[0].next_url})


def _history_output(history: selectors.AccessHistory) -> dict:
    """``AccessHistoryApi.Output`` of the selector's rows."""
    subject = history.subject
    return {
        "subject": {
            "id": subject["id"],
            "display_name": subject["display_name"],
            "external_id": subject["external_id"],
        },
        "viewings": [
            {
                "viewing": v["id"],
                "viewed_at": moment_text(v["viewed_at"]),
                "recorded_at": moment_text(v["recorded_at"]),
                "practitioner": v["practitioner__username"],
                "case": v["case_id"],
                "case_reference": v["case__reference"],
                "platform": v["profile__platform"],
                "profile": v["profile__url"],
                "purpose": v["purpose"],
                "purpose_detail": v["purpose_detail"],
                "justification": v["justification"],
                "access_method": v["access_method"],
                "interaction": v["interaction"],
                "consent": v["consent_id"],
                "authorisation": v["authorisation_id"],
                "supersedes": v["supersedes_id"],
                "covered_by": v["covered_by"],
            }
            for v in history.viewings
        ],
        "events": [
            {
                "sequence": e["id"],
                "occurred_at": moment_text(e["occurred_at"]),
                "actor": e["actor_username"],
                "role": e["actor_role"],
                "action": e["action"],
                "outcome": e["outcome"],
                "target_type": e["target_type"],
                "target_id": e["target_id"],
                "case": e["case_id"],
            }
            for e in history.events
        ],
    }


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
    "covered",
    "covered_by",
]


def _history_rows(history: selectors.AccessHistory) -> list[list]:
    rows = [
        (
            viewing["viewed_at"],
            [
                "viewing",
                viewing["viewed_at"],
                viewing["practitioner__username"],
                viewing["practitioner__role"],
                "viewing",
                "success",
                viewing["case_id"],
                viewing["case__reference"],
                viewing["profile__platform"],
                viewing["profile__url"],
                viewing["purpose"],
                viewing["justification"],
                viewing["access_method"],
                viewing["interaction"],
                f"viewing:{viewing['id']}",
                viewing["id"],
                "yes" if viewing["covered_by"]["covered"] else "no",
                viewing["covered_by"]["reason"],
            ],
        )
        for viewing in history.viewings
    ]
    rows += [
        (
            event["occurred_at"],
            [
                "event",
                event["occurred_at"],
                event["actor_username"],
                event["actor_role"],
                event["action"],
                event["outcome"],
                event["case_id"],
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                f"{event['target_type']}:{event['target_id']}",
                event["id"],
                "",
                "",
            ],
        )
        for event in history.events
    ]
    return [row for _when, row in sorted(rows, key=lambda item: item[0])]


# --- The Merkle tree: checkpoints, proofs, entries, export -------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _audited_query(request, query: str, **payload) -> None:
    with transaction.atomic():
        audit_record(
            ctx=AuditContext.from_request(request),
            action="audit.export" if query == "export" else "audit.query",
            target_type="audit_log",
            payload={"query": query, **payload},
        )


def _out_of_range(field: str, exc: Exception) -> InvalidInput:
    return InvalidInput(str(exc), fields={field: str(exc)})


class CheckpointOutput(serializers.Serializer):
    origin = serializers.CharField()
    tree_size = serializers.IntegerField()
    root = serializers.CharField(help_text="base64 SHA-256 root hash")
    note = serializers.CharField(help_text="The signed checkpoint (C2SP tlog-checkpoint in a signed note).")
    signed_at = serializers.DateTimeField()
    verifier_key = serializers.CharField(
        help_text="The public key that signed this checkpoint: <name>+<key id hex>+<base64(0x01||key)>."
    )
    verifier_keys = serializers.ListField(
        child=serializers.CharField(),
        help_text="Every key the log trusts: the current signing key's first, then earlier keys' (after a rotation).",
    )


def _verifier_of(checkpoint: AuditCheckpoint) -> str:
    """The trusted key that signed ``checkpoint`` (the current one, unless it was signed
    before a rotation)."""
    key = keys.verifier_for(checkpoint.key_id) or keys.verifier()
    return key.encode()


class AuditCheckpointApi(_AuditApi):
    @extend_schema(responses=CheckpointOutput)
    def get(self, request):
        checkpoint = audit_log.latest_checkpoint()
        _audited_query(request, "checkpoint", tree_size=checkpoint.tree_size if checkpoint else None)
        if checkpoint is None:
            raise NotFound("checkpoint", "latest")
        return Response(
            CheckpointOutput(
                {
                    "origin": settings.AUDIT_LOG_ORIGIN,
                    "tree_size": checkpoint.tree_size,
                    "root": b64(bytes(checkpoint.root)),
                    "note": checkpoint.note,
                    "signed_at": checkpoint.signed_at,
                    "verifier_key": _verifier_of(checkpoint),
                    "verifier_keys": [key.encode() for key in keys.trusted_verifiers()],
                }
            ).data
        )


class InclusionProofApi(_AuditApi):
    class Filters(serializers.Serializer):
        index = WholeNumberField(min_value=0, max_value=2**62)
        tree_size = WholeNumberField(min_value=1, max_value=2**62)

    class Output(serializers.Serializer):
        index = serializers.IntegerField()
        tree_size = serializers.IntegerField()
        leaf_hash = serializers.CharField()
        proof = serializers.ListField(child=serializers.CharField())

    @extend_schema(parameters=[Filters], responses=Output)
    def get(self, request):
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        index, size = filters.validated_data["index"], filters.validated_data["tree_size"]
        try:
            leaf_hash, proof = audit_log.inclusion_proof(index, size)
        except audit_log.OutOfRange as exc:
            raise _out_of_range("index" if "index" in str(exc) else "tree_size", exc) from exc
        _audited_query(request, "inclusion_proof", index=index, tree_size=size)
        body = {"index": index, "tree_size": size, "leaf_hash": b64(leaf_hash), "proof": [b64(h) for h in proof]}
        return Response(self.Output(body).data)


class ConsistencyProofApi(_AuditApi):
    class Filters(serializers.Serializer):
        first = WholeNumberField(min_value=0, max_value=2**62)
        second = WholeNumberField(min_value=0, max_value=2**62)

    class Output(serializers.Serializer):
        first = serializers.IntegerField()
        second = serializers.IntegerField()
        proof = serializers.ListField(child=serializers.CharField())

    @extend_schema(parameters=[Filters], responses=Output)
    def get(self, request):
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        first, second = filters.validated_data["first"], filters.validated_data["second"]
        try:
            proof = audit_log.consistency_proof(first, second)
        except audit_log.OutOfRange as exc:
            raise _out_of_range("second" if first <= second else "first", exc) from exc
        _audited_query(request, "consistency_proof", first=first, second=second)
        return Response(self.Output({"first": first, "second": second, "proof": [b64(h) for h in proof]}).data)


MAX_ENTRIES = 1000
#: Entries per offline bundle: 10,000 take about 3 seconds and 7.5 MB to answer (measured on
#: the development machine), well inside a worker's timeout; 100,000 took 34 seconds and a
#: gigabyte of memory. A longer stretch of the log is exported as consecutive bundles.
MAX_EXPORT = 10_000


class EntryOutput(serializers.Serializer):
    index = serializers.IntegerField()
    leaf = serializers.CharField(help_text="base64 leaf bytes (canonical JSON; see the README)")
    leaf_hash = serializers.CharField(help_text="base64 SHA-256(0x00 || leaf) as stored when sequenced")


def _entry(entry: audit_log.Entry) -> dict:
    return {"index": entry.index, "leaf": b64(entry.leaf), "leaf_hash": b64(entry.leaf_hash)}


def _entry_with_opening(entry: audit_log.Entry) -> dict:
    """The entry plus the opening of its commitment, so an offline check covers the
    personal fields and payload too (see tools/verify_log.py)."""
    salt = bytes(entry.event.commitment_salt or b"")
    return {**_entry(entry), "opening": {"salt": b64(salt), "fields": personal_data(entry.event)}}


class OpeningOutput(serializers.Serializer):
    salt = serializers.CharField()
    fields = serializers.JSONField()


class ExportEntryOutput(EntryOutput):
    opening = OpeningOutput(help_text="Salt and personal fields committed to by the leaf.")


class _RangeFilters(serializers.Serializer):
    start = WholeNumberField(min_value=0, max_value=2**62, required=False, default=0)
    end = WholeNumberField(min_value=0, max_value=2**62, required=False)


def _range(request, *, default_end: int, limit: int) -> tuple[int, int]:
    filters = _RangeFilters(data=request.query_params)
    filters.is_valid(raise_exception=True)
    start = filters.validated_data["start"]
    if "end" not in filters.validated_data and start > default_end:
        raise InvalidInput("start is beyond the tree.", fields={"start": f"The tree has {default_end} leaves."})
    end = filters.validated_data.get("end", min(default_end, start + limit))
    if end > default_end:
        raise InvalidInput("end is beyond the tree.", fields={"end": f"The tree has {default_end} leaves."})
    if start > end:
        raise InvalidInput("start is after end.", fields={"start": "Must not be greater than end."})
    if end - start > limit:
        raise InvalidInput("Range too large.", fields={"end": f"At most {limit} entries per request."})
    return start, end


class AuditEntriesApi(_AuditApi):
    class Output(serializers.Serializer):
        start = serializers.IntegerField()
        end = serializers.IntegerField()
        tree_size = serializers.IntegerField()
        entries = EntryOutput(many=True)

    @extend_schema(parameters=[_RangeFilters], responses=Output)
    def get(self, request):
        size = audit_log.tree_size()
        start, end = _range(request, default_end=size, limit=MAX_ENTRIES)
        rows = audit_log.entries(start, end)
        _audited_query(request, "entries", start=start, end=end)
        body = {"start": start, "end": end, "tree_size": size, "entries": [_entry(e) for e in rows]}
        return Response(self.Output(body).data)


class AuditExportApi(_AuditApi):
    """A bundle that ``tools/verify_log.py bundle`` verifies offline with the verifier key."""

    class Output(serializers.Serializer):
        origin = serializers.CharField()
        verifier_key = serializers.CharField(help_text="The public key that signed the checkpoint.")
        verifier_keys = serializers.ListField(
            child=serializers.CharField(),
            help_text="Every key the log trusts (earlier checkpoints may be signed by one).",
        )
        checkpoint = serializers.CharField()
        tree_size = serializers.IntegerField()
        start = serializers.IntegerField()
        end = serializers.IntegerField()
        entries = ExportEntryOutput(many=True)
        left_hashes = serializers.ListField(child=serializers.CharField())
        right_hashes = serializers.ListField(child=serializers.CharField())
        checkpoints = serializers.ListField(child=serializers.CharField())

    @extend_schema(parameters=[_RangeFilters], responses=Output)
    def get(self, request):
        checkpoint = audit_log.latest_checkpoint()
        if checkpoint is None:
            raise NotFound("checkpoint", "latest")
        size = checkpoint.tree_size
        start, end = _range(request, default_end=size, limit=MAX_EXPORT)
        rows = audit_log.entries(start, end)
        earlier = AuditCheckpoint.objects.filter(tree_size__gte=start, tree_size__lte=end).order_by("tree_size")
        _audited_query(request, "export", start=start, end=end, tree_size=size)
        body = {
            "origin": settings.AUDIT_LOG_ORIGIN,
            "verifier_key": _verifier_of(checkpoint),
            "verifier_keys": [key.encode() for key in keys.trusted_verifiers()],
            "checkpoint": checkpoint.note,
            "tree_size": size,
            "start": start,
            "end": end,
            "entries": [_entry_with_opening(e) for e in rows],
            "left_hashes": [b64(h) for h in audit_log.perfect_subtree_hashes(0, start)],
            "right_hashes": [b64(h) for h in audit_log.perfect_subtree_hashes(end, size)],
            "checkpoints": [c.note for c in earlier.iterator()],
        }
        return Response(self.Output(body).data)
