from django.urls import path

from detection.api import views

urlpatterns = [
    path("policy/", views.PolicyApi.as_view(), name="policy"),
    path("flags/", views.FlagListApi.as_view(), name="flag-list"),
    path("flags/<id:pk>/", views.FlagDetailApi.as_view(), name="flag-detail"),
    path("flags/<id:pk>/decide/", views.FlagDecideApi.as_view(), name="flag-decide"),
]
