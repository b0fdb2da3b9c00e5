"""The end-to-end suite: the service started as a council runs it, driven over HTTP.

It runs only with ``CES_E2E=1`` (``.ci/run`` sets it), so that ``./bin/test`` stays fast:

    CES_E2E=1 ./bin/test tests/e2e -q -p no:cacheprovider

It needs PostgreSQL on 127.0.0.1:5432 whose ``postgres`` role may create roles and
databases (trust authentication, as on the development machine and CI) and
``redis-server`` on the PATH; see ``tests/e2e/harness.py`` for what it starts. With
``CES_E2E=1`` a missing prerequisite is a failure, never a skip.
"""

from __future__ import annotations

import atexit
import os

import pytest

from tests.e2e.harness import StackError, start_stack

if os.environ.get("CES_E2E") != "1":
    collect_ignore_glob = ["test_*.py"]

_stack = None


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "late: an e2e test that checks what an earlier one set going (run after the others)"
    )


def pytest_collection_modifyitems(session, config, items):
    """``late`` tests wait for something that takes a minute or two (the periodic resend
    of notifications): they run last, so that the rest of the suite runs meanwhile."""
    late = [item for item in items if item.get_closest_marker("late")]
    if late:
        items[:] = [item for item in items if not item.get_closest_marker("late")] + late


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _stack is not None:
        report.sections.append((f"e2e logs (all in {_stack.workdir})", _stack.logs()))


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The whole stack, started once for the suite and always stopped at its end (also
    on a failure or Ctrl-C; ``atexit`` as a last resort)."""
    global _stack
    started: list = []

    def stop_everything() -> None:
        while started:
            stop = started.pop()
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - stop the rest whatever happens
                print(f"e2e: stopping {stop!r} failed: {exc}")

    atexit.register(stop_everything)
    workdir = tmp_path_factory.mktemp("e2e")
    try:
        _stack = start_stack(workdir, started)
    except (StackError, OSError) as exc:
        stop_everything()
        pytest.fail(f"the e2e stack did not start: {exc}", pytrace=False)
    try:
        yield _stack
    finally:
        _stack = None
        stop_everything()
