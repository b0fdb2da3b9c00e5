"""One way to run a service: every public function of every ``services.py`` runs in a
transaction of its own, by ``core.services.service``. The modules are found by walking the
project's packages, so a new app's services are checked without being listed here."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import sys
import textwrap
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Team
from audit.models import AuditEvent
from authorisations.models import Authorisation
from core.services import service
from tests.authorisations.conftest import application_payload
from tests.cases.test_viewing_log import viewing_payload

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_FOLDERS = {"tests", "node_modules", "__pycache__"}


def services_modules() -> list[str]:
    """The dotted name of every ``services.py`` in the project's packages (not in tests,
    nor in hidden folders such as ``.venv``)."""
    names = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith(".") and name not in SKIPPED_FOLDERS)
        parts = Path(folder).relative_to(ROOT).parts
        if "services.py" not in files or not parts:
            continue
        if all((ROOT.joinpath(*parts[: i + 1]) / "__init__.py").is_file() for i in range(len(parts))):
            names.append(".".join((*parts, "services")))
    return sorted(names)


def outside_a_service(module) -> list[str]:
    """The public functions defined in ``module`` that are not services: every top-level
    ``def`` of its source, and every function object whose home it is, must be bound under
    its own name to the wrapper ``service`` made of it."""
    tree = ast.parse(inspect.getsource(module))
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    defined |= {
        name
        for name, value in vars(module).items()
        if inspect.isfunction(value) and value.__module__ == module.__name__
    }
    problems = []
    for name in sorted(defined):
        if name.startswith("_"):
            continue
        value = getattr(module, name, None)
        if value is service:  # the decorator itself, in core/services.py
            continue
        if not getattr(value, "__service__", False) or inspect.unwrap(value).__name__ != name:
            problems.append(name)
    return problems


# --- Every services module ----------------------------------------------------------------------


def test_the_walk_finds_the_services_of_every_app():
    found = set(services_modules())
    project_apps = {config.name for config in apps.get_app_configs() if Path(config.path).is_relative_to(ROOT)}
    assert {f"{name}.services" for name in project_apps if (ROOT / name / "services.py").is_file()} <= found
    assert {"accounts.services", "audit.services", "authorisations.services", "cases.services"} <= found
    assert "detection.services" in found and "core.services" in found


@pytest.mark.parametrize("name", services_modules())
def test_every_public_function_of_a_services_module_runs_in_a_transaction_of_its_own(name):
    module = importlib.import_module(name)
    assert outside_a_service(module) == [], (
        f"{name}: public functions outside a transaction; decorate each with @service (core.services), "
        "or make it private (_name) if it is a helper"
    )


def test_authorisation_submit_is_a_service():
    from authorisations.services import authorisation_submit

    assert authorisation_submit.__service__ and inspect.unwrap(authorisation_submit).__name__ == "authorisation_submit"


# --- The mechanism: a helper inserted between the decorator and the service ------------------------


@pytest.fixture
def services_module(tmp_path, monkeypatch):
    """Import ``source`` as ``<package>.services`` of a throwaway package."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made = []

    def load(source: str):
        package = f"throwaway_app_{len(made)}_{id(tmp_path)}"
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "services.py").write_text(textwrap.dedent(source))
        made.append(package)
        return importlib.import_module(f"{package}.services")

    yield load
    for package in made:
        sys.modules.pop(f"{package}.services", None)
        sys.modules.pop(package, None)


def test_the_check_catches_a_helper_inserted_under_transaction_atomic_as_authorisation_submit_had(
    services_module,
):
    # What authorisations/services.py had: the decorator wrapped the helper inserted above
    # the service, which then ran outside any transaction.
    module = services_module(
        """
        from django.db import transaction
        from core.services import service

        @transaction.atomic
        def _require_case_open(authorisation):
            pass

        def authorisation_submit(*, ctx, authorisation):
            _require_case_open(authorisation)

        @service
        def authorisation_grant(*, ctx, authorisation):
            pass
        """
    )
    assert outside_a_service(module) == ["authorisation_submit"]


def test_service_refuses_to_wrap_a_private_helper_inserted_under_it(services_module):
    with pytest.raises(TypeError, match="private function .*_require_case_open"):
        services_module(
            """
            from core.services import service

            @service
            def _require_case_open(authorisation):
                pass

            def authorisation_submit(*, ctx, authorisation):
                _require_case_open(authorisation)
            """
        )


def test_the_check_catches_a_public_helper_inserted_under_service(services_module):
    module = services_module(
        """
        from core.services import service

        @service
        def check_case_open(authorisation):
            pass

        def authorisation_submit(*, ctx, authorisation):
            check_case_open(authorisation)
        """
    )
    assert outside_a_service(module) == ["authorisation_submit"]


