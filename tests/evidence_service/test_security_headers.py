"""Security headers on every response, HSTS over TLS, and CSRF on the session pages."""

import re

import pytest
from django.test import Client

from audit.models import AuditEvent


def directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in (p.strip() for p in policy.split(";")) if part}


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/api/v1/me/", "/api/v1/no-such-thing/", "/accounts/login/", "/api/v1/schema/", "/api/v1/docs/"],
)
def test_every_response_carries_the_security_headers(db, path):
    response = Client().get(path)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    policy = directives(response)
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'self'"
    assert "unsafe-eval" not in response["Content-Security-Policy"]


def test_no_page_but_the_api_docs_allows_anything_inline(db):
    for path in ["/healthz", "/api/v1/me/", "/accounts/login/"]:
        assert "unsafe-inline" not in Client().get(path)["Content-Security-Policy"], path
    # The docs page may inline styles (its template and Swagger UI do), never scripts.
    docs = directives(Client().get("/api/v1/docs/"))
    assert docs["style-src"] == "'self' 'unsafe-inline'" and docs["script-src"] == "'self'"


def test_the_api_docs_page_needs_no_inline_script_and_every_asset_it_loads_is_served(db):
    client = Client()
    page = client.get("/api/v1/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    # Every <script> has a src (nothing inline for script-src 'self' to block) on this origin.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all('src="/' in attributes and not body.strip() for attributes, body in scripts)
    assets = re.findall(r'(?:src|href)="(/[^"]*)"', html)
    assert any("swagger-ui-bundle.js" in asset for asset in assets)
    for asset in assets:
        response = client.get(asset.replace("&amp;", "&"))
        assert response.status_code == 200, asset
    start_up = client.get("/api/v1/docs/?script=")
    assert start_up["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in start_up.content.decode() and "/api/v1/schema/" in start_up.content.decode()


def test_hsts_is_sent_over_https_when_configured(db, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    client = Client()
    assert client.get("/healthz", secure=True)["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in client.get("/healthz")  # never over plain HTTP


def test_hsts_is_off_by_default(db, settings):
    assert settings.SECURE_HSTS_SECONDS == 0
    assert "Strict-Transport-Security" not in Client().get("/healthz", secure=True)


def test_the_session_login_form_refuses_a_post_without_the_csrf_token_and_audits_it(alice):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "alice", "password": "correct-horse-battery"})
    assert response.status_code == 403
    assert "CSRF" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert not AuditEvent.objects.filter(action__startswith="auth.").exists()
    event = AuditEvent.objects.get(action="request.denied")
    assert (event.outcome, event.payload["code"], event.payload["path"]) == (
        "denied",
        "csrf_failed",
        "/accounts/login/",
    )


def test_the_session_login_form_accepts_a_post_with_the_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "correct-horse-battery", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="auth.login", actor_username="alice").exists()
