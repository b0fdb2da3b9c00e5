from django.urls import path

from audit.api import views

urlpatterns = [
    path("events/", views.AuditEventListApi.as_view(), name="audit-events"),
    path("access-history/", views.AccessHistoryApi.as_view(), name="audit-access-history"),
    path("checkpoint/", views.AuditCheckpointApi.as_view(), name="audit-checkpoint"),
    path("proof/inclusion/", views.InclusionProofApi.as_view(), name="audit-proof-inclusion"),
    path("proof/consistency/", views.ConsistencyProofApi.as_view(), name="audit-proof-consistency"),
    path("entries/", views.AuditEntriesApi.as_view(), name="audit-entries"),
    path("export/", views.AuditExportApi.as_view(), name="audit-export"),
]
