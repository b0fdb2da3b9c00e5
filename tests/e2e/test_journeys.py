"""Each role's work, over HTTP only, against the stack as a council runs it (harness.py)."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import datetime

from tests.e2e.api import (
    Api,
    assert_links_to_site,
    days,
    eventually,
    iso,
    look,
    look_body,
    mails_to,
    now,
    open_case,
    raise_repeat_flag,
    verify_log,
    wait_for_mail,
)

DS_APPLICATION = {
    "type": "directed_surveillance",
    "platforms": ["instagram"],
    "purpose": "Find where the mother now lives so that court papers can be served",
    "information_sought": "Her town of residence",
    "necessity": "She has left her last address and relatives will not give a new one",
    "proportionality": "Public posts only, for the shortest time that will do",
    "alternatives_considered": "Letters to the last address; calls to relatives",
    "collateral_intrusion": "Friends' comments may be seen; nothing about them is recorded",
    "confidential_information_likely": False,
    "crime_purpose": True,
    "offence": "Child cruelty (Children and Young Persons Act 1933, s.1)",
    "offence_max_sentence_months": 120,
}
GRANT = {
    "officer_grade": "Head of Children's Services",
    "statement": "Necessary and proportionate because no other way is left.",
}


def test_a_practitioner_records_a_case_a_person_consent_and_looks_and_a_repeat_look_raises_a_flag(stack):
    alice = Api(stack, "alice")
    family = open_case(alice, "E2E-PRAC-1", person="Jane Practitioner")
    subject_id = family["subject"]["id"]
    consent = alice.post(
        f"/api/v1/subjects/{subject_id}/consents/",
        {
            "scope": ["facebook"],
            "granted_at": iso(now() - days(1)),
            "evidence": "Signed consent form, seen by the team",
            "given_by": "subject",
            "given_by_name": "Jane Practitioner",
            "method": "written",
        },
    )
    # Recorded by the practitioner who looks: it covers her looks once an officer confirms it.
    assert consent["status"] == "awaiting_confirmation"
    confirmed = Api(stack, "olivia").post(f"/api/v1/consents/{consent['id']}/confirm/", {}, status=200)
    assert confirmed["status"] == "confirmed"

    covered = look(alice, family, family["facebook"])
    assert covered["consent"]["id"] == consent["id"] and covered["flags"] == []
    first = look(alice, family, family["instagram"])
    assert first["consent"] is None and first["flags"] == []
    second = look(alice, family, family["instagram"])

    [flag] = [f for f in second["flags"] if f["rule"] == "REPEAT_VIEWING"]
    assert flag["counted_viewing_ids"] == [first["id"], second["id"]]
    assert set(flag["routed_to"]) == {"olivia", "oscar"}
    assert "look number 2" in flag["explanation"]

    listed = alice.get("/api/v1/viewings/", case=family["case"]["id"])["results"]
    assert {v["id"] for v in listed} == {covered["id"], first["id"], second["id"]}
    person = alice.get(f"/api/v1/subjects/{subject_id}/")
    assert person["display_name"] == "Jane Practitioner"
    mine = alice.get("/api/v1/flags/")["results"]
    assert flag["id"] in {f["id"] for f in mine}

    # Each officer the flag went to is emailed, with a link into the service and no name.
    for officer in ("olivia", "oscar"):
        mail = wait_for_mail(stack, officer, f"case {family['reference']}")
        assert_links_to_site(stack, mail)
        assert "Jane Practitioner" not in mail.subject + mail.body
        assert len(mails_to(stack, officer, f"case {family['reference']}")) == 1
    assert not mails_to(stack, "alice", f"case {family['reference']}")


def test_a_practitioner_corrects_a_look_with_a_new_viewing_that_supersedes_it(stack):
    alice = Api(stack, "alice")
    family = open_case(alice, "E2E-PRAC-2")
    original = look(alice, family, family["facebook"])

    correction = alice.post(
        f"/api/v1/viewings/{original['id']}/supersede/",
        {**look_body(family, family["facebook"]), "purpose": "risk_assessment", "reason": "Wrong purpose chosen"},
    )

    assert correction["supersedes"] == original["id"] and correction["supersede_reason"] == "Wrong purpose chosen"
    unchanged = alice.get(f"/api/v1/viewings/{original['id']}/")
    assert unchanged["purpose"] == "safeguarding_assessment" and unchanged["superseded_by"] == correction["id"]
    # Once only: a second correction of the same look is refused, and nothing is written.
    again = alice.http.post(
        f"/api/v1/viewings/{original['id']}/supersede/",
        json={**look_body(family, family["facebook"]), "reason": "Again"},
    )
    assert again.status_code == 409, again.text
    listed = alice.get("/api/v1/viewings/", case=family["case"]["id"])["results"]
    assert {v["id"] for v in listed} == {original["id"], correction["id"]}
    # The correction is one look: it does not make a second look at the person.
    assert correction["flags"] == []


def test_an_officer_decides_a_flag_and_an_authorisation_goes_from_application_to_cancellation(stack):
    alice, olivia, audrey = Api(stack, "alice"), Api(stack, "olivia"), Api(stack, "audrey")
    family = open_case(alice, "E2E-OFF-1", person="Mary Officer")
    flag, _looks = raise_repeat_flag(alice, family)

    # The flag, decided by an officer it went to; the practitioner is told.
    routed = olivia.get("/api/v1/flags/", status="open", case=family["case"]["id"])["results"]
    assert [f["id"] for f in routed] == [flag["id"]]
    decided = olivia.post(
        f"/api/v1/flags/{flag['id']}/decide/",
        {"outcome": "authorisation_required", "reasoning": "Two looks in a week: this needs an authorisation."},
        status=200,
    )
    assert decided["status"] == "decided" and decided["decided_by"] == "olivia"
    assert decided["draft_application"]["case"] == family["case"]["id"]
    wait_for_mail(stack, "alice", f"Flag {flag['id']} on case")
    refused = olivia.http.post(
        f"/api/v1/flags/{flag['id']}/decide/", json={"outcome": "stop_viewing", "reasoning": "x"}
    )
    assert refused.status_code == 409, refused.text

    # The application, submitted: the officers who may decide it are emailed.
    application = alice.post(
        "/api/v1/authorisations/",
        {**DS_APPLICATION, "case": family["case"]["id"], "subjects": [family["subject"]["id"]]},
    )
    urn, path = application["urn"], f"/api/v1/authorisations/{application['id']}"
    assert application["status"] == "draft" and urn.startswith("DS-")
    submitted = alice.post(f"{path}/submit/", status=200)
    assert submitted["status"] == "submitted"
    for officer in ("olivia", "oscar"):
        assert_links_to_site(stack, wait_for_mail(stack, officer, urn))
    assert not mails_to(stack, "alice", urn)

    # Granted: a RIPA authorisation waits for the magistrate; the applicant is told.
    granted = olivia.post(f"{path}/grant/", {**GRANT, "limits": "Public posts only", "review_interval_days": 14}, 200)
    assert granted["status"] == "awaiting_judicial_approval"
    assert_links_to_site(stack, _mail_about(stack, "alice", urn, "granted"))

    approved = olivia.post(
        f"{path}/judicial-approval/",
        {
            "court": "Leeds Magistrates' Court",
            "justice": "J. Smith JP",
            "decided_at": iso(now()),
            "outcome": "approved",
            "notes": "Approved as applied for.",
        },
    )
    assert approved["status"] == "in_force" and approved["in_force_now"] is True
    _mail_about(stack, "alice", urn, "magistrate")
    first_expiry = approved["expires_at"]

    reviewed = olivia.post(
        f"{path}/reviews/", {"findings": "Still needed: she has not been found.", "outcome": "continue"}
    )
    assert reviewed["status"] == "in_force" and len(reviewed["reviews"]) == 1

    renewed = olivia.post(f"{path}/renew/", {**GRANT})
    assert renewed["status"] == "in_force" and len(renewed["renewals"]) == 1
    approved_renewal = olivia.post(
        f"{path}/judicial-approval/",
        {
            "court": "Leeds Magistrates' Court",
            "justice": "J. Smith JP",
            "decided_at": iso(now()),
            "outcome": "approved",
        },
    )
    assert approved_renewal["expires_at"] > first_expiry

    cancelled = olivia.post(
        f"{path}/cancel/",
        {
            "reason": "She has been found.",
            "information_obtained": "Her town of residence.",
            "material_direction": "Keep the note on the case file; destroy the screenshots.",
            "staff_told_to_stop_at": iso(now()),
        },
        status=200,
    )
    assert cancelled["status"] == "cancelled" and cancelled["in_force_now"] is False
    _mail_about(stack, "alice", urn, "cancel")

    # The central record shows it, the officer by full name and grade.
    record = audrey.get("/api/v1/authorisations/central-record/")["results"]
    [row] = [r for r in record if r["urn"] == urn]
    assert "Olivia Okafor" in json.dumps(row) and GRANT["officer_grade"] in json.dumps(row)


def _mail_about(stack, username: str, urn: str, word: str):
    """The email to ``username`` about the authorisation whose subject says ``word``."""
    return eventually(
        lambda: [m for m in mails_to(stack, username, urn) if word in m.subject.lower()],
        f"an email to {username} about {urn} saying {word!r}",
        30,
        lambda: "\n".join(f"  {m.rcpt_tos} {m.subject!r}" for m in stack.smtp.mails()),
    )[0]


def test_the_sro_changes_the_detection_policy_and_the_new_version_is_in_force(stack):
    sam, olivia = Api(stack, "sam"), Api(stack, "olivia")
    before = sam.get("/api/v1/policy/")
    rules = json.loads(json.dumps(before["rules"]))
    rules["CLOSED_CASE"]["severity"] = "high"

    changed = sam.put("/api/v1/policy/", {"rules": rules, "note": "Looks on closed cases are serious."})

    assert changed["version"] == before["version"] + 1
    in_force = olivia.get("/api/v1/policy/")
    assert in_force["version"] == changed["version"] and in_force["rules"]["CLOSED_CASE"]["severity"] == "high"
    assert in_force["note"] == "Looks on closed cases are serious."
    assert olivia.http.put("/api/v1/policy/", json={"rules": rules, "note": "x"}).status_code == 403
    unknown = sam.http.put("/api/v1/policy/", json={"rules": {**rules, "NO_SUCH_RULE": {}}, "note": "x"})
    assert unknown.status_code == 400 and "NO_SUCH_RULE" in unknown.text
    # Put back as it was, for the rest of the suite (a new version, as every change is).
    restored = sam.put("/api/v1/policy/", {"rules": before["rules"], "note": "Back to the defaults."})
    assert restored["version"] == changed["version"] + 1


def test_an_auditor_queries_the_log_and_checks_it_with_the_offline_verifier(stack, tmp_path):
    alice, audrey = Api(stack, "alice"), Api(stack, "audrey")
    started = now()
    family = open_case(alice, "E2E-AUD-1", person="Ann Audited")
    viewing = look(alice, family, family["facebook"])
    subject_id = family["subject"]["id"]

    # Events by actor and period.
    until = now()
    events = audrey.get("/api/v1/audit/events/", actor="alice", since=iso(started), until=iso(until))
    actions = [e["action"] for e in events["results"]]
    assert {"case.create", "subject.create", "profile.create", "viewing.create"} <= set(actions)
    assert {e["actor"]["username"] for e in events["results"]} == {"alice"}
    assert all(started <= datetime.fromisoformat(e["occurred_at"]) <= until for e in events["results"])
    # A person's access history.
    history = audrey.get("/api/v1/audit/access-history/", subject=subject_id)
    assert [v["viewing"] for v in history["viewings"]] == [viewing["id"]]
    # CSV.
    response = audrey.http.get(
        "/api/v1/audit/events/", params={"actor": "alice", "format": "csv"}, headers={"Accept": "text/csv"}
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert str(viewing["id"]) in {r["target_id"] for r in rows if r["action"] == "viewing.create"}
    assert {r["actor_username"] for r in rows} == {"alice"}

    # A checkpoint that covers the viewing's event (beat sequences every 2 s).
    [created] = [
        e for e in events["results"] if e["action"] == "viewing.create" and e["target_id"] == str(viewing["id"])
    ]
    leaf_index = eventually(
        lambda: _leaf_index(audrey, viewing["id"]), "the viewing's event to be sequenced", 30, stack.logs
    )
    first = eventually(
        lambda: (c := audrey.get("/api/v1/audit/checkpoint/"))["tree_size"] > leaf_index and c,
        "a checkpoint covering it",
        30,
        stack.logs,
    )
    assert first["verifier_key"] == stack.verifier_key, "the service signs with a key other than the one it was given"
    old_note = tmp_path / "old.note"
    old_note.write_text(first["note"])
    checked = verify_log("note", "--vkey", stack.verifier_key, str(old_note), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr

    # Inclusion: the leaf, from the entries, is in the signed tree.
    entry = audrey.get("/api/v1/audit/entries/", start=leaf_index, end=leaf_index + 1)["entries"][0]
    leaf = json.loads(base64.b64decode(entry["leaf"]))
    assert leaf["sequence"] == created["sequence"] and leaf["action"] == "viewing.create"
    proof = audrey.get("/api/v1/audit/proof/inclusion/", index=leaf_index, tree_size=first["tree_size"])
    (tmp_path / "inclusion.json").write_text(json.dumps(proof))
    checked = verify_log(
        "inclusion", "--vkey", stack.verifier_key, "--note", str(old_note), "--index", str(leaf_index),
        "--leaf-b64", entry["leaf"], "--proof-json", str(tmp_path / "inclusion.json"), cwd=tmp_path,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr

    # Consistency: a later checkpoint extends the earlier one.
    look(alice, family, family["facebook"])
    second = eventually(
        lambda: (c := audrey.get("/api/v1/audit/checkpoint/"))["tree_size"] > first["tree_size"] and c,
        "a later checkpoint",
        30,
        stack.logs,
    )
    new_note = tmp_path / "new.note"
    new_note.write_text(second["note"])
    proof = audrey.get("/api/v1/audit/proof/consistency/", first=first["tree_size"], second=second["tree_size"])
    (tmp_path / "consistency.json").write_text(json.dumps(proof))
    checked = verify_log(
        "consistency", "--vkey", stack.verifier_key, "--old", str(old_note), "--new", str(new_note),
        "--proof-json", str(tmp_path / "consistency.json"), cwd=tmp_path,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    # A proof for another pair of trees does not pass.
    wrong = audrey.get("/api/v1/audit/proof/consistency/", first=first["tree_size"] - 1, second=second["tree_size"])
    (tmp_path / "wrong.json").write_text(json.dumps(wrong["proof"]))
    checked = verify_log(
        "consistency", "--vkey", stack.verifier_key, "--old", str(old_note), "--new", str(new_note),
        "--proof-json", str(tmp_path / "wrong.json"), cwd=tmp_path,
    )  # fmt: skip
    assert checked.returncode == 1

    # The whole log as a bundle, verified offline.
    bundle = audrey.get("/api/v1/audit/export/", start=0)
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    checked = verify_log("bundle", "--vkey", stack.verifier_key, str(tmp_path / "bundle.json"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr

    # And on the server, as the runtime role: the whole tree and the checkpoint given.
    done = stack.manage("verify_audit", "--checkpoint", str(new_note), check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _leaf_index(api: Api, viewing_id: int) -> int | None:
    events = api.get("/api/v1/audit/events/", action="viewing.create", target_type="viewing", target_id=viewing_id)[
        "results"
    ]
    [event] = events
    return event["leaf_index"]
