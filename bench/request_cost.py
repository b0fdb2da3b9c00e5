#!/usr/bin/env python3
"""Benchmark: the CPU one request costs, in this process (Python) and in its PostgreSQL
backend, without HTTP, a load client or other processes sharing the cores: the floor
against logging a viewing, for a consented look and for looks joining open flags.

    .venv/bin/python bench/request_cost.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
                                           [--looks 80] [--requests 100] [--rounds 3]

In a throwaway database it seeds a team, a case and 20 people with consent and 20 without,
each of those with LOOKS unconsented looks within the detection window and open flags, and
one more person without consent for each "new flag" request, with LOOKS looks and no flag;
then,
in ROUNDS turns, sends REQUESTS of each kind through Django's test client with token
authentication (``POST /bench/floor/viewings/`` and ``POST /api/v1/viewings/``):

  floor      the bare insert (bench/floor.py);
  consented  a look at a person with consent (no rule fires);
  one flag   a look at a person without consent, joining the open repeat-viewing flag;
  two flags  the same with information recorded, joining that flag and the
             systematic-recording one;
  new flag   a look at a person looked at often but never flagged: it raises the
             repeat-viewing flag, routes it to the officers and queues their emails;

and, for comparison, three reads of 50 rows (each audited, as every read is):

  viewing list  a practitioner's GET /api/v1/viewings/?case=...&limit=50 (the case's latest
                looks, many of them flagged);
  flag list     an officer's GET /api/v1/flags/?limit=50;
  history       an auditor's GET /api/v1/audit/access-history/?subject=...&limit=50 for a
                flagged person.

The tables are analysed after the warm-up, as autovacuum would. It prints, per kind, the
median over the rounds of this process's CPU time per request and
of the PostgreSQL backend's (read from /proc/PID/schedstat, in nanoseconds; PostgreSQL must
run on this machine), and the ratio of each to the floor. The kinds take turns, in reverse
order every other round; the flagged people's looks grow as the rounds add to them, and the
script prints how many they had at the start and at the end. With Redis given, sequencing is
left to a Celery beat that is not running, as in production, and the emails' tasks are
queued there and purged at the end; without it, each request sequences after commit and
the emails are sent in-process.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.livedb import live_database  # noqa: E402

PEOPLE = 20
WARM_UP = 20


def backend_cpu(pid: int) -> float:
    """Seconds the process has run on a CPU (the scheduler's own count, in nanoseconds)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def local_backend(pid: int) -> int:
    """``pid``, checked to be a PostgreSQL process on this machine."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        name = ""
    if name != "postgres":
        raise SystemExit(f"PostgreSQL's backend {pid} is not a postgres process on this machine ({name!r})")
    return pid


def handshake(directory: Path, kinds: dict, requests: int) -> None:
    """For each kind in turn: say so in ``ready``, wait for ``go``, send ``requests`` of it,
    say so in ``done`` and wait for ``next``; so that another process can count what each
    kind costs (bench/instructions.py switches valgrind's counting on and off around it)."""

    def wait_for(name: str) -> None:
        while not (directory / name).exists():
            time.sleep(0.05)
        (directory / name).unlink()

    (directory / "kinds").write_text(str(len(kinds)))
    for kind, send_one in kinds.items():
        (directory / "ready").write_text(kind)
        wait_for("go")
        for n in range(requests):
            send_one(n)
        (directory / "done").write_text(kind)
        wait_for("next")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="'' for the embedded default")
    parser.add_argument("--looks", type=int, default=80, help="earlier unconsented looks per person")
    parser.add_argument("--requests", type=int, default=100, help="per kind and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--handshake",
        default="",
        help="a directory: run each kind once, between files written there (for bench/instructions.py)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, live_database(args.database_url, Path(tmp), prefix="bench_cost") as env:
        os.environ.update(env)
        os.environ.update({"REDIS_URL": args.redis_url, "ALLOWED_HOSTS": "testserver", "BENCH_FLOOR_ENDPOINT": "1"})
        import django

        django.setup()
        from django.db import connection
        from django.test import Client
        from django.utils import timezone

        from accounts.models import ApiToken, Role, Team, User, hash_token
        from bench.floor import CREATE_TABLE
        from cases.models import Case, CaseSubject, Consent, Profile, Subject, Viewing

        team = Team.objects.create(name="North")
        alice = User.objects.create_user("alice", role=Role.PRACTITIONER)
        bob = User.objects.create_user("bob", role=Role.PRACTITIONER)
        for user in (alice, bob):
            user.teams.add(team)
        for n in range(2):
            User.objects.create_user(f"officer{n}", role=Role.RIPA_OFFICER, email=f"officer{n}@council.example")
        case = Case.objects.create(reference="N-1", title="A family", team=team, created_by=alice)
        profiles: dict[str, list[Profile]] = {"consented": [], "unconsented": [], "fresh": []}
        # People looked at often but never flagged: each look at one raises a flag. One for
        # each such request, with the warm-up's.
        fresh = (args.requests if args.handshake else args.requests * args.rounds) + WARM_UP
        for kind, count in (("consented", PEOPLE), ("unconsented", PEOPLE), ("fresh", fresh)):
            for n in range(count):
                person = Subject.objects.create(display_name=f"{kind} {n}", created_by=alice)
                CaseSubject.objects.create(case=case, subject=person, relationship="service_user", linked_by=alice)
                handle = f"{kind}.{n}"
                profile = Profile.objects.create(
                    subject=person,
                    platform="instagram",
                    handle=handle,
                    url=f"https://www.instagram.com/{handle}/",
                    created_by=alice,
                )
                if kind == "consented":
                    Consent.objects.create(
                        subject=person,
                        scope=["all"],
                        granted_at=timezone.now() - timedelta(days=30),
                        evidence="Signed form on file",
                        recorded_by=alice,
                        given_by="subject",
                        given_by_name=person.display_name,
                        method="written",
                        status="confirmed",  # confirmed by an officer: it covers alice's looks
                        team=team,
                    )
                profiles[kind].append(profile)
        now = timezone.now()
        Viewing.objects.bulk_create(
            Viewing(
                case=case,
                profile=profile,
                subject_id=profile.subject_id,
                practitioner=bob,
                viewed_at=now - timedelta(hours=1 + look * 20 * 24 / max(args.looks, 1)),
                recorded_at=now,
                purpose="risk_assessment",
                justification="Earlier look",
                access_method="logged_out_public",
                interaction="none",
            )
            for profile in profiles["unconsented"] + profiles["fresh"]
            for look in range(args.looks)
        )
        with connection.cursor() as cursor:
            cursor.execute(CREATE_TABLE)

        def client_of(user: User) -> Client:
            raw = "bench-" + os.urandom(24).hex()
            ApiToken.objects.create(user=user, key_hash=hash_token(raw), expires_at=now + timedelta(hours=6))
            return Client(HTTP_AUTHORIZATION=f"Token {raw}")

        client = client_of(alice)
        officer = client_of(User.objects.get(username="officer0"))
        auditor = client_of(User.objects.create_user("auditor", role=Role.AUDITOR))
        flagged_person = profiles["unconsented"][0].subject_id

        def read(reader: Client, path: str) -> None:
            response = reader.get(path)
            if response.status_code != 200:
                raise SystemExit(f"{path} answered {response.status_code}: {response.content[:500]!r}")

        def send(profile: Profile, information: str = "", path: str = "/api/v1/viewings/") -> None:
            body = {
                "case": case.pk,
                "profile": profile.pk,
                "purpose": "safeguarding_assessment",
                "justification": "Checking whether the child is still living with the grandmother, as reported.",
                "access_method": "council_overt_account",
                "interaction": "none",
                "information_recorded": information,
                "third_party_information": "",
            }
            response = client.post(path, json.dumps(body), content_type="application/json")
            if response.status_code != 201:
                raise SystemExit(f"{path} answered {response.status_code}: {response.content[:500]!r}")

        kinds = {
            "floor": lambda n: send(profiles["consented"][n % PEOPLE], path="/bench/floor/viewings/"),
            "consented": lambda n: send(profiles["consented"][n % PEOPLE]),
            "one flag": lambda n: send(profiles["unconsented"][n % PEOPLE]),
            "two flags": lambda n: send(profiles["unconsented"][n % PEOPLE], "Photo of the street, 3 days ago."),
            "new flag": lambda n: send(next(never_flagged)),
            "viewing list": lambda n: read(client, f"/api/v1/viewings/?case={case.pk}&limit=50"),
            "flag list": lambda n: read(officer, "/api/v1/flags/?limit=50"),
            "history": lambda n: read(auditor, f"/api/v1/audit/access-history/?subject={flagged_person}&limit=50"),
        }
        never_flagged = iter(profiles["fresh"])
        # Raise both flags for everyone without consent, and warm every path up.
        for n in range(PEOPLE):
            kinds["two flags"](n)
        for send_one in kinds.values():
            for n in range(WARM_UP):
                send_one(n)
        # Statistics for the planner, as autovacuum keeps them (without them it plans the
        # lists as if each table held a row).
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        # As a gunicorn worker does once the app is loaded (gunicorn.conf.py).
        gc.collect()
        gc.freeze()
        if args.handshake:
            handshake(Path(args.handshake), kinds, args.requests)
            purge_queued_emails(args.redis_url)
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = local_backend(cursor.fetchone()[0])

        def looks_per_flagged_person() -> float:
            flagged = [profile.pk for profile in profiles["unconsented"]]
            return Viewing.objects.filter(profile_id__in=flagged).count() / PEOPLE

        looks_at_start = looks_per_flagged_person()

        python: dict[str, list[float]] = {kind: [] for kind in kinds}
        database: dict[str, list[float]] = {kind: [] for kind in kinds}
        for round_number in range(args.rounds):
            order = list(kinds.items())
            for kind, send_one in order if round_number % 2 == 0 else reversed(order):
                started, started_db = time.process_time(), backend_cpu(backend)
                for n in range(args.requests):
                    send_one(n)
                python[kind].append((time.process_time() - started) / args.requests * 1000)
                database[kind].append((backend_cpu(backend) - started_db) / args.requests * 1000)

        print(
            f"CPU per request, in process (Python) and in PostgreSQL; median of {args.rounds} rounds of "
            f"{args.requests}; unconsented looks per flagged person: {looks_at_start:.0f} at the start, "
            f"{looks_per_flagged_person():.0f} at the end"
        )
        floor_python, floor_database = (statistics.median(python["floor"]), statistics.median(database["floor"]))
        for kind in kinds:
            py, db = statistics.median(python[kind]), statistics.median(database[kind])
            print(
                f"  {kind:12s}  Python {py:6.2f} ms ({py / floor_python:4.2f}x floor)   "
                f"PostgreSQL {db:5.2f} ms ({db / floor_database if floor_database else float('nan'):4.2f}x floor)"
            )
        purge_queued_emails(args.redis_url)


def purge_queued_emails(redis_url: str) -> None:
    """The new flags' email tasks, queued in Redis with no worker to run them."""
    if redis_url:
        from evidence_service.celery import app

        app.control.purge()


if __name__ == "__main__":
    main()
