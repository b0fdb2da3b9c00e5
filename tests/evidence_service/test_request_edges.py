"""Hostile requests at the edges of the HTTP layer: lone surrogates, oversized bodies,
formats, missing slashes, hosts, cursors and limits. Each answers a 4xx in the error shape,
naming the field where there is one, and writes nothing but the refusal's audit event."""

import io
import json

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from cases.models import Case, CaseSubject, Consent, Profile, Viewing
from evidence_service.api.parsers import BodyTooLarge, SafeJSONParser
from tests.factories import CaseFactory

LONE = "\\ud800"  # as it appears in a JSON body: an escape that decodes to a lone surrogate


def viewing_body(case, profile, **changes) -> dict:
    return {
        "case": case.pk,
        "profile": profile.pk,
        "purpose": "risk_assessment",
        "justification": "Checking the address",
        "access_method": "logged_out_public",
        "interaction": "none",
        "information_recorded": "",
        "third_party_information": "",
        **changes,
    }


def post_raw(client, path: str, body: dict, replace: str = "SURROGATE") -> object:
    """``body`` as JSON with the placeholder replaced by a lone surrogate's escape."""
    text = json.dumps(body).replace(replace, LONE)
    return client.post(path, data=text, content_type="application/json")


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"purpose": "SURROGATE"}, "purpose"),
        ({"access_method": "SURROGATE"}, "access_method"),
        ({"external_authority": {"kind": "SURROGATE", "reference": "x"}}, "external_authority.kind"),
        ({"justification": "ok SURROGATE"}, "justification"),
        ({"SURROGATE": "an unknown key"}, "\\ud800"),
    ],
)
def test_a_lone_surrogate_anywhere_in_a_body_is_refused_naming_it(
    alice, client_for, north_case, jane_profile, settings, changes, field
):
    settings.DEBUG = False
    response = post_raw(client_for(alice), "/api/v1/viewings/", viewing_body(north_case, jane_profile, **changes))
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body["fields"]) == [field]
    assert "Surrogate characters are not allowed" in body["fields"][field][0]
    assert not Viewing.objects.exists()


def test_a_lone_surrogate_in_a_list_item_is_named_by_its_position(alice, client_for, jane, settings):
    settings.DEBUG = False
    body = {"scope": ["facebook", "SURROGATE"], "granted_at": "2026-11-01T10:00:00Z", "evidence": "Signed form"}
    response = post_raw(client_for(alice), f"/api/v1/subjects/{jane.pk}/consents/", body)
    assert response.status_code == 400 and list(response.json()["fields"]) == ["scope.1"]
    assert not Consent.objects.exists()


def test_a_surrogate_pair_is_a_character_like_any_other(alice, client_for, north_case, jane_profile):
    text = json.dumps(viewing_body(north_case, jane_profile, justification="Saw PAIR on her page")).replace(
        "PAIR", "\\ud83d\\ude00"
    )
    response = client_for(alice).post("/api/v1/viewings/", data=text, content_type="application/json")
    assert response.status_code == 201, response.content
    assert Viewing.objects.get().justification == "Saw \U0001f600 on her page"


