"""Small helpers for driving the service over HTTP in the end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.e2e.harness import ROOT, Mail, Stack


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC, to the microsecond (a decision made now must not look older than
    the one before it a moment ago)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def expect(response: httpx.Response, status: int) -> dict | list | str:
    """The body of a response that must have ``status``; otherwise fail naming what came."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url} answered {response.status_code}, expected {status}:\n"
        f"{response.text[:2000]}"
    )
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


class Api:
    """One signed-in user."""

    def __init__(self, stack: Stack, username: str) -> None:
        self.stack, self.username = stack, username
        self.http = stack.client(username)

    def get(self, path: str, expect_status: int = 200, **params):
        return expect(self.http.get(path, params=params or None), expect_status)

    def post(self, path: str, body: dict | None = None, status: int = 201):
        return expect(self.http.post(path, json=body if body is not None else {}), status)

    def put(self, path: str, body: dict, status: int = 200):
        return expect(self.http.put(path, json=body), status)


def team_id(api: Api, name: str) -> int:
    teams = api.get("/api/v1/me/")["teams"]
    return next(team["id"] for team in teams if team["name"] == name)


def open_case(api: Api, reference: str, team: str = "North", person: str = "Jane Example") -> dict:
    """A case with one person on it and her Instagram and Facebook profiles."""
    case = api.post(
        "/api/v1/cases/", {"reference": reference, "title": f"Family {reference}", "team": team_id(api, team)}
    )
    subject = api.post(f"/api/v1/cases/{case['id']}/subjects/", {"display_name": person, "relationship": "parent"})
    handle = f"{reference.lower().replace('-', '.')}.jane"
    instagram = api.post(f"/api/v1/subjects/{subject['id']}/profiles/", {"platform": "instagram", "handle": handle})
    facebook = api.post(f"/api/v1/subjects/{subject['id']}/profiles/", {"platform": "facebook", "handle": handle})
    return {"case": case, "subject": subject, "instagram": instagram, "facebook": facebook, "reference": reference}


def look_body(case: dict, profile: dict, **overrides) -> dict:
    body = {
        "case": case["case"]["id"],
        "profile": profile["id"],
        "purpose": "safeguarding_assessment",
        "justification": "The school raised a concern about a party this weekend.",
        "access_method": "logged_out_public",
        "interaction": "none",
        "information_recorded": "",
        "third_party_information": "",
    }
    body.update(overrides)
    return body


def look(api: Api, case: dict, profile: dict, status: int = 201, **overrides) -> dict:
    return api.post("/api/v1/viewings/", look_body(case, profile, **overrides), status=status)


def raise_repeat_flag(api: Api, case: dict) -> tuple[dict, list[dict]]:
    """Two looks at the person's Instagram, covered by nothing: the second raises
    REPEAT_VIEWING (threshold 2 in 28 days, the default policy)."""
    first = look(api, case, case["instagram"])
    second = look(api, case, case["instagram"])
    flags = [flag for flag in second["flags"] if flag["rule"] == "REPEAT_VIEWING"]
    assert len(flags) == 1, second["flags"]
    return flags[0], [first, second]


def eventually(condition: Callable[[], object], what: str, timeout: float, logs: Callable[[], str] = str, step=0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs()}")
        time.sleep(step)


def mails_to(stack: Stack, username: str, containing: str) -> list[Mail]:
    return stack.smtp.mails(to=stack.users[username]["email"], containing=containing)


def wait_for_mail(stack: Stack, username: str, containing: str, timeout: float = 30) -> Mail:
    mails = eventually(
        lambda: mails_to(stack, username, containing),
        f"an email to {username} mentioning {containing!r}",
        timeout,
        lambda: "emails received:\n" + "\n".join(f"  {m.rcpt_tos} {m.subject!r}" for m in stack.smtp.mails()),
    )
    return mails[0]


def assert_links_to_site(stack: Stack, mail: Mail) -> None:
    site = stack.env["SITE_URL"]
    links = mail.links()
    assert links, f"the email {mail.subject!r} carries no link:\n{mail.body}"
    assert all(link.startswith(site + "/") for link in links), f"links not under SITE_URL {site}: {links}"


def verify_log(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """tools/verify_log.py, as an auditor runs it: no Django, no database."""
    return subprocess.run(  # noqa: S603 - this interpreter running the project's offline verifier
        [sys.executable, str(ROOT / "tools" / "verify_log.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
