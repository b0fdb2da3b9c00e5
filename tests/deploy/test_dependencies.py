"""The dependencies declared in pyproject.toml, and the lock the README's two commands install
(requirements.txt for ./bin/serve and the image, requirements-test.txt for ./bin/test):
every package pinned, transitive ones included, the two agreeing."""

from __future__ import annotations

import re
import tomllib
from collections import deque
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
#: Installed by venv itself, never by the lock.
TOOLING = {"pip", "setuptools", "wheel"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _lock(name: str) -> dict[str, str]:
    """``name==version`` lines of a lock file, by canonical name (comments ignored)."""
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        assert match, f"{name}: {line!r} is not pinned as name==version"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _declared(group: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(Requirement(text).name): Requirement(text) for text in group}


def _pinned_version(requirement: Requirement) -> str:
    [spec] = list(requirement.specifier)
    assert spec.operator == "==", f"{requirement} is not pinned exactly"
    return spec.version


def test_the_runtime_dependencies_declared_are_the_ones_locked():
    lock, test_lock = _lock("requirements.txt"), _lock("requirements-test.txt")
    for name, requirement in _declared(_pyproject()["project"]["dependencies"]).items():
        assert lock.get(name) == _pinned_version(requirement), name
        assert test_lock.get(name) == _pinned_version(requirement), name


def test_the_test_extra_is_locked_with_everything_the_service_runs_on():
    lock, test_lock = _lock("requirements.txt"), _lock("requirements-test.txt")
    for name, requirement in _declared(_pyproject()["project"]["optional-dependencies"]["test"]).items():
        assert test_lock.get(name) == _pinned_version(requirement), name
    # The test lock is the runtime lock plus the tests' own: the same version of each.
    assert {name: test_lock.get(name) for name in lock} == lock


def test_django_carries_the_security_release():
    assert Version(_lock("requirements.txt")["django"]) >= Version("5.2.20")


def _closure(roots: list[Requirement]) -> dict[str, set[str]]:
    """Every distribution the roots need, with the extras asked of each, from the installed
    packages' own metadata (this environment was installed from the lock)."""
    needed: dict[str, set[str]] = {}
    queue = deque((canonicalize_name(r.name), set(r.extras)) for r in roots)
    while queue:
        name, extras = queue.popleft()
        if name in needed and extras <= needed[name]:
            continue  # seen already, with these extras
        known = needed.setdefault(name, set())
        known |= extras
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            applies = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in (known | {""})
            )
            if applies:
                queue.append((canonicalize_name(requirement.name), set(requirement.extras)))
    return needed


@pytest.mark.parametrize(
    "lock_file, groups",
    [("requirements.txt", ["runtime"]), ("requirements-test.txt", ["runtime", "test"])],
)
def test_the_lock_holds_every_package_needed_and_nothing_else(lock_file, groups):
    project = _pyproject()["project"]
    roots = [Requirement(text) for text in project["dependencies"]]
    if "test" in groups:
        roots += [Requirement(text) for text in project["optional-dependencies"]["test"]]
    lock = _lock(lock_file)
    needed = set(_closure(roots)) - TOOLING
    assert needed == set(lock), {"missing": needed - set(lock), "not needed": set(lock) - needed}


def test_this_environment_runs_what_the_lock_says():
    for name, version in _lock("requirements-test.txt").items():
        assert metadata.version(name) == version, name


def test_the_licence_and_the_policies_are_there():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License")
    assert "Copyright (c) 2026 the Case Evidence Service contributors" in licence
    assert _pyproject()["project"]["license"] == "MIT"
    assert "## Reporting a vulnerability" in (ROOT / "SECURITY.md").read_text()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog and "keepachangelog.com" in changelog
