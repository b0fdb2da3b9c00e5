#!/usr/bin/env python3
"""Benchmark: the instructions one request costs in this process, counted by valgrind
(callgrind), for the floor and the kinds of look of bench/request_cost.py. Instructions are
counted the same whatever else the machine is doing, so two versions of the code can be
compared on a shared machine where CPU times move by a fifth from one run to the next.

    .venv/bin/python bench/instructions.py [--requests 100] [--database-url ...]

It runs ``bench/request_cost.py --handshake DIR`` under ``valgrind --tool=callgrind`` with
counting off; once the setup and warm-up are done, for each kind it switches counting on
(``callgrind_control``), lets the script send REQUESTS of that kind, dumps the count and
switches it off. It prints instructions per request and the ratio of each kind to the
floor. Only the Python process is counted (not PostgreSQL), and the program runs some
fifty times slower than usual under valgrind: a few minutes with the defaults. Needs
valgrind (Debian's package).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--requests", type=int, default=100, help="per kind")
    args = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        out = directory / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(HERE / "request_cost.py"),
            f"--database-url={args.database_url}",
            f"--redis-url={args.redis_url}",
            f"--requests={args.requests}",
            f"--handshake={directory}",
        ]
        log = (directory / "log").open("w")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - fixed command

        def wait_for(name: str) -> str:
            while not (directory / name).exists():
                if process.poll() is not None:
                    raise SystemExit(f"the measured process ended ({process.returncode}):\n{_tail(directory / 'log')}")
                time.sleep(0.2)
            text = (directory / name).read_text()
            (directory / name).unlink()
            return text

        def control(*options: str) -> None:
            subprocess.run(["callgrind_control", *options, str(process.pid)], check=True, capture_output=True)  # noqa: S603, S607

        counts: dict[str, float] = {}
        try:
            for _ in range(int(wait_for("kinds"))):
                kind = wait_for("ready")
                control("--zero")
                control("--instr=on")
                (directory / "go").touch()
                wait_for("done")
                before = set(directory.glob("callgrind.out.*"))
                control("--dump")
                control("--instr=off")
                (dump,) = set(directory.glob("callgrind.out.*")) - before
                counts[kind] = _total(dump) / args.requests
                (directory / "next").touch()
            process.wait(timeout=600)
        finally:
            if process.poll() is None:
                process.kill()
    print(f"Instructions per request in this process (callgrind), {args.requests} requests of each kind")
    for kind, count in counts.items():
        print(f"  {kind:12s}  {count / 1e6:6.2f} million  ({count / counts['floor']:4.2f}x floor)")


def _total(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no total in {dump}")


def _tail(path: Path) -> str:
    return "\n".join(path.read_text().splitlines()[-20:])


if __name__ == "__main__":
    main()
