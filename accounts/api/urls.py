from django.urls import path

from accounts.api import views

urlpatterns = [
    path("auth/token/", views.TokenCreateApi.as_view(), name="auth-token"),
    path("auth/logout/", views.LogoutApi.as_view(), name="auth-logout"),
    path("me/", views.MeApi.as_view(), name="me"),
    path("teams/", views.TeamListApi.as_view(), name="team-list"),
]
