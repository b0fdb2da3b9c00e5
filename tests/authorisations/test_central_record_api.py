"""The central record of authorisations, compared field by field with what inspectors ask
for (DOMAIN.md, "Central record of authorisations")."""

import csv
import io
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings

from audit.models import AuditEvent
from authorisations.services import (
    Cancellation,
    authorisation_cancel,
    authorisation_record_judicial_approval,
    authorisation_renew,
    authorisation_review,
)
from tests.authorisations.conftest import CANCELLATION, as_user, clock

URL = "/api/v1/authorisations/central-record/"
LONDON = ZoneInfo("Europe/London")
APPROVED = datetime(2026, 1, 10, 14, 0, tzinfo=LONDON)
EXPIRES = datetime(2026, 4, 10, 0, 0, tzinfo=LONDON)
RENEWED = datetime(2026, 7, 10, 0, 0, tzinfo=LONDON)
CANCELLED = datetime(2026, 5, 1, 12, 0, tzinfo=LONDON)

#: DOMAIN.md's list, verbatim, and where each item is in the central record: JSON paths
#: (dotted) and CSV columns.
DOMAIN_FIELDS = {
    "type": (["type"], ["type"]),
    "date granted": (["date_granted"], ["date_granted"]),
    "authorising officer's name and grade": (
        ["authorising_officer.name", "authorising_officer.grade"],
        ["authorising_officer_name", "authorising_officer_grade"],
    ),
    "unique reference number (URN)": (["urn"], ["urn"]),
    "title and brief description, with subjects' names": (
        ["title", "description", "subjects"],
        ["title", "description", "subjects"],
    ),
    "whether urgency was used and why": (["urgency_used", "urgency_reason"], ["urgency_used", "urgency_reason"]),
    "reviews (dates, results)": (["reviews.reviewed_at", "reviews.outcome", "reviews.findings"], ["reviews"]),
    "renewals (when, by whom)": (["renewals.renewed_at", "renewals.renewed_by"], ["renewals"]),
    "whether confidential information is likely": (
        ["confidential_information_likely"],
        ["confidential_information_likely"],
    ),
    "whether the authorising officer was directly involved": (
        ["officer_directly_involved"],
        ["officer_directly_involved"],
    ),
    "cancellation date": (["cancelled_at"], ["cancelled_at"]),
    "for English and Welsh councils the magistrate's approval (court, date and time, decision)": (
        ["magistrate_approval.court", "magistrate_approval.decided_at", "magistrate_approval.decision"],
        ["magistrate_court", "magistrate_decided_at", "magistrate_decision"],
    ),
}
DOMAIN_MD = Path(__file__).resolve().parents[3] / "shared" / "context" / "DOMAIN.md"


def domain_md_fields() -> list[str]:
    text = " ".join(DOMAIN_MD.read_text().split())
    section = text[text.index("## Central record of authorisations") :]
    listed = re.search(r"Fields: (.*?)\. Refused applications are recorded too", section).group(1)
    return [item.strip() for item in listed.split(";")]


@pytest.mark.skipif(not DOMAIN_MD.exists(), reason="DOMAIN.md is kept beside the repository, not in it")
def test_the_list_of_fields_here_is_domain_mds():
    assert list(DOMAIN_FIELDS) == domain_md_fields()


def dig(entry, path):
    head, _, rest = path.partition(".")
    value = entry[head]
    if not rest:
        return value
    if isinstance(value, list):
        return [dig(item, rest) for item in value]
    return dig(value, rest)


@pytest.fixture
def record(walk, olivia, sam):
    """A DS authorisation reviewed, renewed (approved by the magistrate) and cancelled;
    a refused application; a draft (not in the record)."""
    olivia.first_name, olivia.last_name = "Olivia", "Officer"
    olivia.save()
    with clock(APPROVED):
        ds = walk("in_force", type="directed_surveillance")
    with clock(APPROVED + timedelta(days=28)):
        authorisation_review(ctx=as_user(sam), authorisation=ds, findings="Still needed.", outcome="continue")
    with clock(EXPIRES - timedelta(days=7)):
        renewal = authorisation_renew(ctx=as_user(sam), authorisation=ds, officer_grade="SRO", statement="More time.")
        authorisation_record_judicial_approval(
            ctx=as_user(sam),
            authorisation=ds,
            court="Leeds Magistrates' Court",
            justice="A. Jones JP",
            decided_at=EXPIRES - timedelta(days=7),
            outcome="approved",
        )
    with clock(CANCELLED):
        authorisation_cancel(
            ctx=as_user(olivia),
            authorisation=ds,
            cancellation=Cancellation(staff_told_to_stop_at=CANCELLED - timedelta(hours=1), **CANCELLATION),
        )
    with clock(APPROVED + timedelta(days=1)):
        refused = walk("refused")
        walk("draft")
    return {"ds": ds, "refused": refused, "renewal": renewal}