def test_the_check_catches_a_service_rebound_or_shadowed_and_ignores_imports_and_private_helpers(services_module):
    module = services_module(
        """
        from django.db import transaction
        from core.services import service
        from audit.services import audit_record  # a service of another module

        def _helper():
            pass

        @service
        def case_create(*, ctx):
            pass

        @service
        def case_close(*, ctx):
            pass

        case_close = case_create  # the name no longer runs the function defined under it

        def case_reopen(*, ctx):
            with transaction.atomic():  # a transaction inside is not the service's own
                pass
        """
    )
    assert outside_a_service(module) == ["case_close", "case_reopen"]


def test_a_module_of_services_passes_the_check(services_module):
    module = services_module(
        """
        from core.services import service

        def _require_case_open(authorisation):
            pass

        @service
        def authorisation_submit(*, ctx, authorisation):
            _require_case_open(authorisation)

        @service(savepoint=False)
        def viewing_log(*, ctx):
            pass
        """
    )
    assert outside_a_service(module) == []


# --- Tests that commit ---------------------------------------------------------------------------


# Emptying the database after each of them: tests/db_harness.py, wired in by tests/conftest.py.


@pytest.fixture(autouse=True)
def _own_witness_copy(settings, tmp_path):
    """Checkpoints committed here keep their witness copy in a folder of the test's own
    (the log starts again empty after each test)."""
    settings.DATA_DIR = tmp_path


# --- The decorator at run time --------------------------------------------------------------------


@service
def team_named(*, name: str, fail: BaseException | None = None) -> Team:
    team = Team.objects.create(name=name)
    if fail is not None:
        raise fail
    return team


class Refused(Exception):
    pass


@service(commit_on=(Refused,))
def team_named_then_refused(*, name: str) -> None:
    Team.objects.create(name=name)
    raise Refused(name)


@service(savepoint=False)
def team_without_savepoint(*, name: str) -> None:
    Team.objects.create(name=name)
    raise ValueError(name)


def test_service_keeps_the_functions_name_and_signature():
    assert team_named.__name__ == "team_named" and team_named.__service__ is True
    assert list(inspect.signature(team_named).parameters) == ["name", "fail"]
    assert team_named.__service_options__ == {"savepoint": True, "durable": False, "commit_on": ()}


def test_service_refuses_something_that_is_not_an_exception_to_commit_on():
    with pytest.raises(TypeError, match="exception classes"):

        @service(commit_on=(KeyboardInterrupt,))
        def stopped():
            pass


@pytest.mark.django_db(transaction=True)
def test_a_service_called_outside_any_transaction_runs_in_one_and_commits():
    seen = []

    @service
    def probe():
        seen.append((connection.in_atomic_block, connection.get_autocommit()))

    assert not connection.in_atomic_block
    probe()
    assert seen == [(True, False)]
    assert not connection.in_atomic_block and connection.get_autocommit()
    team_named(name="Committed")
    with pytest.raises(ValueError):
        team_named(name="Rolled back", fail=ValueError("no"))
    assert list(Team.objects.values_list("name", flat=True)) == ["Committed"]


@pytest.mark.django_db(transaction=True)
def test_commit_on_keeps_what_the_service_wrote_and_still_raises_the_refusal():
    with pytest.raises(Refused):
        team_named_then_refused(name="Recorded refusal")
    assert Team.objects.filter(name="Recorded refusal").exists()
    # Any other error rolls back as usual.
    with pytest.raises(KeyError):
        team_named(name="Half made", fail=KeyError("x"))
    assert not Team.objects.filter(name="Half made").exists()


@pytest.mark.django_db(transaction=True)
def test_inside_a_callers_transaction_a_service_is_a_savepoint_unless_told_otherwise():
    with transaction.atomic():
        team_named(name="Kept")
        with pytest.raises(ValueError):
            team_named(name="Undone", fail=ValueError("no"))
        assert not connection.needs_rollback  # only the savepoint was rolled back
    assert list(Team.objects.values_list("name", flat=True)) == ["Kept"]
    with pytest.raises(ValueError), transaction.atomic():
        Team.objects.create(name="Lost with it")
        with pytest.raises(ValueError):
            team_without_savepoint(name="Failing")
        assert connection.needs_rollback  # no savepoint: the caller's whole transaction fails
        raise ValueError("caller gives up")
    assert not Team.objects.filter(name__in=["Lost with it", "Failing"]).exists()


@pytest.mark.django_db(transaction=True)
def test_a_durable_service_refuses_to_run_inside_a_callers_transaction():
    @service(durable=True)
    def outermost(*, name: str) -> None:
        Team.objects.create(name=name)

    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        outermost(name="Nested")
    outermost(name="Alone")
    assert list(Team.objects.values_list("name", flat=True)) == ["Alone"]


# --- Real services, committing: no statement that writes or locks runs outside a transaction -----


WRITES = ("INSERT", "UPDATE", "DELETE")


@contextmanager
def statements_outside_a_transaction():
    """Every statement that writes or takes a row lock while no transaction is open."""
    found: list[str] = []

    def watch(execute, sql, params, many, context):
        text = sql.lstrip().upper()
        if not context["connection"].in_atomic_block and (text.startswith(WRITES) or " FOR UPDATE" in text):
            found.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        yield found


