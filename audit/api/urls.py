from django.urls import path

from audit.api import views

urlpatterns = [
    path("events/", views.AuditEventListApi.as_view(), name="audit-events"),
    path("access-history/", views.AccessHistoryApi.as_view(), name="audit-access-history"),
]
