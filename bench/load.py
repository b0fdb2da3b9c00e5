#!/usr/bin/env python3
"""Load benchmark: the service under gunicorn on PostgreSQL (with Redis, a Celery worker and
Celery beat, as in production), driven over loopback by an asyncio + httpx client.

    .venv/bin/python bench/load.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
                                   [--redis-url redis://127.0.0.1:6379/14 | --no-redis]
                                   [--concurrency 1 4 8] [--requests 2000] [--seconds 20]
                                   [--rounds 3] [--workers 4]

In a throwaway database it seeds teams, practitioners, officers, auditors, cases, people,
profiles and consents (three people in four have consent, so some viewings raise flags),
gives every user an API token, starts gunicorn with the floor endpoint switched on
(``BENCH_FLOOR_ENDPOINT=1``, see ``bench/floor.py``), and then at each concurrency level runs
three phases, each stopping after REQUESTS requests or SECONDS seconds, whichever comes
first (after a short unmeasured warm-up); after the mixed phase it waits (at most 30 s)
until the work that phase queued is done (Celery tasks such as its flags' emails, audit
events to sequence, autovacuum), and the viewing and floor phases are split into ROUNDS
turns, viewing then floor and floor then viewing in turn, so that a change in the machine's
speed during the run, and what each phase leaves to the next, fall on both alike:

  mixed    realistic traffic: practitioners logging viewings (60%), listing their cases'
           viewings (15%); officers reading flags (10%; left out if ``GET /flags/``
           answers 404); auditors querying a person's access history (15%);
  viewing  only ``POST /api/v1/viewings/`` (validation, scope, detection and audit event;
           the event's Merkle leaf is added by Celery beat's batch within 2 s, on the same
           cores, so its cost is in the figures too);
  floor    only ``POST /bench/floor/viewings/``: a DRF endpoint with the same token
           authentication that inserts one comparable row and nothing else.

It prints requests per second and p50/p95/p99 latency per endpoint and phase, the CPU time
each process (gunicorn, Celery, PostgreSQL, the client) used per request, and for each
level the ratio of viewings logged per second to floor inserts per second (target >= 0.6)
and the p99 of logging a viewing (target < 50 ms at concurrency 8). The client runs on the
same machine as the server and takes CPU from it; the ratio, measured in the same run
under the same conditions, is the figure to compare between machines. The Redis database
given is used by the run (its Celery queue is purged first). Only loopback addresses are
ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.livedb import ROOT, live_database, manage  # noqa: E402

SEED = """
import json, random, secrets
from datetime import timedelta
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from accounts.models import ApiToken, Role, Team, User, hash_token
from cases.models import Case, CaseSubject, Consent, Profile, Subject
from bench.floor import CREATE_TABLE

rng = random.Random(7)
teams, practitioners_per_team, cases_per_team, people_per_case = {teams}, {practitioners}, {cases}, {people}
out = {{"practitioners": [], "officers": [], "auditors": []}}

def token(user):
    raw = secrets.token_urlsafe(32)
    ApiToken.objects.create(user=user, key_hash=hash_token(raw), expires_at=timezone.now() + timedelta(hours=6))
    return raw

