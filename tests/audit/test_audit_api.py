import csv
import io
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from audit import keys
from audit import log as audit_log
from audit.api.views import AccessHistoryApi, AuditEventOutput
from audit.models import AuditEvent
from cases.api.serializers import ViewingOutput
from cases.models import Viewing
from evidence_service.api.fields import moment_text


@pytest.fixture
def history(alice, bob, north_case, jane_profile, client_for):
    """Alice logs a viewing of Jane and reads Jane's record; Bob is refused Jane."""
    client = client_for(alice)
    client.post(
        "/api/v1/viewings/",
        {
            "case": north_case.pk,
            "profile": jane_profile.pk,
            "purpose": "locate_person",
            "justification": "Need to tell mother about the hearing on Monday",
            "access_method": "council_overt_account",
            "interaction": "none",
            "information_recorded": "Current town",
            "third_party_information": "",
        },
        format="json",
    )
    client.get(f"/api/v1/subjects/{jane_profile.subject_id}/")
    client_for(bob).get(f"/api/v1/subjects/{jane_profile.subject_id}/")
    return jane_profile.subject


def test_auditor_queries_events_by_actor_and_action(audrey, history, client_for):
    response = client_for(audrey).get("/api/v1/audit/events/", {"actor": "alice", "action": "viewing.create"})
    assert response.status_code == 200
    [event] = response.json()["results"]
    assert event["actor"] == {"id": event["actor"]["id"], "username": "alice", "role": "practitioner"}
    assert event["case"] is not None and event["subjects"] == [history.pk]
    assert event["payload"]["justification"] == "Need to tell mother about the hearing on Monday"
    assert event["request_id"] and event["ip_address"] == "127.0.0.1"


def test_events_filter_by_subject_target_and_time(audrey, history, client_for):
    client = client_for(audrey)
    by_subject = client.get("/api/v1/audit/events/", {"subject": history.pk}).json()["results"]
    # Bob's refused read of Jane's record is part of her history too.
    assert [(e["actor"]["username"], e["action"]) for e in by_subject] == [
        ("alice", "viewing.create"),
        ("alice", "flag.raise"),  # information recorded without consent
        ("alice", "subject.read"),
        ("bob", "request.denied"),
    ]
    by_target = client.get("/api/v1/audit/events/", {"target_type": "subject", "target_id": history.pk}).json()
    assert {e["action"] for e in by_target["results"]} == {"subject.read", "request.denied"}
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert client.get("/api/v1/audit/events/", {"since": later}).json()["results"] == []


def test_events_are_in_sequence_and_page_by_cursor(audrey, history, client_for):
    client = client_for(audrey)
    total = AuditEvent.objects.count()
    before = list(AuditEvent.objects.order_by("id").values_list("id", flat=True))
    seen, url = [], "/api/v1/audit/events/?limit=3"
    while url:
        page = client.get(url).json()
        seen += [e["sequence"] for e in page["results"]]
        url = page["next"]
    # Every event that existed, in order, each once (the queries' own events come after).
    assert seen[: len(before)] == before and len(before) == total


def test_an_actors_events_in_a_date_range_page_in_sequence_whatever_their_times(audrey, client_for):
    # Times out of step with the sequence, as when clocks or commits interleave: the range is
    # read first (keyset_page's keys_first), and the pages must still be exactly the matches in
    # sequence order.
    rng = random.Random(5)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for _ in range(80):
        AuditEvent.objects.create(
            occurred_at=start + timedelta(days=rng.randrange(60), seconds=rng.randrange(86400)),
            actor_username=rng.choice(["erin", "finn"]),
            action="case.read",
        )
    since, until = start + timedelta(days=10), start + timedelta(days=40)
    expected = list(
        AuditEvent.objects.filter(actor_username="erin", occurred_at__gte=since, occurred_at__lt=until)
        .order_by("id")
        .values_list("id", flat=True)
    )
    client = client_for(audrey)
    query = {"actor": "erin", "since": since.isoformat(), "until": until.isoformat(), "limit": 4}
    page = client.get("/api/v1/audit/events/", query).json()
    seen = [e["sequence"] for e in page["results"]]
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [e["sequence"] for e in page["results"]]
    assert len(expected) > 8 and seen == expected
    only_since = client.get("/api/v1/audit/events/", {"actor": "finn", "since": until.isoformat()}).json()
    assert [e["sequence"] for e in only_since["results"]] == list(
        AuditEvent.objects.filter(actor_username="finn", occurred_at__gte=until)
        .order_by("id")
        .values_list("id", flat=True)
    )


