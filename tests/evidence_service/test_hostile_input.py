"""Hostile and malformed requests answer a 4xx in the error shape, never a 500, and
leave nothing half-written."""

import base64
import json

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from cases.models import Case, Viewing

HUGE = "9" * 20
ENORMOUS = "9" * 70


@pytest.mark.parametrize(
    "url, field",
    [
        (f"/api/v1/viewings/?case={HUGE}", "case"),
        (f"/api/v1/viewings/?subject={HUGE}", "subject"),
        (f"/api/v1/viewings/?profile={ENORMOUS}", "profile"),
        ("/api/v1/viewings/?case=-1", "case"),
        ("/api/v1/viewings/?since=2026-13-45", "since"),
    ],
)
def test_out_of_range_filters_are_named(alice, client_for, url, field):
    response = client_for(alice).get(url)
    assert response.status_code == 400 and field in response.json()["fields"]


def test_out_of_range_ids_in_a_body_are_named(alice, client_for, north_case):
    response = client_for(alice).post(
        "/api/v1/viewings/", {"case": int(ENORMOUS), "profile": 1, "purpose": "other"}, format="json"
    )
    assert response.status_code == 400
    assert {"case"} <= set(response.json()["fields"])
    assert not Viewing.objects.exists()


def test_an_auditor_asking_for_a_huge_subject_is_told_which_field(audrey, client_for):
    response = client_for(audrey).get(f"/api/v1/audit/access-history/?subject={ENORMOUS}")
    assert response.status_code == 400 and "subject" in response.json()["fields"]


def test_a_huge_id_in_the_path_is_simply_not_found(alice, client_for, settings):
    settings.DEBUG = False
    client = client_for(alice)
    assert client.get(f"/api/v1/cases/{ENORMOUS}/").status_code == 404
    eighteen = client.get(f"/api/v1/cases/{'9' * 18}/")
    assert eighteen.status_code == 404 and eighteen.json()["code"] == "not_found"
    assert AuditEvent.objects.filter(action="request.denied", target_id="9" * 18).exists()


def test_nul_characters_are_refused_in_text_fields(alice, client_for, north_case, jane_profile):
    response = client_for(alice).post(
        "/api/v1/viewings/",
        {
            "case": north_case.pk,
            "profile": jane_profile.pk,
            "purpose": "risk_assessment",
            "justification": "bad\x00byte",
            "access_method": "logged_out_public",
            "interaction": "none",
            "information_recorded": "",
            "third_party_information": "",
        },
        format="json",
    )
    assert response.status_code == 400 and "justification" in response.json()["fields"]
    assert not Viewing.objects.exists()


def test_a_nul_in_a_login_name_is_refused_and_still_audited(alice, client):
    api = APIClient().post("/api/v1/auth/token/", {"username": "ali\x00ce", "password": "x"}, format="json")
    assert api.status_code == 400 and "username" in api.json()["fields"]
    page = client.post("/accounts/login/", {"username": "ali\x00ce", "password": "x"})
    assert page.status_code == 200
    failed = AuditEvent.objects.get(action="auth.login_failed")
    assert failed.payload["username"] == "ali\ufffdce"


def test_json_nested_too_deeply_is_a_parse_error(db):
    body = "[" * 50_000 + "]" * 50_000
    response = APIClient().post("/api/v1/auth/token/", data=body, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"


@pytest.mark.parametrize(
    "cursor",
    [
        base64.urlsafe_b64encode(json.dumps(["0001-01-01T00:00:00+14:00", 5]).encode()).decode(),
        "not-a-cursor",
        "",
    ],
)
def test_a_forged_cursor_is_refused(alice, client_for, north_case, cursor):
    response = client_for(alice).get("/api/v1/viewings/", {"cursor": cursor} if cursor else {"cursor": "x:y:z"})
    assert response.status_code == 400 and "cursor" in response.json()["fields"]


def test_a_cursor_from_another_list_is_refused(alice, client_for, north):
    from tests.factories import CaseFactory

    for n in range(3):
        CaseFactory(reference=f"C-{n}", team=north)
    client = client_for(alice)
    next_url = client.get("/api/v1/cases/?limit=1").json()["next"]
    cursor = next_url.split("cursor=")[1]
    response = client.get(f"/api/v1/viewings/?cursor={cursor}")
    assert response.status_code == 400 and "cursor" in response.json()["fields"]


@pytest.mark.parametrize("body", ['"just a string"', "[1, 2]", "null", "42"])
def test_a_body_that_is_not_an_object_is_refused(alice, client_for, body):
    response = client_for(alice).post("/api/v1/cases/", data=body, content_type="application/json")
    assert response.status_code == 400
    assert not Case.objects.exists()
