"""Passwords and API tokens never reach the logs (at DEBUG, SQL included) nor the audit log."""

import json
import logging
import secrets

import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.test import Client
from rest_framework.test import APIClient

from audit.models import AuditEvent
from tests.factories import UserFactory

LOGGERS = ["", "django", "django.request", "django.security", "django.db.backends", "accounts", "audit", "cases"]
LOGGERS += ["authorisations", "evidence_service", "celery", "rest_framework", "py.warnings"]


@pytest.fixture
def everything_logged(caplog):
    """Every record at DEBUG from Django's loggers and the project's, with each SQL
    statement Django runs logged too (as with DEBUG on)."""
    for name in LOGGERS + [name for name in logging.root.manager.loggerDict if name.split(".")[0] in LOGGERS]:
        caplog.set_level(logging.DEBUG, logger=name)
    connection.force_debug_cursor = True
    yield caplog
    connection.force_debug_cursor = False


def logged_text(caplog) -> str:
    parts = []
    for record in caplog.records:
        parts += [record.getMessage(), repr(record.args), str(record.exc_text or ""), repr(record.__dict__)]
    return "\n".join(parts)


def audit_text() -> str:
    return json.dumps([model_to_dict(event) for event in AuditEvent.objects.all()], default=str)


@pytest.fixture
def password(db):
    value = f"pw-{secrets.token_hex(12)}"
    UserFactory(username="alice", password=value)
    return value


def assert_secret_absent(secret, caplog):
    assert caplog.records, "nothing was captured: the check would prove nothing"
    assert secret not in logged_text(caplog)
    assert secret not in audit_text()


def test_the_token_api_logs_neither_the_password_nor_the_token(password, everything_logged):
    client = APIClient()
    wrong = f"wrong-{secrets.token_hex(12)}"
    assert (
        client.post("/api/v1/auth/token/", {"username": "alice", "password": wrong}, format="json").status_code == 401
    )
    response = client.post("/api/v1/auth/token/", {"username": "alice", "password": password}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/me/").status_code == 200
    assert client.post("/api/v1/auth/logout/").status_code == 204
    assert client.get("/api/v1/me/").status_code == 401  # a revoked token, refused and audited

    assert any(record.name == "django.db.backends" for record in everything_logged.records)
    assert AuditEvent.objects.filter(action__in=["auth.login_failed", "auth.login", "auth.logout"]).count() == 3
    for secret in (wrong, password, token):
        assert_secret_absent(secret, everything_logged)


def test_the_session_sign_in_logs_no_password(password, everything_logged):
    client = Client()
    wrong = f"wrong-{secrets.token_hex(12)}"
    assert client.post("/accounts/login/", {"username": "alice", "password": wrong}).status_code == 200
    assert client.post("/accounts/login/", {"username": "alice", "password": password}).status_code == 302

    assert AuditEvent.objects.filter(action__in=["auth.login_failed", "auth.login"]).count() == 2
    for secret in (wrong, password):
        assert_secret_absent(secret, everything_logged)
    assert session_key_absent_from_the_audit_log(client)


def session_key_absent_from_the_audit_log(client) -> bool:
    return client.cookies["sessionid"].value not in audit_text()


def test_a_throttled_sign_in_logs_no_password(password, everything_logged, settings):
    settings.LOGIN_FAILURES_PER_USER_AND_IP = 1
    client = APIClient()
    assert client.post("/api/v1/auth/token/", {"username": "alice", "password": "x-wrong"}, format="json").status_code
    response = client.post("/api/v1/auth/token/", {"username": "alice", "password": password}, format="json")
    assert response.status_code == 429
    assert_secret_absent(password, everything_logged)
