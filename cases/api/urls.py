from django.urls import path

from cases.api import views

urlpatterns = [
    path("cases/", views.CaseListCreateApi.as_view(), name="case-list"),
    path("cases/<int:pk>/", views.CaseDetailApi.as_view(), name="case-detail"),
    path("cases/<int:pk>/close/", views.CaseCloseApi.as_view(), name="case-close"),
    path("cases/<int:pk>/subjects/", views.CaseSubjectCreateApi.as_view(), name="case-subject-create"),
    path("subjects/<int:pk>/", views.SubjectDetailApi.as_view(), name="subject-detail"),
    path("subjects/<int:pk>/profiles/", views.ProfileCreateApi.as_view(), name="profile-create"),
    path("subjects/<int:pk>/consents/", views.ConsentCreateApi.as_view(), name="consent-create"),
    path("consents/<int:pk>/withdraw/", views.ConsentWithdrawApi.as_view(), name="consent-withdraw"),
    path("viewings/", views.ViewingListCreateApi.as_view(), name="viewing-list"),
    path("viewings/<int:pk>/", views.ViewingDetailApi.as_view(), name="viewing-detail"),
    path("viewings/<int:pk>/supersede/", views.ViewingSupersedeApi.as_view(), name="viewing-supersede"),
]