def test_every_auditor_query_is_itself_audited(audrey, history, client_for):
    client = client_for(audrey)
    client.get("/api/v1/audit/events/", {"actor": "alice"})
    query = AuditEvent.objects.filter(action="audit.query").latest("id")
    assert query.actor_username == "audrey" and query.payload["filters"] == {"actor": "alice"}


def test_events_as_csv(audrey, history, client_for):
    response = client_for(audrey).get("/api/v1/audit/events/", {"format": "csv", "action": "viewing.create"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["action"], row["actor_username"]) for row in rows] == [("viewing.create", "alice")]


def test_access_history_shows_every_view_and_every_read_of_a_person(audrey, history, client_for):
    response = client_for(audrey).get("/api/v1/audit/access-history/", {"subject": history.pk})
    assert response.status_code == 200
    body = response.json()
    assert body["subject"]["display_name"] == "Jane Doe"
    [viewing] = body["viewings"]
    assert (viewing["practitioner"], viewing["case_reference"], viewing["purpose"]) == ("alice", "N-1", "locate_person")
    assert viewing["justification"] == "Need to tell mother about the hearing on Monday"
    actions = [(e["actor"], e["action"]) for e in body["events"]]
    assert ("alice", "subject.read") in actions and ("alice", "viewing.create") in actions
    # Bob's refused attempt is a denied request against Jane's record.
    assert AuditEvent.objects.filter(actor_username="bob", action="request.denied", target_id=str(history.pk)).exists()
    # The auditor's own query is now part of Jane's history.
    assert AuditEvent.objects.touching_subject(history.pk).filter(actor_username="audrey").count() == 1