def test_every_field_inspectors_ask_for_is_in_the_json_and_the_csv(record, audrey, client_for):
    client = client_for(audrey)
    entries = client.get(URL).json()["results"]
    assert [e["urn"] for e in entries] == [record["ds"].urn, record["refused"].urn]  # no draft
    ds_entry = entries[0]
    rows = list(csv.DictReader(io.StringIO(b"".join(client.get(URL, {"format": "csv"}).streaming_content).decode())))
    ds_row = rows[0]
    for item, (json_paths, csv_columns) in DOMAIN_FIELDS.items():
        for path in json_paths:
            value = dig(ds_entry, path)
            assert value not in (None, "", []), f"{item}: {path} is empty"
        for column in csv_columns:
            assert ds_row[column] not in ("",), f"{item}: CSV column {column} is empty"


def test_the_central_record_holds_the_facts_of_the_lifecycle(record, audrey, client_for):
    entry = client_for(audrey).get(URL).json()["results"][0]
    assert entry["type"] == "directed_surveillance"
    assert entry["subjects"] == ["Jane Doe"]
    assert entry["authorising_officer"] == {"name": "Olivia Officer", "grade": "Head of Service", "username": "olivia"}
    assert entry["urgency_used"] is False and "s.43(1A)" in entry["urgency_reason"]
    assert entry["officer_directly_involved"] is False
    assert entry["magistrate_approval"]["court"] == "Leeds Magistrates' Court"
    assert entry["magistrate_approval"]["decision"] == "approved"
    assert datetime.fromisoformat(entry["magistrate_approval"]["decided_at"]) == APPROVED
    assert [r["outcome"] for r in entry["reviews"]] == ["continue"]
    [renewal] = entry["renewals"]
    assert (renewal["renewed_by"], renewal["status"]) == ("sam", "approved")
    assert datetime.fromisoformat(renewal["new_expires_at"]) == RENEWED
    assert renewal["magistrate_approval"]["justice"] == "A. Jones JP"
    assert datetime.fromisoformat(entry["cancelled_at"]) == CANCELLED
    # Five years from the end of the authorisation (its cancellation).
    assert datetime.fromisoformat(entry["ended_at"]) == CANCELLED
    assert datetime.fromisoformat(entry["retention_until"]) == datetime(2031, 5, 1, 12, 0, tzinfo=LONDON)


def test_refused_applications_are_in_the_record(record, sam, client_for):
    entry = client_for(sam).get(URL, {"status": "refused"}).json()["results"][0]
    assert (entry["urn"], entry["decision"], entry["date_granted"]) == (record["refused"].urn, "refused", None)
    assert entry["authorising_officer"]["name"] == "Olivia Officer"
    assert entry["magistrate_approval"] is None
    assert datetime.fromisoformat(entry["retention_until"]).year == datetime.fromisoformat(entry["decided_at"]).year + 5


@override_settings(AUTHORISATION_RETENTION_YEARS=3)
def test_the_retention_period_is_a_setting(record, olivia, client_for):
    entry = client_for(olivia).get(URL).json()["results"][0]
    assert datetime.fromisoformat(entry["retention_until"]) == datetime(2029, 5, 1, 12, 0, tzinfo=LONDON)


