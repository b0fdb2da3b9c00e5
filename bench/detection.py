#!/usr/bin/env python3
"""Benchmark: the cost of logging a viewing (with detection, audit event and leaf) does not
grow with the size of the history.

    .venv/bin/python bench/detection.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
                                        [--history 1000000] [--samples 300]

In a throwaway PostgreSQL database it times ``viewing_log`` (the service behind
POST /api/v1/viewings/: validation, the viewing, its audit event, the detection policy,
and sequencing into the Merkle tree after commit) on an empty history, then loads
HISTORY older viewings by bulk SQL (spread over 2,000 people and ten years, the people
being viewed included) and times it again: for people with no other looks, and for people
with hundreds of old looks outside the 28-day window. It prints p50/p95/p99 per phase and
the ratio to the empty database (target: within 1.25x).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.livedb import live_database, manage  # noqa: E402

SETUP = """
from accounts.models import Team, User
from cases.models import Case
team = Team.objects.create(name="North")
alice = User.objects.create_user("alice", role="practitioner", email="alice@council.example")
alice.teams.add(team)
User.objects.create_user("olivia", role="ripa_officer", email="olivia@council.example")
Case.objects.create(reference="N-1", title="Bench family", team=team, created_by=alice)
"""

PEOPLE = """
from django.db import connection
with connection.cursor() as c:
    c.execute(\"\"\"
        INSERT INTO cases_subject (display_name, external_id, date_of_birth, created_at, created_by_id)
        SELECT '{prefix} ' || g, NULL, NULL, now(), (SELECT id FROM accounts_user WHERE username = 'alice')
        FROM generate_series(1, {count}) g\"\"\")
    c.execute(\"\"\"
        INSERT INTO cases_casesubject (case_id, subject_id, relationship, linked_at, linked_by_id)
        SELECT (SELECT id FROM cases_case WHERE reference = 'N-1'), s.id, 'service_user', now(), s.created_by_id
        FROM cases_subject s WHERE s.display_name LIKE '{prefix} %'\"\"\")
    c.execute(\"\"\"
        INSERT INTO cases_profile (subject_id, platform, handle, url, created_at, created_by_id)
        SELECT s.id, 'instagram', lower(replace(s.display_name, ' ', '.')),
               'https://www.instagram.com/' || lower(replace(s.display_name, ' ', '.')) || '/', now(), s.created_by_id
        FROM cases_subject s WHERE s.display_name LIKE '{prefix} %'\"\"\")
"""

HISTORY = """
from django.db import connection
with connection.cursor() as c:
    c.execute(\"\"\"
        WITH p AS (SELECT array_agg(id ORDER BY id) AS ids FROM cases_profile WHERE handle LIKE '{prefix}.%')
        INSERT INTO cases_viewing (case_id, profile_id, subject_id, practitioner_id, viewed_at, recorded_at, purpose,
            purpose_detail, justification, access_method, interaction, information_recorded, third_party_information,
            late_entry_reason, external_authority_kind, external_authority_reference, supersede_reason)
        SELECT (SELECT id FROM cases_case WHERE reference = 'N-1'), pr.id, pr.subject_id,
               (SELECT id FROM accounts_user WHERE username = 'alice'),
               now() - interval '60 days' - (g % 3600) * interval '1 day' - (g % 1440) * interval '1 minute',
               now(), 'risk_assessment', '', 'history', 'logged_out_public', 'none', '', '', '', '', '', ''
        FROM generate_series(1, {count}) g, p
        JOIN LATERAL (SELECT id, subject_id FROM cases_profile WHERE id = p.ids[1 + (g % array_length(p.ids, 1))])
             pr ON true\"\"\")
    c.execute("ANALYZE cases_viewing")
"""

TIME = """
import json, time
from accounts.models import User
from audit.services import AuditContext
from cases.models import Case, Profile
from cases.services import ViewingDetails, viewing_log
alice, case = User.objects.get(username="alice"), Case.objects.get(reference="N-1")
profiles = list(Profile.objects.filter(handle__startswith="{prefix}.").order_by("id")[:{samples}])
timings, flagged = [], 0
for profile in profiles:
    started = time.perf_counter()
    viewing = viewing_log(ctx=AuditContext(actor=alice), details=ViewingDetails(
        case=case, profile=profile, purpose="safeguarding_assessment", justification="Concern from school",
        access_method="logged_out_public", interaction="none", information_recorded="", third_party_information=""))
    timings.append(time.perf_counter() - started)
    flagged += viewing.flag_links.count()
print("RESULT", json.dumps({{"timings": timings, "flagged": flagged}}))
"""


def result_of(output: str) -> dict:
    for line in output.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(output)


def summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] * 1000

    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as tmp,
        live_database(args.database_url, Path(tmp), prefix="bench_detect") as env,
    ):
        env = {**env, "REDIS_URL": ""}

        def shell(code: str) -> str:
            return manage(env, "shell", "-v", "0", "-c", code).stdout

        shell(SETUP)
        for prefix in ("empty", "fresh", "viewed", "crowd"):
            count = 2000 if prefix == "crowd" else args.samples
            shell(PEOPLE.format(prefix=prefix, count=count))
        phases = {"empty history": result_of(shell(TIME.format(prefix="empty", samples=args.samples)))}
        shell(HISTORY.format(prefix="crowd", count=args.history - args.history // 10))
        shell(HISTORY.format(prefix="viewed", count=args.history // 10))
        phases[f"{args.history:,} viewings: people never viewed"] = result_of(
            shell(TIME.format(prefix="fresh", samples=args.samples))
        )
        phases[f"{args.history:,} viewings: people with ~{args.history // 10 // args.samples} old looks each"] = (
            result_of(shell(TIME.format(prefix="viewed", samples=args.samples)))
        )

        print(f"Logging a viewing (service call incl. detection, audit event, leaf), {args.samples} samples per row")
        base = summary(phases["empty history"]["timings"])
        for name, data in phases.items():
            figures = summary(data["timings"])
            ratio = figures["p50"] / base["p50"]
            print(
                f"  {name:<48} p50 {figures['p50']:6.1f} ms  p95 {figures['p95']:6.1f} ms  "
                f"p99 {figures['p99']:6.1f} ms  ratio to empty (p50) {ratio:4.2f}  flags {data['flagged']}"
            )
        print("  target: within 1.25x of the empty database")


if __name__ == "__main__":
    main()
