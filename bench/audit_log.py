#!/usr/bin/env python3
"""Benchmark of the tamper-evident audit log on PostgreSQL.

    .venv/bin/python bench/audit_log.py [--database-url postgresql://postgres@127.0.0.1:5432/x]
                                        [--writers 4] [--events 500] [--verify-events 100000]

In a throwaway database it measures, and prints:
  1. appends per second: WRITERS processes each committing EVENTS audit events, one per
     transaction, each sequenced in-process after its commit (as on the request path),
     with a periodic sweep every 2 s running beside them (as Celery beat does);
  2. commit-to-checkpoint latency: for each event, from its commit to the signing of the
     first checkpoint that covers it (p50, p99, max; the target is p99 under 5 s);
  3. verify_audit speed: VERIFY_EVENTS more events are bulk-loaded and sequenced, then the
     whole log is verified; the time per million events is extrapolated from the rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.livedb import ROOT, live_database, manage  # noqa: E402

WRITER = """
import time
from django.db import transaction
from audit.services import AuditContext, audit_record
out = []
for i in range({count}):
    with transaction.atomic():
        event = audit_record(ctx=AuditContext.command("bench"), action="viewing.create",
                             payload={{"justification": "Benchmark viewing " + str(i)}}, subject_ids=[{n}], case_id={n})
    out.append((event.pk, time.time()))  # after commit (and after this commit's integration)
print("RESULT", __import__("json").dumps(out))
"""

SWEEPER = """
import os, time
from audit.log import integrate
while not os.path.exists({stop!r}):
    integrate(sweep=True)
    time.sleep(2)
integrate(sweep=True)
"""

LATENCIES = """
import json
from audit.models import AuditLeaf, AuditCheckpoint
leaves = dict(AuditLeaf.objects.values_list("event_id", "index"))
checkpoints = [(c.tree_size, c.signed_at.timestamp()) for c in AuditCheckpoint.objects.order_by("tree_size")]
print("RESULT", json.dumps({"leaves": leaves, "checkpoints": checkpoints}))
"""

BULK = """
import os, time
from django.db import transaction
from django.utils import timezone
from audit.log import integrate
from audit.models import AuditEvent
total, batch = {total}, 5000
started = time.monotonic()
for offset in range(0, total, batch):
    with transaction.atomic():
        AuditEvent.objects.bulk_create([
            AuditEvent(occurred_at=timezone.now(), action="case.read", actor_role="practitioner", actor_id=7,
                       actor_username="bench", target_type="case", target_id=str(i), case_id=i % 500,
                       payload={{"n": i}}, commitment_salt=os.urandom(16))
            for i in range(offset, min(offset + batch, total))
        ])
loaded = time.monotonic() - started
started = time.monotonic()
while integrate(full=True, batch_size=5000).appended:
    pass
print("RESULT", __import__("json").dumps({{"load_s": loaded, "sequence_s": time.monotonic() - started}}))
"""


def result_of(completed: subprocess.CompletedProcess) -> object:
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"no result from a benchmark step:\n{completed.stdout}\n{completed.stderr}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--events", type=int, default=500, help="events per writer")
    parser.add_argument("--verify-events", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, live_database(args.database_url, Path(tmp), prefix="bench_audit") as env:
        env = {**env, "AUDIT_CHECKPOINT_INTERVAL_MS": "1000", "REDIS_URL": ""}
        stop = Path(tmp) / "stop"
        shell = [sys.executable, str(ROOT / "manage.py"), "shell", "-v", "0", "-c"]
        sweeper = subprocess.Popen([*shell, SWEEPER.format(stop=str(stop))], env=env, cwd=ROOT)  # noqa: S603
        started = time.monotonic()
        writers = [
            subprocess.Popen(  # noqa: S603
                [*shell, WRITER.format(count=args.events, n=n)],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(1, args.writers + 1)
        ]
        commits: dict[int, float] = {}
        for writer in writers:
            out, err = writer.communicate()
            if writer.returncode:
                raise SystemExit(f"writer failed:\n{err}")
            commits.update(dict(result_of(subprocess.CompletedProcess([], 0, out, err))))
        elapsed = time.monotonic() - started
        time.sleep(2.5)
        stop.touch()
        sweeper.wait(timeout=60)

        data = result_of(manage(env, "shell", "-v", "0", "-c", LATENCIES))
        leaves = {int(k): v for k, v in data["leaves"].items()}
        checkpoints = data["checkpoints"]
        latencies = []
        for event_id, committed in commits.items():
            index = leaves[event_id]
            signed = next(at for size, at in checkpoints if size > index)
            latencies.append(max(0.0, signed - committed))

        total = len(commits)
        print("Audit log benchmark (PostgreSQL)")
        print(f"  writers x events          : {args.writers} x {args.events} = {total} events, one per transaction")
        print(f"  appends per second        : {total / elapsed:,.0f} /s  ({elapsed:.2f} s wall)")
        print(f"  checkpoints signed        : {len(checkpoints)}")
        print(
            "  commit -> signed checkpoint: "
            f"p50 {statistics.median(latencies) * 1000:,.0f} ms, p99 {percentile(latencies, 0.99) * 1000:,.0f} ms, "
            f"max {max(latencies) * 1000:,.0f} ms  (target: p99 < 5,000 ms)"
        )

        if args.verify_events:
            bulk = result_of(manage(env, "shell", "-v", "0", "-c", BULK.format(total=args.verify_events)))
            rate_in = args.verify_events / bulk["sequence_s"]
            print(
                f"  bulk sequencing           : {args.verify_events:,} events in {bulk['sequence_s']:.1f} s "
                f"({rate_in:,.0f} leaves/s)"
            )
        started = time.monotonic()
        verified = manage(env, "verify_audit", "--no-witness")
        took = time.monotonic() - started
        size = total + args.verify_events
        print(
            f"  verify_audit              : {size:,} events in {took:.1f} s ({size / took:,.0f} events/s) "
            f"-> {took / size * 1_000_000 / 60:.1f} min per million events"
        )
        print(f"    {verified.stdout.strip()}")


if __name__ == "__main__":
    main()