with transaction.atomic():
    password = secrets.token_urlsafe(16)
    for n in range(teams):
        team = Team.objects.create(name=f"Team {{n}}")
        members = []
        for p in range(practitioners_per_team):
            user = User(username=f"practitioner{{n}}_{{p}}", role=Role.PRACTITIONER)
            user.set_password(password)
            user.save()
            user.teams.set([team])
            members.append(user)
        cases = []
        for c in range(cases_per_team):
            case = Case.objects.create(
                reference=f"LOAD-{{n}}-{{c}}", title="A family", team=team, created_by=members[0]
            )
            profiles = []
            for s in range(people_per_case):
                subject = Subject.objects.create(
                    display_name=f"Person {{n}}-{{c}}-{{s}}", created_by=members[0]
                )
                CaseSubject.objects.create(
                    case=case, subject=subject, relationship="service_user", linked_by=members[0]
                )
                profile = Profile.objects.create(
                    subject=subject, platform="instagram", handle=f"person.{{n}}.{{c}}.{{s}}",
                    url=f"https://www.instagram.com/person.{{n}}.{{c}}.{{s}}/", created_by=members[0],
                )
                if rng.random() < 0.75:
                    Consent.objects.create(
                        subject=subject, scope=["all"], granted_at=timezone.now() - timedelta(days=30),
                        evidence="Signed form on file", recorded_by=members[0], team=team,
                        given_by="subject", given_by_name=subject.display_name, method="written",
                        status="confirmed",
                    )
                profiles.append({{"profile": profile.pk, "subject": subject.pk}})
            cases.append({{"case": case.pk, "profiles": profiles}})
        for user in members:
            out["practitioners"].append({{"token": token(user), "cases": cases}})
    for n, role in enumerate([Role.RIPA_OFFICER, Role.RIPA_OFFICER, Role.SRO]):
        user = User(username=f"officer{{n}}", role=role, email=f"officer{{n}}@council.example")
        user.set_password(password)
        user.save()
        out["officers"].append({{"token": token(user)}})
    for n in range(2):
        user = User(username=f"auditor{{n}}", role=Role.AUDITOR)
        user.set_password(password)
        user.save()
        out["auditors"].append({{"token": token(user)}})
    out["subjects"] = list(Subject.objects.values_list("pk", flat=True))
with connection.cursor() as cursor:
    cursor.execute(CREATE_TABLE)
print("RESULT", json.dumps(out))
"""

COUNTS = """
import json
from audit.models import AuditEvent, AuditLeaf
from cases.models import Viewing
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM bench_floor_viewing")
    floor = cursor.fetchone()[0]
try:
    from detection.models import Flag
    flags = Flag.objects.count()
except Exception:
    flags = None
print("RESULT", json.dumps({"viewings": Viewing.objects.count(), "events": AuditEvent.objects.count(),
                           "leaves": AuditLeaf.objects.count(), "flags": flags, "floor_rows": floor}))
