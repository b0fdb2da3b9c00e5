#!/usr/bin/env python3
"""Benchmark: the auditor's exports of a large log.

    .venv/bin/python bench/export.py [--events 300000] [--bundle 10000]
                                     [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

In a throwaway PostgreSQL database it bulk-loads EVENTS audit events as bench/scale.py does
(200 actors, each event touching one of 20,000 people) and sequences BUNDLE of them into the
Merkle tree; then, as an auditor through the API, it reads

  - the whole event log as CSV (GET /api/v1/audit/events/?format=csv), to the last byte,
  - one actor's events as CSV (about EVENTS / 200 of them),
  - an offline bundle of the first BUNDLE entries (GET /api/v1/audit/export/), the most
    one request gives,

and prints, for each, the rows, the bytes, the time and this process's CPU time (which
includes the test client reading the answer), and the rows per second.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.livedb import live_database, manage  # noqa: E402
from bench.scale import LOAD, SEQUENCE, bench_env, result_of  # noqa: E402

MEASURE = """
import json, time
from django.test import Client
client = Client()
token = client.post("/api/v1/auth/token/", {{"username": "audrey", "password": "correct-horse-battery"}},
                    content_type="application/json").json()["token"]
auth = {{"HTTP_AUTHORIZATION": "Token " + token}}
results = {{}}
for name, url in [
    ("event log as CSV, every event", "/api/v1/audit/events/?format=csv"),
    ("one actor's events as CSV", "/api/v1/audit/events/?format=csv&actor=user7"),
    ("offline bundle", "/api/v1/audit/export/?start=0&end={bundle}"),
]:
    started, cpu = time.perf_counter(), time.process_time()
    response = client.get(url, **auth)
    assert response.status_code == 200, (url, response.status_code)
    if response.streaming:
        rows = size = 0
        for chunk in response.streaming_content:
            rows += chunk.count(b"\\n")
            size += len(chunk)
        rows -= 1  # the header
    else:
        rows, size = len(json.loads(response.content)["entries"]), len(response.content)
    results[name] = {{"rows": rows, "bytes": size, "seconds": time.perf_counter() - started,
                      "cpu": time.process_time() - cpu}}
print("RESULT", json.dumps(results))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--bundle", type=int, default=10_000, help="entries in the offline bundle (at most 10,000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, live_database(args.database_url, Path(tmp), prefix="bench_export") as e:
        env = bench_env(e)

        def shell(code: str) -> str:
            return manage(env, "shell", "-v", "0", "-c", code).stdout

        loaded = result_of(shell(LOAD.format(events=args.events, viewings=0)))
        result_of(shell(SEQUENCE.format(batch_size=50_000, limit=args.bundle)))
        print(f"Export benchmark: {args.events:,} audit events (loaded in {loaded['load_seconds']:.0f} s)")
        for name, figures in result_of(shell(MEASURE.format(bundle=args.bundle))).items():
            print(
                f"  {name:<31} {figures['rows']:>9,} rows {figures['bytes'] / 1e6:>7.1f} MB "
                f"in {figures['seconds']:6.2f} s (CPU {figures['cpu']:6.2f} s): "
                f"{figures['rows'] / figures['seconds']:>8,.0f} rows/s"
            )


if __name__ == "__main__":
    main()
