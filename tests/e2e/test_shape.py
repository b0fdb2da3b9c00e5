"""The stack is in the production shape: what the journeys and faults rely on."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from psycopg import errors


def test_every_process_connects_as_the_runtime_role_which_cannot_change_the_audit_log(stack):
    stack.client("alice").get("/api/v1/me/")  # a web worker has a connection now
    with stack.db.admin() as admin:
        roles = {
            role
            for (role,) in admin.execute(
                "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [stack.db.name],
            )
        }
        owner = admin.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [stack.db.name])
        assert owner.fetchone()[0] == stack.db.owner
    assert roles == {stack.db.app}, roles

    with psycopg.connect(stack.db.app_url, autocommit=True) as service:
        for statement in (
            "UPDATE audit_auditevent SET action = 'x'",
            "DELETE FROM audit_auditevent",
            "TRUNCATE audit_auditevent",
            "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
            "UPDATE cases_viewing SET justification = 'x'",
        ):
            with pytest.raises((errors.InsufficientPrivilege, errors.RaiseException)):
                service.execute(statement)


def test_the_service_runs_without_debug_and_answers_only_its_own_host_names(stack):
    missing = httpx.get(f"{stack.base_url}/api/v1/no-such-thing/", timeout=10)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/json")
    assert "Traceback" not in missing.text and "DEBUG" not in missing.text
    foreign = httpx.get(f"{stack.base_url}/healthz", headers={"Host": "evil.example"}, timeout=10)
    assert foreign.status_code == 400
    health = httpx.get(f"{stack.base_url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