"""


def result_of(completed: subprocess.CompletedProcess) -> object:
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"no result from a benchmark step:\n{completed.stdout}\n{completed.stderr}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"refusing to send load to {host!r}: loopback addresses only")


# --- Traffic --------------------------------------------------------------------------------


@dataclass
class Request:
    endpoint: str  # the label the figures are printed under
    method: str
    path: str
    token: str
    body: dict | None = None


@dataclass
class Traffic:
    """Builds realistic requests from the seeded data."""

    seed: dict
    flags_available: bool
    rng: random.Random = field(default_factory=lambda: random.Random(11))

    def log_viewing(self, *, floor: bool = False) -> Request:
        practitioner = self.rng.choice(self.seed["practitioners"])
        case = self.rng.choice(practitioner["cases"])
        target = self.rng.choice(case["profiles"])
        body = {
            "case": case["case"],
            "profile": target["profile"],
            "purpose": self.rng.choice(["safeguarding_assessment", "locate_person", "verify_information"]),
            "justification": "Checking whether the child is still living with the grandmother, as reported.",
            "access_method": "council_overt_account",
            "interaction": "none",
            "information_recorded": self.rng.choice(["", "", "Photo of the new address's street, 3 days ago."]),
            "third_party_information": "",
        }
        if floor:
            return Request("POST /bench/floor/viewings/", "POST", "/bench/floor/viewings/", practitioner["token"], body)
        return Request("POST /viewings/", "POST", "/api/v1/viewings/", practitioner["token"], body)

    def list_viewings(self) -> Request:
        practitioner = self.rng.choice(self.seed["practitioners"])
        case = self.rng.choice(practitioner["cases"])
        return Request(
            "GET /viewings/?case=", "GET", f"/api/v1/viewings/?case={case['case']}&limit=50", practitioner["token"]
        )

    def read_flags(self) -> Request:
        officer = self.rng.choice(self.seed["officers"])
        return Request("GET /flags/", "GET", "/api/v1/flags/?limit=50", officer["token"])

    def access_history(self) -> Request:
        auditor = self.rng.choice(self.seed["auditors"])
        subject = self.rng.choice(self.seed["subjects"])
        return Request(
            "GET /audit/access-history/",
            "GET",
            f"/api/v1/audit/access-history/?subject={subject}&limit=50",
            auditor["token"],
        )

    def mixed(self) -> Request:
        draw = self.rng.random()
        if draw < 0.60:
            return self.log_viewing()
        if draw < 0.75:
            return self.list_viewings()
        if draw < 0.85 and self.flags_available:
            return self.read_flags()
        return self.access_history() if draw >= 0.85 else self.list_viewings()


@dataclass
class PhaseResult:
    name: str
    concurrency: int
    elapsed: float
    latencies: dict[str, list[float]]
    errors: dict[str, dict[int | str, int]]
    # Viewings logged, by whether the answer carried a flag (raised or joined) or none.
    by_flags: dict[str, list[float]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def rate(self, endpoint: str | None = None) -> float:
        count = self.total if endpoint is None else len(self.latencies.get(endpoint, []))
        return count / self.elapsed if self.elapsed else 0.0


async def run_phase(
    client: httpx.AsyncClient, make, *, name: str, concurrency: int, requests: int, seconds: float, warmup: int
) -> PhaseResult:
    """``concurrency`` clients, each sending one request after another, until ``requests``
    have been answered or ``seconds`` have passed; the first ``warmup`` are not measured."""
    latencies: dict[str, list[float]] = defaultdict(list)
    by_flags: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, dict[int | str, int]] = defaultdict(lambda: defaultdict(int))
    issued = 0
    measuring_from: float | None = None
    deadline = time.monotonic() + seconds + 30  # the warm-up gets its own allowance
    stop_at: float | None = None

    async def send(request: Request) -> tuple[float, int | str, bytes]:
        started = time.perf_counter()
        body = b""
        try:
            response = await client.request(
                request.method,
                request.path,
                json=request.body,
                headers={"Authorization": f"Token {request.token}"},
            )
            body = await response.aread()
            outcome: int | str = response.status_code
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        return time.perf_counter() - started, outcome, body

    async def worker() -> None:
        nonlocal issued, measuring_from, stop_at
        while True:
            now = time.monotonic()
            if issued >= warmup + requests or now >= deadline or (stop_at is not None and now >= stop_at):
                return
            issued += 1
            measured = issued > warmup
            if measured and measuring_from is None:
                measuring_from = now
                stop_at = now + seconds
            request = make()
            took, outcome, body = await send(request)
            if not measured:
                continue
            if isinstance(outcome, int) and outcome < 400:
                latencies[request.endpoint].append(took)
                if request.endpoint == "POST /viewings/":
                    flags = json.loads(body).get("flags")
                    if flags is not None:
                        by_flags["flagged" if flags else "no flag"].append(took)
            else:
                errors[request.endpoint][outcome] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - (measuring_from or time.monotonic())
    return PhaseResult(
        name, concurrency, elapsed, dict(latencies), {k: dict(v) for k, v in errors.items()}, dict(by_flags)
    )


# --- Where the CPU goes ------------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, str, float]]:
    """Every process: pid -> (parent pid, command name, CPU seconds used so far)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / ticks)
    return found


