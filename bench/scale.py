#!/usr/bin/env python3
"""Scale benchmark: the auditor's queries, the log's proofs and logging a viewing on a large
database.

    .venv/bin/python bench/scale.py [--events 10000000] [--viewings 1000000] [--tree N]
                                    [--samples 200] [--viewing-samples 200] [--batch-size 50000]
                                    [--skip-verify]
                                    [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

In a throwaway PostgreSQL database it bulk-loads (by SQL) EVENTS audit events from 200
actors over two years, each touching one of 20,000 people, and VIEWINGS viewings of those
people (each person's looks spread over the two years but all older than the detection
policy's 28-day window, so that a new look raises a flag in neither database and the
comparison below is of the same work on more data); sequences the events into the
Merkle tree with ``integrate_audit --bulk`` (all of them unless --tree says fewer); then
prints, with SAMPLES runs each, p50/p95/p99 of
  - an access history for one person (GET /api/v1/audit/access-history/?subject=),
  - an events query filtered by actor and a 30-day range (GET /api/v1/audit/events/),
  - an inclusion proof (GET /api/v1/audit/proof/inclusion/),
each through the API as an auditor (targets: under 50 ms p99; the proof under 10 ms);
then the cost of logging a viewing (POST /api/v1/viewings/ as a practitioner of the case's
team, VIEWING_SAMPLES runs) on this database and, in the same run, on a freshly migrated
database with the same people but no history (target: p50 within 1.25 times); then
verify_audit over the whole tree (events per second), and the PostgreSQL query plans of
the two audit queries.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.livedb import live_database, manage  # noqa: E402

LOAD = """
import time
from django.db import connection
from accounts.models import Team, User
from cases.models import Case
team = Team.objects.create(name="North")
alice = User.objects.create_user("alice", role="practitioner", password="correct-horse-battery")
alice.teams.add(team)
User.objects.create_user("audrey", role="auditor", password="correct-horse-battery")
case = Case.objects.create(reference="N-1", title="Scale", team=team, created_by=alice)
started = time.monotonic()
with connection.cursor() as c:
    c.execute(\"\"\"INSERT INTO cases_subject (display_name, created_at, created_by_id)
                 SELECT 'Person ' || g, now(), %s FROM generate_series(1, 20000) g\"\"\", [alice.pk])
    c.execute(\"\"\"INSERT INTO cases_casesubject (case_id, subject_id, relationship, linked_at, linked_by_id)
                 SELECT %s, id, 'service_user', now(), %s FROM cases_subject\"\"\", [case.pk, alice.pk])
    c.execute(\"\"\"INSERT INTO cases_profile (subject_id, platform, handle, url, created_at, created_by_id)
                 SELECT id, 'instagram', 'person.' || id, 'https://www.instagram.com/person.' || id || '/', now(), %s
                 FROM cases_subject\"\"\", [alice.pk])
    c.execute("SELECT min(id) FROM cases_subject")
    first_subject = c.fetchone()[0]
    c.execute("SELECT min(id) FROM cases_profile")
    first_profile = c.fetchone()[0]
    c.execute(\"\"\"INSERT INTO cases_viewing (case_id, profile_id, subject_id, practitioner_id, viewed_at, recorded_at,
                     purpose, purpose_detail, justification, access_method, interaction, information_recorded,
                     third_party_information, late_entry_reason, external_authority_kind,
                     external_authority_reference, supersede_reason)
                 SELECT %s, %s + g %% 20000, %s + g %% 20000, %s, now() - (29 + g %% 701) * interval '1 day', now(),
                        'risk_assessment', '', 'scale', 'logged_out_public', 'none', '', '', '', '', '', ''
                 FROM generate_series(1, {viewings}) g\"\"\", [case.pk, first_profile, first_subject, alice.pk])
    step = 1_000_000
    for offset in range(0, {events}, step):
        c.execute(\"\"\"INSERT INTO audit_auditevent (occurred_at, actor_id, actor_username, actor_role, action,
                         outcome,
                         target_type, target_id, case_id, ip_address, user_agent, request_id, payload,
                         commitment_salt)
                     SELECT now() - interval '730 days' + (g::float8 / {events}) * interval '730 days', 1000 + g %% 200,
                            'user' || (g %% 200), 'practitioner',
                            (ARRAY['case.read','viewing.create','subject.read','viewing.list'])[1 + g %% 4],
                            'success', 'subject', (%s + g %% 20000)::text, %s, '10.0.0.1', 'bench', md5(g::text),
                            jsonb_build_object('n', g), decode(md5(g::text), 'hex')
                     FROM generate_series(%s, %s) g\"\"\",
                  [first_subject, case.pk, offset + 1, min(offset + step, {events})])
        c.execute(\"\"\"INSERT INTO audit_auditsubjectlink (event_id, subject_id)
                     SELECT id, target_id::bigint FROM audit_auditevent WHERE id > (SELECT coalesce(max(event_id), 0)
                     FROM audit_auditsubjectlink)\"\"\")
# As autovacuum would in time: statistics, and the visibility map that lets index-only
# scans skip the table.
with connection.cursor() as c:
    c.execute("VACUUM (ANALYZE)")
loaded = {{"load_seconds": time.monotonic() - started, "first_subject": first_subject}}
print("RESULT", __import__("json").dumps(loaded))
"""

SEQUENCE = """
import json, time
from audit.log import sequence_backlog
started = time.monotonic()
result = sequence_backlog(batch_size={batch_size}, limit={limit}, read_ahead=True)
print("RESULT", json.dumps({{"sequenced": result.tree_size, "seconds": time.monotonic() - started}}))
"""

MEASURE = """
import json, time, random
from django.db import connection
from django.test import Client
client = Client()
token = client.post("/api/v1/auth/token/", {{"username": "audrey", "password": "correct-horse-battery"}},
                    content_type="application/json").json()["token"]
auth = {{"HTTP_AUTHORIZATION": "Token " + token}}
random.seed(7)
first = {first_subject}

def timed(make_url, runs=200):
    out = []
    for _ in range(runs):
        url = make_url()
        started = time.perf_counter()
        response = client.get(url, **auth)
        out.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return out

from audit.models import AuditLogState
size = AuditLogState.objects.get().tree_size
results = {{
    "access history (one person)": timed(
        lambda: f"/api/v1/audit/access-history/?subject={{first + random.randrange(20000)}}"),
    "events by actor + 30-day range": timed(lambda: (
        f"/api/v1/audit/events/?actor=user{{random.randrange(200)}}&since=2025-06-01T00:00:00Z"
        f"&until=2025-07-01T00:00:00Z")),
    "inclusion proof": timed(
        lambda: f"/api/v1/audit/proof/inclusion/?index={{random.randrange(size)}}&tree_size={{size}}"),
}}
from datetime import UTC, datetime
from audit import selectors
# The plans of the queries the two endpoints run (as the ORM writes them).
history = selectors.AuditEvent.objects.touching_subject(first + 5).order_by("id").values(
    *selectors.HISTORY_EVENT_FIELDS)
from django.db.models import F
by_actor = selectors.audit_events(actor="user7", since=datetime(2025, 6, 1, tzinfo=UTC),
                                  until=datetime(2025, 7, 1, tzinfo=UTC)).values(*selectors.EVENT_LIST_FIELDS)
# keyset_page(keys_first=True): the page's keys from the actor's range, then its rows.
keys = by_actor.order_by((F("id") + 0).asc()).values_list("id", flat=True)[:101]
page = by_actor.filter(id__in=list(keys)).order_by("id")[:101]
plan_history = history.explain(analyze=True).splitlines()
plan_keys = keys.explain(analyze=True).splitlines()
plan_page = page.explain(analyze=True).splitlines()
print("RESULT", json.dumps({{"timings": results, "plans": {{"access history": plan_history,
                                                             "events by actor: the page's keys": plan_keys,
                                                             "events by actor: the page's rows": plan_page}}}}))
"""

VIEWINGS = """
import json, random, time
from django.test import Client
from cases.models import Case, Profile
client = Client()
token = client.post("/api/v1/auth/token/", {{"username": "alice", "password": "correct-horse-battery"}},
                    content_type="application/json").json()["token"]
auth = {{"HTTP_AUTHORIZATION": "Token " + token}}
case = Case.objects.get(reference="N-1").pk
profiles = list(Profile.objects.order_by("id").values_list("id", flat=True))
random.seed(11)
timings = []
for n in range(20 + {samples}):  # the first 20 warm the process up
    body = {{"case": case, "profile": random.choice(profiles), "purpose": "risk_assessment",
             "justification": "Scale benchmark", "access_method": "logged_out_public", "interaction": "none",
             "information_recorded": "", "third_party_information": ""}}
    started = time.perf_counter()
    response = client.post("/api/v1/viewings/", body, content_type="application/json", **auth)
    took = time.perf_counter() - started
    assert response.status_code == 201, (response.status_code, response.content[:300])
    if n >= 20:
        timings.append(took)
print("RESULT", json.dumps(timings))
"""


def result_of(output: str):
    for line in output.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(output)


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] * 1000

    return f"p50 {at(0.5):7.1f} ms  p95 {at(0.95):7.1f} ms  p99 {at(0.99):7.1f} ms"


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def bench_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "REDIS_URL": "", "ALLOWED_HOSTS": "testserver", "AUDIT_INTEGRATE_AFTER_COMMIT": "0"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--viewings", type=int, default=1_000_000)
    parser.add_argument("--tree", type=int, help="Sequence only this many events (default: all of them).")
    parser.add_argument("--samples", type=int, default=200, help="Requests per auditor query.")
    parser.add_argument("--viewing-samples", type=int, default=200, help="Viewings logged per database.")
    parser.add_argument("--batch-size", type=int, default=50_000, help="Events per bulk sequencing batch.")
    parser.add_argument("--skip-verify", action="store_true", help="Stop before verify_audit (the longest step).")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryDirectory() as empty_tmp,
        live_database(args.database_url, Path(tmp), prefix="bench_scale") as loaded_env,
    ):
        env = bench_env(loaded_env)

        def shell(code: str, on: dict[str, str] = env) -> str:
            return manage(on, "shell", "-v", "0", "-c", code).stdout

        loaded = result_of(shell(LOAD.format(events=args.events, viewings=args.viewings)))
        print(
            f"Scale benchmark: {args.events:,} audit events, {args.viewings:,} viewings "
            f"(loaded in {loaded['load_seconds']:.0f} s)"
        )
        sequenced = result_of(shell(SEQUENCE.format(batch_size=args.batch_size, limit=args.tree)))
        print(
            f"  sequenced {sequenced['sequenced']:,} events into the tree in {sequenced['seconds']:.0f} s "
            f"({sequenced['sequenced'] / max(sequenced['seconds'], 1e-9):,.0f} leaves/s), one checkpoint"
        )
        measured = result_of(shell(MEASURE.format(first_subject=loaded["first_subject"])))
        for name, timings in measured["timings"].items():
            print(f"  {name:<34} {percentiles(timings)}")
        print("  targets: p99 under 50 ms for the two queries, under 10 ms for the proof")

        on_loaded = result_of(shell(VIEWINGS.format(samples=args.viewing_samples)))
        with live_database(args.database_url, Path(empty_tmp), prefix="bench_scale_empty") as empty_env:
            empty = bench_env(empty_env)
            shell(LOAD.format(events=0, viewings=0), on=empty)
            on_empty = result_of(shell(VIEWINGS.format(samples=args.viewing_samples), on=empty))
        print(f"  logging a viewing, empty database {percentiles(on_empty)}")
        print(f"  logging a viewing, this database  {percentiles(on_loaded)}")
        print(
            f"  ratio to the empty database: p50 {median(on_loaded) / median(on_empty):.2f} (target at most 1.25), "
            f"p99 {p99(on_loaded) / p99(on_empty):.2f}"
        )

        for name, plan in measured["plans"].items():
            print(f"\n  Query plan: {name}")
            for line in plan:
                print(f"    {line}")
        if args.skip_verify:
            return
        if args.tree is None:
            # The queries' and viewings' own audit events join the tree, as the periodic
            # sweep would sequence them, so that the whole log verifies.
            manage(env, "integrate_audit")
        started = time.monotonic()
        verified = manage(env, "verify_audit", "--no-witness", check=args.tree is None)
        took = time.monotonic() - started
        if verified.returncode:
            print(f"  verify_audit failed (expected with --tree: the rest is unsequenced): {verified.stderr.strip()}")
        else:
            leaves = int(verified.stdout.split(" leaves")[0].rsplit(" ", 1)[-1])
            print(
                f"  verify_audit: {leaves:,} leaves verified in {took:.1f} s ({leaves / took:,.0f} events/s, "
                f"{took / leaves * 1e6 / 60:.1f} min per million)"
            )


if __name__ == "__main__":
    main()
