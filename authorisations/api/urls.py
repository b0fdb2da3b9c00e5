from django.urls import path

from authorisations.api import views

urlpatterns = [
    path("authorisations/", views.AuthorisationListCreateApi.as_view(), name="authorisation-list"),
    path("authorisations/central-record/", views.CentralRecordApi.as_view(), name="authorisation-central-record"),
    path("authorisations/<id:pk>/", views.AuthorisationDetailApi.as_view(), name="authorisation-detail"),
    path("authorisations/<id:pk>/submit/", views.AuthorisationSubmitApi.as_view(), name="authorisation-submit"),
    path("authorisations/<id:pk>/grant/", views.AuthorisationGrantApi.as_view(), name="authorisation-grant"),
    path("authorisations/<id:pk>/refuse/", views.AuthorisationRefuseApi.as_view(), name="authorisation-refuse"),
    path(
        "authorisations/<id:pk>/judicial-approval/",
        views.JudicialApprovalApi.as_view(),
        name="authorisation-judicial-approval",
    ),
    path("authorisations/<id:pk>/reviews/", views.AuthorisationReviewCreateApi.as_view(), name="authorisation-review"),
    path("authorisations/<id:pk>/renew/", views.AuthorisationRenewApi.as_view(), name="authorisation-renew"),
    path("authorisations/<id:pk>/cancel/", views.AuthorisationCancelApi.as_view(), name="authorisation-cancel"),
]