def cpu_by_part(roots: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    """CPU seconds used so far by each process of each part: the processes in ``roots``
    and their descendants, PostgreSQL's processes (all of them: the benchmark's own database
    is the only busy one), and this client."""
    processes = _processes()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (parent, _name, _cpu) in processes.items():
        children[parent].append(pid)

    def tree(pid: int) -> list[int]:
        return [pid, *(descendant for child in children[pid] for descendant in tree(child))] if pid in processes else []

    parts = {part: [pid for root in pids for pid in tree(root)] for part, pids in roots.items()}
    parts["postgres"] = [pid for pid, (_parent, name, _cpu) in processes.items() if name.startswith("postgres")]
    parts["client"] = [os.getpid()]
    return {part: {pid: processes[pid][2] for pid in pids} for part, pids in parts.items()}


def cpu_used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds each part used between two readings: by each process alive at the second
    (a process that ended in between is not counted: its time is no longer readable)."""
    return {
        part: sum(cpu - before.get(part, {}).get(pid, 0.0) for pid, cpu in processes.items())
        for part, processes in after.items()
    }


def combined(results: list[PhaseResult]) -> PhaseResult:
    """Rounds of one phase taken together: their requests over their summed time."""
    latencies: dict[str, list[float]] = defaultdict(list)
    by_flags: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, dict[int | str, int]] = defaultdict(lambda: defaultdict(int))
    for result in results:
        for endpoint, values in result.latencies.items():
            latencies[endpoint] += values
        for kind, values in result.by_flags.items():
            by_flags[kind] += values
        for endpoint, outcomes in result.errors.items():
            for outcome, count in outcomes.items():
                errors[endpoint][outcome] += count
    return PhaseResult(
        results[0].name,
        results[0].concurrency,
        sum(result.elapsed for result in results),
        dict(latencies),
        {endpoint: dict(outcomes) for endpoint, outcomes in errors.items()},
        dict(by_flags),
    )


def settle(database_url: str, redis_url: str, limit: float = 30.0) -> str:
    """Wait, for at most ``limit`` seconds, until the work queued by what ran before is
    done: every Celery task taken and finished, every audit event sequenced into the tree,
    and no autovacuum at work on the run's database."""
    import psycopg

    queue = None
    if redis_url:
        import redis

        queue = redis.Redis.from_url(redis_url)
    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            (behind,) = conn.execute(
                "SELECT (SELECT count(*) FROM audit_auditevent) - (SELECT count(*) FROM audit_auditleaf)"
            ).fetchone()
            (vacuuming,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE backend_type = 'autovacuum worker' AND datname = current_database()"
            ).fetchone()
            tasks = queue.llen("celery") + queue.hlen("unacked") if queue is not None else 0
            waited = time.monotonic() - started
            if not (behind or vacuuming or tasks):
                return f"settled in {waited:.1f} s (queued tasks, sequencing, autovacuum)"
            if waited > limit:
                return (
                    f"still busy after {limit:.0f} s: {behind} events to sequence, {tasks} tasks, "
                    f"{vacuuming} autovacuum workers"
                )
            time.sleep(0.2)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def print_phase(result: PhaseResult, cpu: dict[str, float], warmup: int) -> None:
    print(f"  {result.name:<8} {result.total:6d} requests in {result.elapsed:5.1f} s = {result.rate():7.1f} req/s")
    # Every request the phase sent, its warm-up included, as the CPU was read around them all.
    sent = warmup + result.total + sum(sum(outcomes.values()) for outcomes in result.errors.values())
    parts = ", ".join(f"{part} {seconds / sent * 1000:.2f}" for part, seconds in cpu.items())
    print(f"    CPU ms per request: {parts}; in all {sum(cpu.values()) / sent * 1000:.2f}")
    for endpoint in sorted(result.latencies):
        values = result.latencies[endpoint]
        print(
            f"    {endpoint:<30} {len(values):6d}  {result.rate(endpoint):7.1f}/s  "
            f"p50 {ms(statistics.median(values))}  p95 {ms(percentile(values, 0.95))}  "
            f"p99 {ms(percentile(values, 0.99))} ms"
        )
        if endpoint == "POST /viewings/":
            for kind, of_kind in sorted(result.by_flags.items(), reverse=True):
                print(
                    f"      {'of which ' + kind:<28} {len(of_kind):6d}  {len(of_kind) / len(values):6.0%}    "
                    f"p50 {ms(statistics.median(of_kind))}  p95 {ms(percentile(of_kind, 0.95))}  "
                    f"p99 {ms(percentile(of_kind, 0.99))} ms"
                )
    for endpoint, outcomes in sorted(result.errors.items()):
        print(f"    {endpoint:<30} errors: {dict(outcomes)}")


# --- Processes ------------------------------------------------------------------------------


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(  # noqa: S603 - this interpreter's own tools, our arguments
        command, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen) -> None:
    """Stop a process this script started (and its own children, e.g. gunicorn's workers)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_until_healthy(base_url: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"gunicorn did not answer /healthz within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--no-redis", action="store_true", help="no Redis, no Celery: tasks run in-process")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per phase at most")
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds per phase at most")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured requests before each phase")
    parser.add_argument(
        "--rounds", type=int, default=3, help="turns the viewing and floor phases take, sharing REQUESTS and SECONDS"
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--teams", type=int, default=4)
    parser.add_argument("--practitioners", type=int, default=3, help="per team")
    parser.add_argument("--cases", type=int, default=10, help="per team")
    parser.add_argument("--people", type=int, default=3, help="per case")
    args = parser.parse_args()
    require_loopback(args.database_url)
    if not args.no_redis:
        require_loopback(args.redis_url)

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as processes:
        tmp_path = Path(tmp)
        db = processes.enter_context(live_database(args.database_url, tmp_path, prefix="bench_load"))
        env = {**db, "BENCH_FLOOR_ENDPOINT": "1", "LOG_LEVEL": "WARNING"}
        if args.no_redis:
            env["REDIS_URL"] = ""
        else:
            env["REDIS_URL"] = args.redis_url
        seed = result_of(
            manage(
                env,
                "shell",
                "-v",
                "0",
                "-c",
                SEED.format(teams=args.teams, practitioners=args.practitioners, cases=args.cases, people=args.people),
            )
        )
        if not args.no_redis:
            celery = [sys.executable, "-m", "celery", "-A", "evidence_service"]
            subprocess.run([*celery, "purge", "-f"], env=env, cwd=ROOT, capture_output=True, check=False)  # noqa: S603
            worker = start([*celery, "worker", "-c", "1", "-l", "WARNING"], env, tmp_path / "worker.log")
            processes.callback(stop, worker)
            beat = start(
                [*celery, "beat", "-l", "WARNING", "-s", str(tmp_path / "beat-schedule")], env, tmp_path / "beat.log"
            )
            processes.callback(stop, beat)
        port = free_loopback_port()
        base_url = f"http://127.0.0.1:{port}"
        server_log = tmp_path / "gunicorn.log"
        server = start(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "evidence_service.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--backlog",
                "256",
            ],
            env,
            server_log,
        )
        processes.callback(stop, server)
        roots = {"gunicorn": [server.pid]}
        if not args.no_redis:
            roots["celery"] = [worker.pid, beat.pid]
        wait_until_healthy(base_url, server, server_log)

        probe = httpx.get(
            f"{base_url}/api/v1/flags/", headers={"Authorization": f"Token {seed['officers'][0]['token']}"}, timeout=10
        )
        traffic = Traffic(seed, flags_available=probe.status_code != 404)

        print(
            "Load benchmark (gunicorn + PostgreSQL"
            + ("" if args.no_redis else " + Redis + Celery worker and beat")
            + ")"
        )
        print(
            f"  {args.workers} gunicorn workers; {len(seed['practitioners'])} practitioners, "
            f"{len(seed['subjects'])} people; each phase: {args.requests} requests or {args.seconds:.0f} s"
            + ("" if traffic.flags_available else "; GET /flags/ answers 404 and is left out")
        )
        summary = []

        async def levels() -> None:
            limits = httpx.Limits(
                max_connections=max(args.concurrency), max_keepalive_connections=max(args.concurrency)
            )
            async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
                for concurrency in args.concurrency:
                    print(f"\nconcurrency {concurrency}")
                    results = {}

                    async def measured(
                        name: str, make, requests: int, concurrency: int = concurrency
                    ) -> tuple[PhaseResult, dict[str, float]]:
                        before = cpu_by_part(roots)
                        result = await run_phase(
                            client,
                            make,
                            name=name,
                            concurrency=concurrency,
                            requests=requests,
                            seconds=args.seconds / args.rounds if name != "mixed" else args.seconds,
                            warmup=args.warmup,
                        )
                        return result, cpu_used(before, cpu_by_part(roots))

                    results["mixed"], cpu = await measured("mixed", traffic.mixed, args.requests)
                    print_phase(results["mixed"], cpu, args.warmup)
                    # What the mixed traffic left behind (the emails of the flags it raised,
                    # its events to sequence, autovacuum after its inserts) is not charged to
                    # whichever phase comes next.
                    print("  " + await asyncio.to_thread(settle, env["DATABASE_URL"], env["REDIS_URL"]))
                    # The viewing and floor phases take turns, in reverse order every other
                    # round, so that a drift in the machine's speed during the run, and what
                    # each phase leaves to the next, fall on both alike.
                    rounds: dict[str, list[tuple[PhaseResult, dict[str, float]]]] = {"viewing": [], "floor": []}
                    for round_number in range(args.rounds):
                        order = [
                            ("viewing", traffic.log_viewing),
                            ("floor", lambda: traffic.log_viewing(floor=True)),
                        ]
                        for name, make in order if round_number % 2 == 0 else reversed(order):
                            rounds[name].append(await measured(name, make, max(1, args.requests // args.rounds)))
                    server_ms: dict[str, float] = {}
                    for name, measured_rounds in rounds.items():
                        results[name] = combined([result for result, _cpu in measured_rounds])
                        parts = measured_rounds[0][1]
                        cpu_total = {part: sum(cpu[part] for _result, cpu in measured_rounds) for part in parts}
                        print_phase(results[name], cpu_total, args.warmup * args.rounds)
                        sent = args.warmup * args.rounds + results[name].total
                        server_ms[name] = sum(v for part, v in cpu_total.items() if part != "client") / sent * 1000
                    each = [
                        viewing.rate() / floor.rate() if floor.rate() else float("nan")
                        for (viewing, _v), (floor, _f) in zip(rounds["viewing"], rounds["floor"], strict=True)
                    ]
                    if args.rounds > 1:
                        print("  ratio in each round: " + ", ".join(f"{ratio:.2f}" for ratio in each))
                    viewing, floor = results["viewing"], results["floor"]
                    viewing_p99 = percentile(viewing.latencies.get("POST /viewings/", [float("nan")]), 0.99)
                    floor_p99 = percentile(floor.latencies.get("POST /bench/floor/viewings/", [float("nan")]), 0.99)
                    ratio = viewing.rate() / floor.rate() if floor.rate() else float("nan")
                    print(
                        f"  -> logging a viewing: {viewing.rate():.1f}/s vs floor {floor.rate():.1f}/s: "
                        f"ratio {ratio:.2f} (target >= 0.6); p99 {viewing_p99 * 1000:.1f} ms"
                        + (" (target < 50 ms)" if concurrency == 8 else "")
                    )
                    # The client's CPU, the same for both and on the same cores, lifts the ratio
                    # above what the server alone would give: that is printed too.
                    server_ratio = server_ms["floor"] / server_ms["viewing"] if server_ms["viewing"] else float("nan")
                    print(
                        f"     server CPU per request (all but the client): viewing {server_ms['viewing']:.2f} ms, "
                        f"floor {server_ms['floor']:.2f} ms: floor / viewing {server_ratio:.2f}"
                    )
                    summary.append(
                        (concurrency, viewing.rate(), floor.rate(), ratio, viewing_p99, floor_p99, server_ratio)
                    )

        asyncio.run(levels())
        counts = result_of(manage(env, "shell", "-v", "0", "-c", COUNTS))
        # The floor's p99 in the same run says how fast the machine is: the 50 ms target is set
        # for one where it is about 17 ms at concurrency 8.
        print(
            "\nsummary: concurrency, viewings/s, floor/s, ratio, viewing p99 ms, floor p99 ms, "
            "server CPU ratio (floor / viewing)"
        )
        for concurrency, rate, floor_rate, ratio, p99, floor_p99, server_ratio in summary:
            print(
                f"  {concurrency:3d}  {rate:8.1f}  {floor_rate:8.1f}  {ratio:5.2f}  {p99 * 1000:6.1f}  "
                f"{floor_p99 * 1000:6.1f}  {server_ratio:5.2f}"
            )
        print(f"rows written: {json.dumps(counts)}")
        errors = server_log.read_text().count("Traceback")
        if errors:
            print(f"gunicorn logged {errors} tracebacks; last lines:\n{server_log.read_text()[-2000:]}")


if __name__ == "__main__":
    main()
