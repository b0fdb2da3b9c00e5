"""Dates and times given as input start in 1900 (found by the schema fuzzer: a consent
granted in the year 313 was stored and answered as ``0313-11-24T01:56:35-00:01:15``, London's
local mean time, which is no RFC 3339 date-time)."""

import re

import pytest

from cases.models import Consent, Viewing

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.mark.parametrize("moment", ["0313-11-24T01:57:50.79Z", "1846-12-31T23:59:59Z", "1899-12-31T23:59:59+00:00"])
def test_a_consent_granted_before_1900_is_refused_naming_the_field(alice, jane, client_for, moment):
    response = client_for(alice).post(
        f"/api/v1/subjects/{jane.pk}/consents/",
        {"scope": ["instagram"], "granted_at": moment, "evidence": "Form on file"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["fields"]["granted_at"] == ["Dates and times before 1900 are not accepted."]
    assert not Consent.objects.exists()


def test_a_consent_granted_in_1900_is_answered_as_an_rfc3339_date_time(alice, jane, client_for):
    response = client_for(alice).post(
        f"/api/v1/subjects/{jane.pk}/consents/",
        {
            "scope": ["instagram"],
            "granted_at": "1900-01-01T00:00:00Z",
            "evidence": "Form on file",
            "given_by": "subject",
            "given_by_name": "Jane Doe",
            "method": "written",
            "granted_at_reason": "Found in the archive of the old paper files",
        },
        format="json",
    )
    assert response.status_code == 201
    assert RFC3339.match(response.json()["granted_at"]), response.json()["granted_at"]


def test_a_viewing_before_1900_is_refused(alice, north_case, jane_profile, client_for):
    response = client_for(alice).post(
        "/api/v1/viewings/",
        {
            "case": north_case.pk,
            "profile": jane_profile.pk,
            "purpose": "locate_person",
            "justification": "To tell her about the hearing",
            "access_method": "council_overt_account",
            "interaction": "none",
            "information_recorded": "",
            "third_party_information": "",
            "viewed_at": "1800-06-01T12:00:00Z",
            "late_entry_reason": "Found in an old file",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "viewed_at" in response.json()["fields"]
    assert not Viewing.objects.exists()