@pytest.mark.django_db(transaction=True)
def test_submitting_an_application_without_the_tests_transaction_succeeds(alice, north_case, jane, client_for):
    """The request runs as in production, in autocommit: on PostgreSQL the submit answered 500
    (select_for_update outside a transaction) when it ran outside the service's transaction."""
    assert not connection.in_atomic_block
    client = client_for(alice)
    created = client.post("/api/v1/authorisations/", application_payload(north_case, [jane]), format="json")
    assert created.status_code == 201, created.content
    authorisation_id = created.json()["id"]
    with statements_outside_a_transaction() as outside:
        response = client.post(f"/api/v1/authorisations/{authorisation_id}/submit/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "submitted"
    assert outside == []
    authorisation = Authorisation.objects.get(pk=authorisation_id)
    assert authorisation.status == "submitted" and authorisation.submitted_at is not None
    assert AuditEvent.objects.filter(action="authorisation.submit", target_id=str(authorisation_id)).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_journey_through_the_api_writes_and_locks_nothing_outside_a_transaction(
    alice, olivia, north_case, jane, jane_profile, client_for
):
    """Sign-in, two looks (a flag raised, its notification queued), the flag decided, a
    correction, an application submitted and granted, a refused submission: every write
    and lock of the services behind them runs inside a transaction."""
    with statements_outside_a_transaction() as outside:
        practitioner, officer = client_for(alice), client_for(olivia)
        looks = [
            practitioner.post("/api/v1/viewings/", viewing_payload(north_case, jane_profile), format="json")
            for _ in range(2)
        ]
        assert [look.status_code for look in looks] == [201, 201]
        [flag_id] = [flag["id"] for flag in looks[1].json()["flags"]]
        decided = officer.post(
            f"/api/v1/flags/{flag_id}/decide/",
            {"outcome": "authorisation_required", "reasoning": "Repeated looks need an authorisation."},
            format="json",
        )
        assert decided.status_code == 200, decided.content
        corrected = practitioner.post(
            f"/api/v1/viewings/{looks[0].json()['id']}/supersede/",
            {**viewing_payload(north_case, jane_profile), "reason": "Wrong purpose recorded."},
            format="json",
        )
        assert corrected.status_code == 201, corrected.content
        created = practitioner.post("/api/v1/authorisations/", application_payload(north_case, [jane]), format="json")
        authorisation_id = created.json()["id"]
        assert practitioner.post(f"/api/v1/authorisations/{authorisation_id}/submit/").status_code == 200
        granted = officer.post(
            f"/api/v1/authorisations/{authorisation_id}/grant/",
            {
                "officer_grade": "Head of Service",
                "statement": "Necessary and proportionate.",
                "limits": "Public posts only",
                "review_interval_days": 28,
                "expires_at": (timezone.now() + timedelta(days=60)).isoformat(),
            },
            format="json",
        )
        assert granted.status_code == 200, granted.content
        again = practitioner.post(f"/api/v1/authorisations/{authorisation_id}/submit/")
        assert again.status_code == 409
    assert outside == []
    assert Authorisation.objects.get(pk=authorisation_id).status == "in_force"
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "auth.login",
        "viewing.create",
        "flag.raise",
        "flag.decide",
        "viewing.supersede",
        "authorisation.create",
        "authorisation.submit",
        "authorisation.grant",
    } <= actions


@pytest.mark.django_db(transaction=True)
def test_a_refused_sign_in_keeps_its_audit_event_without_the_tests_transaction(alice):
    """``token_issue`` runs in one transaction, and the refusal it audits (``commit_on``) is
    committed before the 401 is answered."""
    client = APIClient()
    with statements_outside_a_transaction() as outside:
        refused = client.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"}, format="json")
        signed_in = client.post(
            "/api/v1/auth/token/", {"username": "alice", "password": "correct-horse-battery"}, format="json"
        )
    assert (refused.status_code, signed_in.status_code) == (401, 200)
    assert outside == []
    failed = AuditEvent.objects.get(action="auth.login_failed")
    assert failed.payload["username"] == "alice" and failed.outcome == "denied"
    assert AuditEvent.objects.filter(action="auth.login", actor_username="alice").count() == 1


def test_the_watch_reports_writes_and_locks_outside_a_transaction_only():
    """The watch above can fail: it reports a write or a row lock run in autocommit."""

    def execute(sql, params, many, context):
        return None

    def run(sql, in_atomic_block):
        connection.execute_wrappers[-1](
            execute, sql, (), False, {"connection": mock.Mock(in_atomic_block=in_atomic_block)}
        )

    with statements_outside_a_transaction() as found:
        run('UPDATE "x" SET a = 1', in_atomic_block=False)
        run('SELECT 1 FROM "x" FOR UPDATE', in_atomic_block=False)
        run('INSERT INTO "x" VALUES (1)', in_atomic_block=True)
        run('SELECT 1 FROM "x"', in_atomic_block=False)
    assert found == ['UPDATE "x" SET a = 1', 'SELECT 1 FROM "x" FOR UPDATE']
