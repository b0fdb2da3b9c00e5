"""A viewing's answer is written out by hand (``ViewingOutput.to_representation``) for
speed; it must say exactly what the declared fields say, which is what the OpenAPI schema
documents. Each case below is checked both ways: the answer as logged (flags in hand) and
as read back (from the database, as the list and detail endpoints read it)."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from cases.api.serializers import ViewingOutput
from cases.selectors import viewing_get
from tests.authorisations.conftest import walk  # noqa: F401 - the fixture, for request.getfixturevalue
from tests.cases.test_viewing_log import viewing_payload
from tests.factories import ConsentFactory


def log(client_for, user, case, profile, **overrides):
    return client_for(user).post("/api/v1/viewings/", viewing_payload(case, profile, **overrides), format="json")


def declared(viewing) -> dict:
    """What DRF builds from the declared fields."""
    output = ViewingOutput(viewing)
    return dict(serializers.Serializer.to_representation(output, viewing))


def both_ways(user, answer_id):
    viewing = viewing_get(user=user, viewing_id=answer_id)
    assert ViewingOutput(viewing).data == declared(viewing)
    return viewing


def test_a_plain_viewing_reads_the_same_both_ways(alice, north_case, jane_profile, client_for):
    response = log(client_for, alice, north_case, jane_profile)
    assert response.status_code == 201
    viewing = both_ways(alice, response.json()["id"])
    assert response.json() == declared(viewing)


def test_consent_external_authority_and_a_correction_read_the_same(alice, jane, north_case, jane_profile, client_for):
    ConsentFactory(subject=jane, scope=["instagram", "facebook"], expires_at=timezone.now() + timedelta(days=9))
    first = log(
        client_for, alice, north_case, jane_profile, external_authority={"kind": "police_request", "reference": "P/1"}
    )
    assert first.status_code == 201, first.json()
    payload = viewing_payload(north_case, jane_profile, reason="Wrong purpose", purpose="locate_person")
    second = client_for(alice).post(f"/api/v1/viewings/{first.json()['id']}/supersede/", payload, format="json")
    assert second.status_code == 201, second.json()
    original = both_ways(alice, first.json()["id"])
    correction = both_ways(alice, second.json()["id"])
    assert declared(original)["superseded_by"] == correction.pk and declared(correction)["consent"] is not None
    assert second.json() == declared(correction)


def test_a_cited_authorisation_and_raised_and_absorbed_flags_read_the_same(
    alice, north_case, jane_profile, client_for, request
):
    authorisation = request.getfixturevalue("walk")("in_force")
    cited = log(
        client_for, alice, north_case, jane_profile, authorisation=authorisation.pk, purpose="evidence_gathering"
    )
    assert cited.status_code == 201, cited.json()
    both_ways(alice, cited.json()["id"])
    answers = [
        log(client_for, alice, north_case, jane_profile, access_method="covert_identity").json() for _ in range(4)
    ]
    assert any(flag["absorbed"] for answer in answers for flag in answer["flags"])
    assert any(not flag["absorbed"] for answer in answers for flag in answer["flags"])
    for answer in answers:
        viewing = both_ways(alice, answer["id"])
        assert answer == declared(viewing)
