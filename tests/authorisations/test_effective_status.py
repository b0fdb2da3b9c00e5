"""An authorisation past its expiry reports ``expired`` everywhere the API shows or filters
by status, before the scheduled job has recorded the expiry (README, "Authorisations")."""

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from authorisations.models import Authorisation
from tests.authorisations.conftest import clock

URL = "/api/v1/authorisations/"
CENTRAL_RECORD = "/api/v1/authorisations/central-record/"
LONDON = ZoneInfo("Europe/London")
GRANTED = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)
EXPIRES = GRANTED + timedelta(days=1)
AFTER = EXPIRES + timedelta(hours=3)


@pytest.fixture
def lapsed(walk):
    """A non-RIPA authorisation granted for one day; the scheduled job has not run since."""
    with clock(GRANTED):
        return walk("in_force", expires_at=EXPIRES)


@pytest.fixture
def current(walk):
    """One granted at the same time for sixty days: still in force at ``AFTER``."""
    with clock(GRANTED):
        return walk("in_force", expires_at=GRANTED + timedelta(days=60))


def ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def csv_rows(response):
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_detail_reports_expired_once_the_expiry_has_passed(lapsed, alice, client_for):
    with clock(EXPIRES - timedelta(minutes=1)):
        before = client_for(alice).get(f"{URL}{lapsed.pk}/").json()
    assert (before["status"], before["in_force_now"]) == ("in_force", True)
    with clock(AFTER):
        response = client_for(alice).get(f"{URL}{lapsed.pk}/")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["in_force_now"]) == ("expired", False)
    # Reported, not recorded: recording the expiry is the scheduled job's (and audited).
    lapsed.refresh_from_db()
    assert lapsed.status == "in_force" and lapsed.expiry_recorded_at is None
    assert AuditEvent.objects.filter(action="authorisation.read", target_id=str(lapsed.pk)).count() == 2


def test_it_is_expired_from_the_second_of_its_expiry(lapsed, alice, client_for):
    with clock(EXPIRES):
        assert client_for(alice).get(f"{URL}{lapsed.pk}/").json()["status"] == "expired"


def test_the_detail_agrees_with_the_409_of_an_action_on_it(lapsed, alice, sam, client_for):
    with clock(AFTER):
        review = client_for(sam).post(
            f"{URL}{lapsed.pk}/reviews/", {"findings": "Still needed.", "outcome": "continue"}, format="json"
        )
        detail = client_for(alice).get(f"{URL}{lapsed.pk}/").json()
    assert review.status_code == 409
    assert review.json()["current_status"] == detail["status"] == "expired"


def test_the_list_filters_by_the_status_it_reports(lapsed, current, alice, client_for):
    with clock(AFTER):
        client = client_for(alice)
        expired = ids(client.get(URL, {"status": "expired"}))
        in_force = ids(client.get(URL, {"status": "in_force"}))
        everything = client.get(URL).json()["results"]
    assert expired == [lapsed.pk]
    assert in_force == [current.pk]
    assert {row["id"]: row["status"] for row in everything} == {lapsed.pk: "expired", current.pk: "in_force"}
    event = AuditEvent.objects.filter(action="authorisation.list").order_by("-id")[2]
    assert event.payload["filters"] == {"status": "expired"} and event.payload["authorisation_ids"] == [lapsed.pk]


def test_an_expiry_already_recorded_is_listed_once_as_expired(lapsed, current, alice, client_for):
    Authorisation.objects.filter(pk=lapsed.pk).update(status="expired", expiry_recorded_at=AFTER)
    with clock(AFTER):
        client = client_for(alice)
        assert ids(client.get(URL, {"status": "expired"})) == [lapsed.pk]
        assert ids(client.get(URL, {"status": "in_force"})) == [current.pk]


def test_the_status_filter_costs_no_query_per_row(walk, alice, client_for):
    def list_queries():
        with clock(AFTER):
            client = client_for(alice)
            with CaptureQueriesContext(connection) as queries:
                assert client.get(URL, {"status": "expired"}).status_code == 200
        return len(queries)

    with clock(GRANTED):
        walk("in_force", expires_at=EXPIRES)
    one = list_queries()
    with clock(GRANTED):
        for _ in range(3):
            walk("in_force", expires_at=EXPIRES)
    with clock(AFTER):
        assert len(ids(client_for(alice).get(URL, {"status": "expired"}))) == 4
    assert list_queries() == one


def test_the_central_record_reports_and_filters_the_effective_status(lapsed, current, audrey, client_for):
    with clock(AFTER):
        client = client_for(audrey)
        everything = client.get(CENTRAL_RECORD).json()["results"]
        expired = ids(client.get(CENTRAL_RECORD, {"status": "expired"}))
        in_force = ids(client.get(CENTRAL_RECORD, {"status": "in_force"}))
    assert {row["id"]: row["status"] for row in everything} == {lapsed.pk: "expired", current.pk: "in_force"}
    assert (expired, in_force) == ([lapsed.pk], [current.pk])
    event = AuditEvent.objects.filter(action="central_record.export").order_by("-id")[1]
    assert event.payload["urns"] == [lapsed.urn]


def test_the_central_record_csv_reports_and_filters_the_effective_status(lapsed, current, audrey, client_for):
    with clock(AFTER):
        client = client_for(audrey)
        everything = csv_rows(client.get(CENTRAL_RECORD, {"format": "csv"}))
        expired = csv_rows(client.get(CENTRAL_RECORD, {"format": "csv", "status": "expired"}))
        in_force = csv_rows(client.get(CENTRAL_RECORD, {"format": "csv", "status": "in_force"}))
    assert {row["urn"]: row["status"] for row in everything} == {lapsed.urn: "expired", current.urn: "in_force"}
    assert [row["urn"] for row in expired] == [lapsed.urn]
    assert [row["urn"] for row in in_force] == [current.urn]


def test_another_team_does_not_see_it_among_the_expired(lapsed, bob, client_for):
    with clock(AFTER):
        assert ids(client_for(bob).get(URL, {"status": "expired"})) == []


def test_a_viewing_citing_an_authorisation_past_its_expiry_shows_it_expired(
    alice, walk, client_for, north_case, jane_profile
):
    from django.utils import timezone

    authorisation = walk("in_force", expires_at=timezone.now() + timedelta(days=1))
    logged = client_for(alice).post(
        "/api/v1/viewings/",
        {
            "case": north_case.pk,
            "profile": jane_profile.pk,
            "purpose": "locate_person",
            "justification": "Under the authorisation",
            "access_method": "council_overt_account",
            "interaction": "none",
            "information_recorded": "",
            "third_party_information": "",
            "authorisation": authorisation.pk,
        },
        format="json",
    )
    assert logged.status_code == 201, logged.content
    assert logged.json()["authorisation"]["status"] == "in_force"
    with clock(timezone.now() + timedelta(days=2)):
        answer = client_for(alice).get(f"/api/v1/viewings/{logged.json()['id']}/").json()
        listed = client_for(alice).get("/api/v1/viewings/", {"case": north_case.pk}).json()["results"]
    assert answer["authorisation"]["status"] == "expired"
    assert [row["authorisation"]["status"] for row in listed] == ["expired"]
    # The scheduled job has not recorded the expiry: the stored status is unchanged.
    assert Authorisation.objects.get(pk=authorisation.pk).status == "in_force"
