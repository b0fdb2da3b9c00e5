"""A throwaway PostgreSQL database, migrated, for tests and benchmarks whose processes must
see each other's commits (so not pytest-django's test transaction). Dropping a database is
the one way its append-only tables go away, and it needs no trigger switched off."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tlog.note import generate_signer_key

ROOT = Path(__file__).resolve().parent.parent


def _admin_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


#: The log's name in the processes started here (the test suite's too, so that keys made
#: by a test for its own settings' origin are accepted by them).
ORIGIN = "case-evidence.localhost/audit-log"


def environment(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Production settings (DEBUG off): a secret key, the log's origin and a signing key."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "evidence_service.settings",
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "AUDIT_LOG_ORIGIN": ORIGIN,
        "AUDIT_SIGNING_KEY": generate_signer_key(ORIGIN).encode(),
        "DATA_DIR": str(data_dir),
        "PYTHONPATH": str(ROOT),
    }
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    completed = subprocess.run(  # noqa: S603 - this interpreter running the project's manage.py
        [sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if check and completed.returncode:
        raise RuntimeError(f"manage.py {args[0]} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return completed


@contextmanager
def live_database(base_url: str, data_dir: Path, prefix: str = "ces_live") -> Iterator[dict[str, str]]:
    """Create, migrate, yield the environment for, and finally drop a new database."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = _admin_url(base_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        env = environment(_with_database(base_url, name), data_dir)
        manage(env, "migrate", "--noinput", "-v0")
        yield env
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
