"""Content negotiation: an unknown ``?format=`` is a client error naming the parameter."""

from __future__ import annotations

from django.http import Http404
from rest_framework.negotiation import DefaultContentNegotiation

from evidence_service.api.errors import InvalidInput


class ServiceContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except Http404:
            # DRF answers a format the view does not offer with 404, as if the resource
            # were missing; it is the parameter that is wrong.
            offered = ", ".join(dict.fromkeys(renderer.format for renderer in renderers))
            raise InvalidInput("Unknown format.", fields={"format": f"This endpoint answers in: {offered}."}) from None
