from django.urls import path

from cases.api import views

urlpatterns = [
    path("cases/", views.CaseListCreateApi.as_view(), name="case-list"),
    path("cases/<id:pk>/", views.CaseDetailApi.as_view(), name="case-detail"),
    path("cases/<id:pk>/close/", views.CaseCloseApi.as_view(), name="case-close"),
    path("cases/<id:pk>/subjects/", views.CaseSubjectCreateApi.as_view(), name="case-subject-create"),
    path("subjects/<id:pk>/", views.SubjectDetailApi.as_view(), name="subject-detail"),
    path("subjects/<id:pk>/profiles/", views.ProfileCreateApi.as_view(), name="profile-create"),
    path("subjects/<id:pk>/consents/", views.ConsentCreateApi.as_view(), name="consent-create"),
    path("consents/<id:pk>/confirm/", views.ConsentConfirmApi.as_view(), name="consent-confirm"),
    path("consents/<id:pk>/withdraw/", views.ConsentWithdrawApi.as_view(), name="consent-withdraw"),
    path("viewings/", views.ViewingListCreateApi.as_view(), name="viewing-list"),
    path("viewings/check/", views.ViewingCheckApi.as_view(), name="viewing-check"),
    path("viewings/<id:pk>/", views.ViewingDetailApi.as_view(), name="viewing-detail"),
    path("viewings/<id:pk>/supersede/", views.ViewingSupersedeApi.as_view(), name="viewing-supersede"),
]
