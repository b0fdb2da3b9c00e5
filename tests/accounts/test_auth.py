from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from audit.models import AuditEvent


def login(username, password="correct-horse-battery", client=None):
    client = client or APIClient()
    return client.post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def test_login_answers_a_token_with_its_expiry_and_is_audited(alice, settings):
    response = login("alice")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "expires_at"}
    token = ApiToken.objects.get(user=alice)
    assert token.key_hash != body["token"]  # only the hash is stored
    expected = timezone.now() + settings.API_TOKEN_TTL
    assert abs((token.expires_at - expected).total_seconds()) < 5
    event = AuditEvent.objects.get(action="auth.login")
    assert (event.actor_username, event.actor_role, event.outcome) == ("alice", "practitioner", "success")
    assert event.ip_address == "127.0.0.1"


def test_a_wrong_password_answers_401_and_is_audited_once_as_login_failed(alice):
    response = login("alice", password="wrong")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    assert not ApiToken.objects.exists()
    events = list(AuditEvent.objects.all())
    assert [(e.action, e.outcome, e.payload["username"]) for e in events] == [("auth.login_failed", "denied", "alice")]


def test_an_unknown_username_gets_the_same_answer_as_a_wrong_password(db):
    response = login("nobody")
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid username or password."


def test_login_without_a_password_names_the_field(db):
    response = APIClient().post("/api/v1/auth/token/", {"username": "alice"}, format="json")
    assert response.status_code == 400
    assert "password" in response.json()["fields"]


def test_me_answers_username_name_address_role_and_teams(alice, client_for):
    alice.full_name, alice.email = "Alice Practitioner", "alice@example.org"
    alice.save()
    response = client_for(alice).get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json() == {
        "username": "alice",
        "full_name": "Alice Practitioner",
        "email": "alice@example.org",
        "grade": "",
        "role": "practitioner",
        "teams": [{"id": alice.teams.get().pk, "name": "North"}],
    }


def test_a_request_without_credentials_answers_401_and_is_audited(db):
    response = APIClient().get("/api/v1/me/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    body = response.json()
    assert body["code"] == "not_authenticated" and body["request_id"] == response["X-Request-ID"]
    event = AuditEvent.objects.get(action="request.denied")
    assert event.payload["status"] == 401 and event.actor_id is None


def test_an_expired_token_is_refused(alice, client_for):
    client = client_for(alice)
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/v1/me/").status_code == 401


def test_logout_revokes_the_token_at_once(alice, client_for):
    client = client_for(alice)
    response = client.post("/api/v1/auth/logout/")
    assert response.status_code == 204
    assert ApiToken.objects.get().revoked_at is not None
    assert AuditEvent.objects.filter(action="auth.logout", actor_username="alice").count() == 1
    assert client.get("/api/v1/me/").status_code == 401


def test_a_malformed_token_header_answers_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token a b")
    assert client.get("/api/v1/me/").status_code == 401


@pytest.mark.parametrize("ttl_hours", [1, 36])
def test_token_lifetime_follows_the_setting(alice, settings, ttl_hours):
    settings.API_TOKEN_TTL = timedelta(hours=ttl_hours)
    login("alice")
    token = ApiToken.objects.get()
    assert abs((token.expires_at - token.created_at) - timedelta(hours=ttl_hours)) < timedelta(seconds=5)


def test_teams_lists_only_the_callers_teams(alice, bob, client_for):
    response = client_for(alice).get("/api/v1/teams/")
    assert response.status_code == 200
    assert [team["name"] for team in response.json()] == ["North"]
    assert AuditEvent.objects.filter(action="team.list", actor_username="alice").exists()


def test_session_sign_in_is_audited_and_failures_too(alice, client):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    bad = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert bad.status_code == 200
    good = client.post("/accounts/login/", {"username": "alice", "password": "correct-horse-battery"})
    assert good.status_code == 302
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "payload__method"))
    assert actions == [("auth.login_failed", "session"), ("auth.login", "session")]
    assert client.get("/api/v1/me/").json()["username"] == "alice"


def test_session_requests_that_write_need_a_csrf_token(alice, north, client_for):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/api/v1/cases/", {"reference": "X", "title": "t", "team": north.pk}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["message"]
    # The same request with a token (no cookie) is not subject to CSRF, and succeeds.
    ok = client_for(alice).post("/api/v1/cases/", {"reference": "X", "title": "t", "team": north.pk}, format="json")
    assert ok.status_code == 201


def test_a_new_password_revokes_the_users_tokens(alice, client_for):
    from django.core.management import call_command

    client = client_for(alice)
    call_command("create_user", "alice", "--role", "practitioner", "--password", "a-brand-new-passphrase")
    assert client.get("/api/v1/me/").status_code == 401
    assert AuditEvent.objects.get(action="user.update").payload["tokens_revoked"] == 1


def test_browser_sessions_last_no_longer_than_tokens(settings):
    assert settings.API_TOKEN_TTL.total_seconds() == settings.SESSION_COOKIE_AGE
