from django.conf import settings
from django.urls import include, path, register_converter
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.views import AuditedLoginView
from evidence_service.api.fields import IdConverter
from evidence_service.api.views import email_link, healthz

register_converter(IdConverter, "id")

api_v1 = [
    path("", include("accounts.api.urls")),
    path("", include("authorisations.api.urls")),
    path("", include("cases.api.urls")),
    path("", include("detection.api.urls")),
    path("audit/", include("audit.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file, so the page needs no
    # inline script under the Content-Security-Policy.
    # GET and HEAD only: its template renderer has nothing to show for OPTIONS.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", http_method_names=["get", "head"]),
        name="docs",
    ),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/api/v1/docs/", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("accounts/login/", AuditedLoginView.as_view(), name="login"),
    path("api/v1/", include(api_v1)),
    # The links in emails (detection.notifications.site_link) lead to the resource.
    path("flags/<id:pk>/", email_link, {"resource": "flag-detail"}),
    path("authorisations/<id:pk>/", email_link, {"resource": "authorisation-detail"}),
    path("viewings/<id:pk>/", email_link, {"resource": "viewing-detail"}),
]

if settings.BENCH_FLOOR_ENDPOINT:
    from bench.floor import FloorViewingCreateApi

    urlpatterns.append(path("bench/floor/viewings/", FloorViewingCreateApi.as_view(), name="bench-floor"))

handler400 = "evidence_service.api.views.bad_request"
handler403 = "evidence_service.api.views.permission_denied"
handler404 = "evidence_service.api.views.not_found"
handler500 = "evidence_service.api.views.server_error"