def test_access_history_as_csv_merges_views_and_reads_in_time_order(sam, history, client_for):
    response = client_for(sam).get("/api/v1/audit/access-history/", {"subject": history.pk, "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row["kind"] for row in rows} == {"viewing", "event"}
    assert [row["when"] for row in rows] == sorted(row["when"] for row in rows)
    viewing = next(row for row in rows if row["kind"] == "viewing")
    assert viewing["justification"] == "Need to tell mother about the hearing on Monday"


def test_csv_neutralises_spreadsheet_formulas(audrey, alice, north_case, jane_profile, client_for):
    client_for(alice).post(
        "/api/v1/viewings/",
        {
            "case": north_case.pk,
            "profile": jane_profile.pk,
            "purpose": "risk_assessment",
            "justification": '=HYPERLINK("http://example.invalid")',
            "access_method": "logged_out_public",
            "interaction": "none",
            "information_recorded": "",
            "third_party_information": "",
        },
        format="json",
    )
    response = client_for(audrey).get(
        "/api/v1/audit/access-history/", {"subject": jane_profile.subject_id, "format": "csv"}
    )
    text = b"".join(response.streaming_content).decode()
    assert "'=HYPERLINK" in text


def test_access_history_needs_a_subject(audrey, client_for):
    response = client_for(audrey).get("/api/v1/audit/access-history/")
    assert response.status_code == 400 and "subject" in response.json()["fields"]
    assert client_for(audrey).get("/api/v1/audit/access-history/?subject=999999").status_code == 404


@pytest.mark.parametrize("who", ["alice", "olivia", "adam"])
def test_only_auditors_and_the_sro_read_the_audit_log(who, request, client_for):
    client = client_for(request.getfixturevalue(who))
    assert client.get("/api/v1/audit/events/").status_code == 403
    assert client.get("/api/v1/audit/access-history/?subject=1").status_code == 403
    denied = AuditEvent.objects.filter(action="request.denied", actor_username=who)
    assert denied.count() == 2


def test_auditors_cannot_write_through_the_audit_api(audrey, client_for):
    assert client_for(audrey).post("/api/v1/audit/events/", {}, format="json").status_code == 403


def as_json(data):
    return json.loads(JSONRenderer().render(data))


def test_the_event_list_answers_exactly_what_its_documented_serializer_gives(
    audrey, history, client_for, settings, tmp_path
):
    settings.DATA_DIR = tmp_path
    settings.AUDIT_SIGNING_KEY_PATH = tmp_path / "audit-signing.key"
    keys.signer.cache_clear()
    audit_log.integrate(batch_size=3, max_batches=1)  # some events with a leaf index, some without
    expected = AuditEventOutput(
        AuditEvent.objects.select_related("leaf").prefetch_related("subject_links").order_by("id"), many=True
    ).data
    results = client_for(audrey).get("/api/v1/audit/events/?limit=1000").json()["results"]
    assert {e["leaf_index"] is None for e in results} == {True, False}
    assert any(len(e["subjects"]) == 1 for e in results) and any(e["subjects"] == [] for e in results)
    assert results[: len(expected)] == as_json(expected)
    keys.signer.cache_clear()


def test_the_access_history_answers_exactly_what_its_documented_serializer_gives(audrey, history, client_for):
    viewings = list(Viewing.objects.filter(subject=history).order_by("viewed_at", "id"))
    for viewing in viewings:  # what covered each look: as the viewing's own answer says it
        viewing.covered_by = ViewingOutput().get_covered_by(viewing)
    expected = AccessHistoryApi.Output(
        {
            "subject": history,
            "viewings": viewings,
            "events": AuditEvent.objects.touching_subject(history.pk).order_by("id"),
            "next": None,
        }
    ).data
    body = client_for(audrey).get("/api/v1/audit/access-history/", {"subject": history.pk}).json()
    assert body["viewings"] and len(body["events"]) >= 4
    assert body == as_json(expected) and body["next"] is None


def test_a_long_access_history_pages_its_events_and_the_csv_has_them_all(audrey, history, client_for):
    client = client_for(audrey)
    everything = list(AuditEvent.objects.touching_subject(history.pk).order_by("id").values_list("id", flat=True))
    assert len(everything) >= 4
    seen, url, pages = [], f"/api/v1/audit/access-history/?subject={history.pk}&limit=2", 0
    while url:
        body = client.get(url).json()
        pages += 1
        assert len(body["events"]) <= 2 and len(body["viewings"]) == 1  # the viewings on every page
        seen += [event["sequence"] for event in body["events"]]
        url = body["next"]
    # Each page's own query joins the history after it was read, so the pages hold at least
    # every event there was at the start, in order, once each.
    assert seen[: len(everything)] == everything and len(seen) == len(set(seen)) and pages >= 2
    assert client.get(f"/api/v1/audit/access-history/?subject={history.pk}&limit=0").status_code == 400
    assert client.get(f"/api/v1/audit/access-history/?subject={history.pk}&cursor=forged").status_code == 400
    response = client.get("/api/v1/audit/access-history/", {"subject": history.pk, "format": "csv", "limit": 1})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) >= len(everything) + 1  # every event and the viewing


def test_the_access_history_takes_a_fixed_number_of_queries(audrey, history, client_for, django_assert_max_num_queries):
    client = client_for(audrey)
    for _ in range(3):  # a longer history costs no more queries
        client.get(f"/api/v1/subjects/{history.pk}/")
    with django_assert_max_num_queries(10):
        assert client.get("/api/v1/audit/access-history/", {"subject": history.pk}).status_code == 200


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2025, 7, 1, 12, 0, 0, 5, tzinfo=UTC),  # British Summer Time
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2025, 3, 30, 0, 59, 59, 999999, tzinfo=UTC),  # the minute before the clocks change
        datetime(2025, 7, 1, 12, tzinfo=timezone.get_fixed_timezone(-300)),
        None,
    ],
)
def test_times_are_written_as_the_documented_serializer_writes_them(moment):
    assert moment_text(moment) == serializers.DateTimeField().to_representation(moment)
