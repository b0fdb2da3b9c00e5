"""The load benchmark's floor: a minimal DRF endpoint that only inserts a row comparable to a
viewing, with the same authentication (a token looked up in the database), the same JSON
parsing and rendering, and a plain serializer's validation, but no scope checks, detection,
audit event or Merkle leaf. ``bench/load.py`` compares logging a viewing with it.

Served at ``/bench/floor/viewings/`` only when ``BENCH_FLOOR_ENDPOINT=1``; the table is
made by ``bench/load.py`` (``CREATE_TABLE``), never by a migration.
"""

from __future__ import annotations

from django.db import connection
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

TABLE = "bench_floor_viewing"

CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY,
    case_id bigint NOT NULL,
    profile_id bigint NOT NULL,
    practitioner_id bigint NOT NULL,
    viewed_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    purpose varchar(30) NOT NULL,
    justification text NOT NULL,
    access_method varchar(30) NOT NULL,
    interaction varchar(30) NOT NULL,
    information_recorded text NOT NULL,
    third_party_information text NOT NULL
)
"""

INSERT = f"""
INSERT INTO {TABLE} (case_id, profile_id, practitioner_id, viewed_at, recorded_at, purpose, justification,
                     access_method, interaction, information_recorded, third_party_information)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
"""


class FloorViewingCreateApi(APIView):
    class Input(serializers.Serializer):
        case = serializers.IntegerField(min_value=1)
        profile = serializers.IntegerField(min_value=1)
        purpose = serializers.CharField(max_length=30)
        justification = serializers.CharField(max_length=10000)
        access_method = serializers.CharField(max_length=30)
        interaction = serializers.CharField(max_length=30)
        information_recorded = serializers.CharField(max_length=20000, allow_blank=True)
        third_party_information = serializers.CharField(max_length=20000, allow_blank=True)

    @extend_schema(exclude=True)
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        row = data.validated_data
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(
                INSERT,
                [
                    row["case"],
                    row["profile"],
                    request.user.pk,
                    now,
                    now,
                    row["purpose"],
                    row["justification"],
                    row["access_method"],
                    row["interaction"],
                    row["information_recorded"],
                    row["third_party_information"],
                ],
            )
            (row_id,) = cursor.fetchone()
        return Response({"id": row_id, "recorded_at": now}, status=201)
