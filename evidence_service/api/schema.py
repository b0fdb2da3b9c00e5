"""OpenAPI generation: every operation documents the shared error body for the error
statuses it can answer."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable error code.")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Per-field messages keyed by the field's name (dotted for nested fields).",
    )
    request_id = serializers.CharField(help_text="Correlates with the X-Request-ID header and the audit log.")
    current_status = serializers.CharField(required=False, help_text="For 409 on a state change: the current state.")


_ERROR_STATUSES = {
    "400": "Invalid input; `fields` names each field at fault.",
    "401": "Missing, invalid, expired or revoked credentials.",
    "403": "Your role may not take this action.",
    "404": "Not found, or outside your scope.",
    "409": "Conflicts with the current state.",
    "503": "A component (database, audit log) is unavailable; nothing was saved.",
}


class ServiceAutoSchema(AutoSchema):
    def get_serializer_name(self, serializer, direction):
        # Views keep their Input/Output/Filters serializers as nested classes; name the
        # component after the view too ("CaseListCreateApiInput") so names never collide.
        qualname = type(serializer).__qualname__
        return qualname.replace(".", "") if "." in qualname else super().get_serializer_name(serializer, direction)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in _ERROR_STATUSES.items():
            if code == "401" and not self.get_auth():
                continue
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = description
                responses[code] = response
        return responses