def test_the_csv_is_the_whole_record_and_its_export_is_audited(record, audrey, jane, client_for):
    response = client_for(audrey).get(URL, {"format": "csv", "limit": 1})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 3  # header and both applications, whatever the limit
    header, ds_row = rows[0], dict(zip(rows[0], rows[1], strict=True))
    assert header[0] == "urn"
    assert ds_row["subjects"] == "Jane Doe" and ds_row["magistrate_decision"] == "approved"
    assert "continue by sam" in ds_row["reviews"] and "by sam (SRO)" in ds_row["renewals"]
    event = AuditEvent.objects.get(action="central_record.export")
    assert (event.actor_username, event.payload["format"]) == ("audrey", "csv")
    assert event.payload["urns"] == [record["ds"].urn, record["refused"].urn]
    assert [link.subject_id for link in event.subject_links.all()] == [jane.pk]


def test_the_json_record_pages_by_cursor(record, audrey, client_for):
    client = client_for(audrey)
    first = client.get(URL, {"limit": 1}).json()
    second = client.get(first["next"]).json()
    assert [e["urn"] for e in first["results"] + second["results"]] == [record["ds"].urn, record["refused"].urn]
    assert second["next"] is None
    assert AuditEvent.objects.filter(action="central_record.export").count() == 2


@pytest.mark.parametrize("who", ["alice", "adam"])
def test_practitioners_and_admins_may_not_read_the_central_record(who, request, record, client_for):
    response = client_for(request.getfixturevalue(who)).get(URL)
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="central_record.export").exists()
    assert AuditEvent.objects.filter(action="request.denied", actor_username=who).exists()


def test_a_bad_filter_is_named(audrey, client_for):
    response = client_for(audrey).get(URL, {"type": "wiretap"})
    assert response.status_code == 400 and list(response.json()["fields"]) == ["type"]


def test_officers_are_named_by_full_name_with_their_grade_in_json_and_csv_usernames_kept(
    record, olivia, sam, alice, audrey, client_for
):
    olivia.full_name, olivia.grade = "Olivia Okafor-Smith", "Head of Legal Services"
    sam.full_name, sam.grade = "Samuel Senior", "Chief Executive"
    alice.full_name = "Alice Adebayo"
    for user in (olivia, sam, alice):
        user.save()
    client = client_for(audrey)
    entry = client.get(URL).json()["results"][0]
    assert (entry["applicant"], entry["applicant_username"]) == ("Alice Adebayo", "alice")
    # The grade given with the decision is the record's; the name is the account's full name.
    assert entry["authorising_officer"] == {
        "name": "Olivia Okafor-Smith",
        "grade": "Head of Service",
        "username": "olivia",
    }
    [review] = entry["reviews"]
    assert (review["reviewed_by"], review["reviewed_by_grade"], review["reviewed_by_username"]) == (
        "Samuel Senior",
        "Chief Executive",
        "sam",
    )
    [renewal] = entry["renewals"]
    assert (renewal["renewed_by"], renewal["renewed_by_username"], renewal["officer_grade"]) == (
        "Samuel Senior",
        "sam",
        "SRO",
    )
    assert (entry["cancelled_by"], entry["cancelled_by_grade"], entry["cancelled_by_username"]) == (
        "Olivia Okafor-Smith",
        "Head of Legal Services",
        "olivia",
    )

    rows = list(csv.DictReader(io.StringIO(b"".join(client.get(URL, {"format": "csv"}).streaming_content).decode())))
    row = rows[0]
    assert (row["applicant"], row["applicant_username"]) == ("Alice Adebayo", "alice")
    assert (row["authorising_officer_name"], row["authorising_officer_grade"]) == (
        "Olivia Okafor-Smith",
        "Head of Service",
    )
    assert row["authorising_officer_username"] == "olivia"
    assert "continue by Samuel Senior (Chief Executive)" in row["reviews"]
    assert "by Samuel Senior (SRO)" in row["renewals"]
    assert (row["cancelled_by"], row["cancelled_by_grade"], row["cancelled_by_username"]) == (
        "Olivia Okafor-Smith",
        "Head of Legal Services",
        "olivia",
    )
    assert "sam" not in (row["reviews"] + row["renewals"]).replace("Samuel", "")


def test_an_officer_without_a_full_name_is_named_by_username(record, audrey, client_for):
    entry = client_for(audrey).get(URL).json()["results"][0]
    assert entry["reviews"][0]["reviewed_by"] == "sam" and entry["reviews"][0]["reviewed_by_grade"] == ""
