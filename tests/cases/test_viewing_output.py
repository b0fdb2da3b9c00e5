"""A viewing's answer is written out by hand (``ViewingOutput.to_representation``) for
speed; it must say exactly what the declared fields say, which is what the OpenAPI schema
documents. Each case below is checked both ways: the answer as logged (flags in hand) and
as read back (from the database, as the list and detail endpoints read it)."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from cases.api.serializers import ViewingFlagOutput, ViewingOutput
from cases.models import Viewing
from cases.selectors import VIEWING_RELATED, viewing_get
from detection.models import FlagViewing
from tests.authorisations.conftest import walk  # noqa: F401 - the fixture, for request.getfixturevalue
from tests.cases.test_viewing_log import viewing_payload
from tests.factories import CaseSubjectFactory, ConsentFactory, ProfileFactory


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


def test_a_page_of_viewings_reads_its_flags_at_once_and_as_each_link_says(
    alice, olivia, sam, north_case, jane_profile, client_for, django_assert_num_queries
):
    """A list writes out its viewings' flags from two statements for the whole page; each
    entry must say what DRF's declared ViewingFlagOutput says of the link's own objects."""
    other = CaseSubjectFactory(case=north_case, subject__created_by=alice).subject
    other_profile = ProfileFactory(subject=other, platform="facebook", handle="o.p", url="https://facebook.com/o.p")
    logged = [
        log(client_for, alice, north_case, profile, access_method="covert_identity", information_recorded=note)
        for profile in (jane_profile, other_profile)
        for note in ("", "Photo of the street.", "", "")
    ]
    third = CaseSubjectFactory(case=north_case, subject__created_by=alice).subject
    ConsentFactory(subject=third, scope=["instagram"])
    logged.append(log(client_for, alice, north_case, ProfileFactory(subject=third)))
    assert all(response.status_code == 201 for response in logged)
    client = client_for(alice)
    correction = client.post(
        f"/api/v1/viewings/{logged[-1].json()['id']}/supersede/",
        viewing_payload(north_case, Viewing.objects.get(pk=logged[-1].json()["id"]).profile, reason="Wrong purpose"),
        format="json",
    )
    assert correction.status_code == 201, correction.json()
    logged.append(correction)
    listed = client.get(f"/api/v1/viewings/?case={north_case.pk}&limit=100").json()["results"]
    assert len(listed) == len(logged)
    for entry in listed:
        links = FlagViewing.objects.filter(viewing_id=entry["id"]).select_related("flag").order_by("id")
        assert entry["flags"] == [dict(ViewingFlagOutput(link).data) for link in links]
        assert entry == client.get(f"/api/v1/viewings/{entry['id']}/").json()
        assert entry == declared(Viewing.objects.get(pk=entry["id"]))
    assert any(len(entry["flags"]) > 1 for entry in listed)
    assert any(entry["consent"] for entry in listed) and any(entry["superseded_by"] for entry in listed)
    assert any(flag["routed_to"] for entry in listed for flag in entry["flags"])

    # However many viewings: their consents, their corrections, their flag links, and
    # whom those flags are routed to (no authorisation is cited here).
    viewings = Viewing.objects.select_related(*VIEWING_RELATED).order_by("id")
    every = list(viewings)
    for rows in (every, [every[0], every[-2], every[-1]]):
        rows = [Viewing.objects.select_related(*VIEWING_RELATED).get(pk=row.pk) for row in rows]
        with django_assert_num_queries(5):  # with the policy in force, once for the page (covered_by)
            written = ViewingOutput(rows, many=True).data
        assert [entry["flags"] for entry in written] == [
            next(listed_entry["flags"] for listed_entry in listed if listed_entry["id"] == row.pk) for row in rows
        ]
    unflagged = viewings.filter(flag_links__isnull=True)
    assert unflagged.exists()
    with django_assert_num_queries(5):  # the viewings, the policy, their consents and corrections, their (no) links
        assert all(entry["flags"] == [] for entry in ViewingOutput(unflagged, many=True).data)


def test_looks_citing_an_authorisation_are_checked_without_a_query_each(
    alice, north_case, jane_profile, client_for, request
):
    """Whether the cited authorisation covered each look is worked out from its people and
    profiles, read once for the page; each answer is what the declared fields say."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    authorisation = request.getfixturevalue("walk")("in_force")
    cited = [
        log(client_for, alice, north_case, jane_profile, authorisation=authorisation.pk, purpose="evidence_gathering")
        for _ in range(3)
    ]
    assert all(response.status_code == 201 for response in cited)
    ids = [response.json()["id"] for response in cited]
    counts = []
    for chosen in (ids[:1], ids):
        rows = list(Viewing.objects.select_related(*VIEWING_RELATED).filter(pk__in=chosen).order_by("id"))
        with CaptureQueriesContext(connection) as queries:
            written = ViewingOutput(rows, many=True).data
        counts.append(len(queries))
        for entry, row in zip(written, rows, strict=True):
            assert entry["authorisation_check"] is not None
            assert dict(entry) == declared(Viewing.objects.get(pk=row.pk))
    assert counts[0] == counts[1], counts
