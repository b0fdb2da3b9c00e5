import pytest
from django.test import override_settings
from rest_framework.test import APIClient


def test_health_reports_the_database(db, settings):
    settings.REDIS_URL = None
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "not_configured"}


def test_health_reports_redis_when_it_is_configured_but_unreachable(db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = APIClient().get("/healthz")
    assert response.status_code == 503
    assert response.json()["redis"] == "unavailable"


@pytest.mark.postgres
def test_health_reports_the_real_redis(db, settings):
    if not settings.REDIS_URL:
        pytest.fail("REDIS_URL must be set where PostgreSQL tests run (CI)")
    assert APIClient().get("/healthz").json()["redis"] == "ok"


def test_the_openapi_schema_documents_every_endpoint_and_the_error_shape(db):
    response = APIClient().get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in [
        "/api/v1/auth/token/",
        "/api/v1/auth/logout/",
        "/api/v1/me/",
        "/api/v1/teams/",
        "/api/v1/cases/",
        "/api/v1/cases/{id}/",
        "/api/v1/cases/{id}/close/",
        "/api/v1/cases/{id}/subjects/",
        "/api/v1/subjects/{id}/",
        "/api/v1/subjects/{id}/profiles/",
        "/api/v1/subjects/{id}/consents/",
        "/api/v1/consents/{id}/withdraw/",
        "/api/v1/viewings/",
        "/api/v1/viewings/{id}/",
        "/api/v1/viewings/{id}/supersede/",
        "/api/v1/audit/events/",
        "/api/v1/audit/access-history/",
    ]:
        assert path in paths, path
    assert set(schema["components"]["schemas"]["Error"]["required"]) >= {"code", "message", "fields", "request_id"}
    create = paths["/api/v1/viewings/"]["post"]["responses"]
    assert create["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")


def test_the_interactive_docs_are_served_without_any_outside_asset(db):
    response = APIClient().get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger" in html.lower() and "cdn." not in html


@override_settings(DEBUG=False)
def test_an_unknown_api_url_answers_404_in_the_error_shape(db):
    response = APIClient().get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_every_response_carries_a_request_id_the_caller_cannot_choose(db):
    first = APIClient().get("/healthz", HTTP_X_REQUEST_ID="trace-12345678")
    second = APIClient().get("/healthz")
    assert first["X-Request-ID"] != "trace-12345678" and len(first["X-Request-ID"]) == 32
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_responses_forbid_framing_and_sniffing(db):
    response = APIClient().get("/healthz")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_body_that_is_not_json_answers_400_in_the_error_shape(alice, client_for):
    response = client_for(alice).post("/api/v1/cases/", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_an_unsupported_media_type_answers_415(alice, client_for):
    response = client_for(alice).post("/api/v1/cases/", data="a=b", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