def test_a_body_over_the_limit_is_refused_with_413_before_it_is_parsed(alice, client_for, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps({"reference": "C-1", "title": "x" * 20_000})
    response = client_for(alice).post("/api/v1/cases/", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large" and "10,000 bytes" in response.json()["message"]
    assert not Case.objects.exists()


def test_the_limit_holds_on_what_is_read_whatever_the_declared_length(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = json.dumps({"title": "x" * 5_000}).encode()
    with pytest.raises(BodyTooLarge):
        SafeJSONParser().parse(io.BytesIO(body), "application/json", {})
    assert SafeJSONParser().parse(io.BytesIO(body[:900] + b'"}'), "application/json", {})["title"]


def test_a_number_too_long_to_convert_is_a_plain_parse_error(db):
    body = '{"username": ' + "9" * 5000 + ', "password": "x"}'
    response = APIClient().post("/api/v1/auth/token/", data=body, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"
    assert "set_int_max_str_digits" not in response.json()["message"]


def test_an_unknown_format_is_a_400_naming_it_not_a_404(audrey, client_for):
    response = client_for(audrey).get("/api/v1/audit/events/?format=xml")
    assert response.status_code == 400 and response["Content-Type"].startswith("application/json")
    assert "csv" in response.json()["fields"]["format"][0]
    assert not AuditEvent.objects.filter(action="request.denied").exists()


@pytest.mark.parametrize(
    "user, url, status",
    [
        ("audrey", "/api/v1/audit/access-history/?format=csv", 400),
        ("alice", "/api/v1/audit/access-history/?format=csv&subject=1", 403),
        ("audrey", "/api/v1/audit/events/?format=csv&case=abc", 400),
    ],
)
def test_errors_asked_for_as_csv_are_json(request, client_for, user, url, status):
    response = client_for(request.getfixturevalue(user)).get(url)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"]


def test_only_the_lists_offer_csv(audrey, client_for):
    response = client_for(audrey).get("/api/v1/audit/checkpoint/?format=csv")
    assert response.status_code == 400 and "format" in response.json()["fields"]


def test_the_schema_answers_its_errors_as_json(client_for, alice):
    response = APIClient().get("/api/v1/schema/?format=xml")
    assert response.status_code == 400 and response["Content-Type"].startswith("application/json")


def test_options_on_the_docs_page_is_not_allowed(alice, client_for, settings):
    settings.DEBUG = False
    response = client_for(alice).options("/api/v1/docs/")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


def test_an_api_url_without_its_slash_is_not_redirected(alice, client_for, north_case, jane_profile, settings):
    settings.DEBUG = False
    client = client_for(alice)
    response = client.post("/api/v1/viewings", viewing_body(north_case, jane_profile), format="json")
    assert response.status_code == 404
    assert response.json()["message"] == "Not found. The URL ends with a slash: /api/v1/viewings/"
    assert not Viewing.objects.exists()
    assert client.get("/api/v1/nothing-here").json()["message"] == "Not found."


def test_a_page_url_without_its_slash_is_still_redirected(db, client):
    response = client.get("/accounts/login")
    assert response.status_code == 301 and response["Location"] == "/accounts/login/"


def test_a_host_not_allowed_answers_json(db, settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["service.example"]
    response = APIClient().get("/api/v1/me/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request" and response.json()["request_id"]


def test_health_takes_only_safe_methods(db, client):
    assert client.get("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_a_cursor_is_for_the_list_and_the_caller_it_was_made_for(alice, carol, client_for, north):
    for n in range(3):
        CaseFactory(reference=f"C-{n}", team=north)
    mine = client_for(alice)
    next_url = mine.get("/api/v1/cases/?limit=1").json()["next"]
    assert mine.get(next_url).status_code == 200
    cursor = next_url.split("cursor=")[1]
    other = client_for(carol).get(f"/api/v1/cases/?limit=1&cursor={cursor}")
    assert other.status_code == 400 and "cursor" in other.json()["fields"]
    elsewhere = mine.get(f"/api/v1/flags/?cursor={cursor}")
    assert elsewhere.status_code == 400 and "cursor" in elsewhere.json()["fields"]


@pytest.mark.parametrize("limit", ["+3", "5_0", "\u0661", " 7", "1e3", "0", "1001"])
def test_a_limit_is_plain_digits_in_range(alice, client_for, north_case, limit):
    response = client_for(alice).get("/api/v1/viewings/", {"limit": limit})
    assert response.status_code == 400 and "limit" in response.json()["fields"]


@pytest.mark.parametrize(
    "viewed_at, message",
    [
        ("2026-03-29T01:30:00", "does not exist in UK time"),
        ("2026-10-25T01:30:00", "happens twice in UK time"),
        ("2026-W44-1T00:00:00Z", "YYYY-MM-DDThh:mm:ss"),
        ("20261020T000000Z", "YYYY-MM-DDThh:mm:ss"),
        ("2026-02-30T10:00:00", "wrong format"),
    ],
)
def test_a_moment_must_be_one_time_in_rfc_3339_form(
    alice, client_for, north_case, jane_profile, viewed_at, message, settings
):
    settings.DEBUG = False
    body = viewing_body(north_case, jane_profile, viewed_at=viewed_at, late_entry_reason="Written up late")
    response = client_for(alice).post("/api/v1/viewings/", body, format="json")
    assert response.status_code == 400, response.content
    assert message in response.json()["fields"]["viewed_at"][0]
    assert not Viewing.objects.exists()


@pytest.mark.parametrize(
    "viewed_at, utc",
    [
        ("2026-10-25T01:30:00+01:00", "2026-10-25T00:30:00Z"),
        ("2026-10-25T01:30:00Z", "2026-10-25T01:30:00Z"),
        ("2026-07-01T12:00:00", "2026-07-01T11:00:00Z"),  # UK summer time
        ("2026-11-02 09:15", "2026-11-02T09:15:00Z"),
    ],
)
def test_a_moment_without_an_offset_is_uk_time(alice, client_for, north_case, jane_profile, viewed_at, utc):
    body = viewing_body(north_case, jane_profile, viewed_at=viewed_at, late_entry_reason="Written up late")
    response = client_for(alice).post("/api/v1/viewings/", body, format="json")
    assert response.status_code == 201, response.content
    assert Viewing.objects.get().viewed_at.isoformat().replace("+00:00", "Z") == utc


def test_refusals_here_write_nothing_else(alice, client_for, north_case, jane_profile):
    client = client_for(alice)
    before = (CaseSubject.objects.count(), Profile.objects.count(), AuditEvent.objects.count())
    response = post_raw(client, "/api/v1/viewings/", viewing_body(north_case, jane_profile, purpose="SURROGATE"))
    assert response.status_code == 400
    assert (CaseSubject.objects.count(), Profile.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize(
    "user, url",
    [
        ("alice", "/api/v1/viewings/?since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z"),
        ("audrey", "/api/v1/audit/events/?since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z"),
    ],
)
def test_a_period_that_ends_before_it_starts_is_named(request, client_for, user, url):
    response = client_for(request.getfixturevalue(user)).get(url)
    assert response.status_code == 400 and list(response.json()["fields"]) == ["until"]


def test_a_period_of_one_moment_is_empty_not_an_error(alice, client_for, north_case):
    url = "/api/v1/viewings/?since=2026-11-01T00:00:00Z&until=2026-11-01T00:00:00Z"
    assert client_for(alice).get(url).json()["results"] == []


def test_a_chunked_body_is_refused_not_read_as_empty(alice, client_for, settings):
    settings.DEBUG = False
    response = client_for(alice).generic(
        "POST", "/api/v1/cases/", b"", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert response.status_code == 411 and list(response.json()["fields"]) == ["Content-Length"]
    assert response["X-Frame-Options"] == "DENY" and "Content-Security-Policy" in response
    assert not Case.objects.exists()


def test_a_compressed_body_is_refused_naming_the_encoding(alice, client_for):
    response = client_for(alice).post(
        "/api/v1/cases/", data=b"\x1f\x8b\x08\x00", content_type="application/json", HTTP_CONTENT_ENCODING="gzip"
    )
    assert response.status_code == 415 and list(response.json()["fields"]) == ["Content-Encoding"]


def test_the_largest_id_is_looked_up_and_its_refusal_audited(alice, client_for, settings):
    settings.DEBUG = False
    largest = 2**63 - 1
    response = client_for(alice).get(f"/api/v1/cases/{largest}/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert AuditEvent.objects.filter(action="request.denied", target_id=str(largest)).exists()
    assert client_for(alice).get(f"/api/v1/cases/{largest + 1}/").status_code == 404


@pytest.mark.parametrize("value", ["\u0663", " 3", "+3", "3_0"])
def test_ids_and_indices_in_a_query_are_plain_digits(alice, audrey, client_for, value):
    assert client_for(alice).get("/api/v1/viewings/", {"case": value}).status_code == 400
    response = client_for(audrey).get("/api/v1/audit/proof/inclusion/", {"index": value, "tree_size": "5"})
    assert response.status_code == 400 and "index" in response.json()["fields"]


def test_a_session_request_without_its_csrf_token_is_refused_as_csrf_failed_and_audited_as_its_sender(alice, settings):
    settings.DEBUG = False
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/api/v1/cases/", {"reference": "C-1", "title": "t"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "csrf_failed"
    event = AuditEvent.objects.get(action="request.denied")
    assert event.actor_username == "alice" and event.payload["code"] == "csrf_failed"
    assert not Case.objects.exists()


@pytest.mark.parametrize("charset, encode", [("utf-16-le", "utf-16-le"), ("utf-7", "utf-7")])
def test_a_lone_surrogate_in_another_charset_is_refused_too(
    alice, client_for, north_case, jane_profile, settings, charset, encode
):
    settings.DEBUG = False
    text = json.dumps(viewing_body(north_case, jane_profile, purpose="PLACE")).replace('"PLACE"', '"\\ud800"')
    body = json.loads(text)
    encoded = json.dumps(body, ensure_ascii=False).encode(encode, "surrogatepass")
    response = client_for(alice).post(
        "/api/v1/viewings/", data=encoded, content_type=f"application/json; charset={charset}"
    )
    assert response.status_code == 400, response.content  # refused as it is decoded or walked
    assert response.json()["code"] in ("invalid", "parse_error")
    assert not Viewing.objects.exists()


@pytest.mark.parametrize("method", ["get", "head"])
def test_a_safe_request_with_transfer_encoding_is_served(alice, client_for, method):
    response = getattr(client_for(alice), method)("/api/v1/me/", HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 200


def test_lower_case_t_and_z_are_taken(alice, client_for, north_case, jane_profile):
    body = viewing_body(
        north_case, jane_profile, viewed_at="2026-11-02t09:15:00z", late_entry_reason="Logged late from my notes"
    )
    response = client_for(alice).post("/api/v1/viewings/", body, format="json")
    assert response.status_code == 201, response.content
    assert Viewing.objects.get().viewed_at.isoformat() == "2026-11-02T09:15:00+00:00"


def test_full_width_digits_are_not_a_date(alice, client_for, north_case, jane_profile):
    body = viewing_body(north_case, jane_profile, viewed_at="\uff12\uff10\uff12\uff16-11-02T09:15:00Z")
    response = client_for(alice).post("/api/v1/viewings/", body, format="json")
    assert response.status_code == 400 and "viewed_at" in response.json()["fields"]


@pytest.mark.parametrize("offset", ["+00:60", "+24:00"])
def test_an_offset_out_of_range_is_refused(alice, client_for, north_case, jane_profile, offset):
    body = viewing_body(
        north_case, jane_profile, viewed_at=f"2026-11-26T10:00:00{offset}", late_entry_reason="Written up late"
    )
    response = client_for(alice).post("/api/v1/viewings/", body, format="json")
    assert response.status_code == 400 and "viewed_at" in response.json()["fields"]
