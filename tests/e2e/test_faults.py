"""Faults, on the same stack: Redis stopped, the Celery worker killed mid-send, PostgreSQL
connections terminated mid-request. Each fault is undone before its test ends, so the
stack is whole for the tests after it.

Notifications lost to a fault are queued again by beat's periodic resend (every 60 s, for
notifications pending for a minute), so their arrival is checked by ``late`` tests at the
end of the suite, while the rest of it runs meanwhile."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.e2e.api import Api, eventually, expect, look, look_body, mails_to, open_case, raise_repeat_flag

#: The periodic resend runs every 60 s and takes notifications pending for 60 s: an email
#: owed at t is queued again by t + 120 s at the latest.
RESEND_DEADLINE_SECONDS = 200
#: A request may wait this long at most for a broker that is down (2 s per notification).
OUTAGE_REQUEST_SECONDS = 10


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


@pytest.fixture(scope="session")
def redis_outage(stack):
    """Redis stopped while a practitioner signs in and logs two looks that raise a flag
    (so two officers are owed an email); then Redis started again, empty, on its port."""
    fallback_token = stack.token("bob")  # to log the looks even if sign-in fails
    seen: dict = {"requests": []}
    stack.redis.stop()
    try:
        signed_in, seconds = _timed(lambda: stack.sign_in("bob"))
        seen["sign_in"] = signed_in
        seen["requests"].append(("sign-in", signed_in.status_code, seconds))
        wrong, seconds = _timed(lambda: stack.sign_in("bob", "not-the-password"))
        seen["wrong_password"] = wrong
        # The throttle keeps counting without Redis: five wrong passwords for one user at
        # one address, then even the right one is refused for a while.
        seen["guesses"] = [stack.sign_in("tom", f"guess-{n}").status_code for n in range(6)]
        seen["after_guesses"] = stack.sign_in("tom")
        token = signed_in.json()["token"] if signed_in.status_code == 200 else fallback_token
        bob = Api(stack, "bob")
        bob.http.headers["Authorization"] = f"Token {token}"
        seen["me"] = bob.http.get("/api/v1/me/")
        started = time.monotonic()
        family = open_case(bob, "E2E-REDIS-1", team="South", person="Rose Outage")
        first = bob.http.post("/api/v1/viewings/", json=look_body(family, family["instagram"]))
        second, seconds = _timed(
            lambda: bob.http.post("/api/v1/viewings/", json=look_body(family, family["instagram"]))
        )
        seen["requests"].append(("second look", second.status_code, seconds))
        seen["looks"] = [first, second]
        seen["family"] = family
        seen["listed"] = bob.http.get("/api/v1/viewings/", params={"case": family["case"]["id"]})
        seen["healthz"] = stack.healthz()
        seen["outage_seconds"] = time.monotonic() - started
        seen["mails_during_outage"] = stack.smtp.mails(containing="E2E-REDIS-1")
    finally:
        stack.redis.start()
    seen["redis_back_at"] = time.monotonic()
    stack.wait_healthy(60)
    return seen


def test_with_redis_stopped_sign_in_still_works_and_looks_are_logged(stack, redis_outage):
    seen = redis_outage
    assert seen["sign_in"].status_code == 200, seen["sign_in"].text
    assert seen["wrong_password"].status_code == 401, seen["wrong_password"].text
    assert seen["me"].status_code == 200 and seen["me"].json()["username"] == "bob"
    first, second = seen["looks"]
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    [flag] = [f for f in second.json()["flags"] if f["rule"] == "REPEAT_VIEWING"]
    assert set(flag["routed_to"]) == {"olivia", "oscar"}
    listed = expect(seen["listed"], 200)["results"]
    assert {v["id"] for v in listed} == {first.json()["id"], second.json()["id"]}
    assert all(seconds < OUTAGE_REQUEST_SECONDS for _what, _status, seconds in seen["requests"]), seen["requests"]
    # /healthz tells the truth meanwhile.
    assert seen["healthz"].status_code == 503 and seen["healthz"].json()["redis"] == "unavailable"
    assert seen["mails_during_outage"] == []


def test_with_redis_stopped_the_sign_in_throttle_still_counts_and_its_refusals_are_audited(stack, redis_outage):
    seen = redis_outage
    assert seen["guesses"] == [401] * 5 + [429]
    assert seen["after_guesses"].status_code == 429 and int(seen["after_guesses"].headers["Retry-After"]) > 0
    events = Api(stack, "audrey").get("/api/v1/audit/events/", action="auth.login_throttled")["results"]
    assert len([e for e in events if e["payload"].get("username") == "tom"]) == 2


@pytest.fixture(scope="session")
def worker_killed_mid_send(stack):
    """The Celery worker SIGKILLed (and its pool with it) while it is sending a flag's
    email (the SMTP sink holds the message unanswered), then started again."""
    reference = "E2E-KILL-1"
    stack.smtp.hold(lambda subject, recipients: reference in subject)
    seen: dict = {"reference": reference}
    try:
        carol = Api(stack, "carol")
        family = open_case(carol, reference, person="Kim Killed")
        seen["flag"], _looks = raise_repeat_flag(carol, family)
        eventually(lambda: stack.smtp.held, "the worker to be sending the flag's email", 30, stack.logs)
        stack.worker.kill()
        seen["killed_at"] = time.monotonic()
        seen["held"] = list(stack.smtp.held)
        seen["mails_at_kill"] = stack.smtp.mails(containing=reference)
    finally:
        stack.smtp.release()
    stack.start_worker()
    return seen


def test_a_worker_killed_mid_send_leaves_nothing_sent_and_a_new_worker_starts(stack, worker_killed_mid_send):
    seen = worker_killed_mid_send
    assert seen["held"], "the worker was not sending when it was killed"
    assert seen["mails_at_kill"] == []
    assert stack.worker.running()
    assert stack.wait_healthy(30)["status"] == "ok"


def test_a_request_whose_database_connection_is_terminated_answers_503_and_writes_nothing(stack):
    alice, audrey = Api(stack, "alice"), Api(stack, "audrey")
    family = open_case(alice, "E2E-PG-1")
    marker = f"terminated mid-request {uuid.uuid4().hex}"
    answer: dict = {}

    def post_look() -> None:
        answer["response"] = alice.http.post(
            "/api/v1/viewings/", json=look_body(family, family["facebook"], justification=marker)
        )

    with stack.db.admin() as admin, stack.db.admin() as locker:
        # Hold the case's row, so the look waits on it (its foreign keys), mid-transaction.
        with locker.transaction():
            locker.execute("SELECT id FROM cases_case WHERE id = %s FOR UPDATE", [family["case"]["id"]])
            request = threading.Thread(target=post_look)
            request.start()
            waiting = eventually(
                lambda: admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND usename = %s AND wait_event_type = 'Lock'",
                    [stack.db.name, stack.db.app],
                ).fetchall(),
                "the look to wait on the case's row",
                20,
                stack.logs,
                step=0.1,
            )
            for (pid,) in waiting:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            request.join(30)
    assert not request.is_alive(), "the request did not end"

    response = answer["response"]
    body = expect(response, 503)
    assert body["code"] == "service_unavailable"
    # Nothing half-written: no viewing, and no audit event of that request.
    listed = alice.get("/api/v1/viewings/", case=family["case"]["id"])["results"]
    assert [v for v in listed if v["justification"] == marker] == []
    events = audrey.get("/api/v1/audit/events/", case=family["case"]["id"], limit=1000)["results"]
    assert [e for e in events if e["request_id"] == response.headers["X-Request-ID"]] == []
    # The next request succeeds (on a new connection), and the look is recorded once.
    again = look(alice, family, family["facebook"], justification=marker)
    listed = alice.get("/api/v1/viewings/", case=family["case"]["id"])["results"]
    assert [v["id"] for v in listed if v["justification"] == marker] == [again["id"]]


def test_after_every_connection_of_the_runtime_role_is_terminated_requests_and_the_audit_log_carry_on(stack):
    alice, audrey = Api(stack, "alice"), Api(stack, "audrey")
    family = open_case(alice, "E2E-PG-2")
    before = audrey.get("/api/v1/audit/checkpoint/")["tree_size"]
    with stack.db.admin() as admin:
        terminated = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND usename = %s",
            [stack.db.name, stack.db.app],
        ).fetchall()
    assert terminated, "the runtime role had no connection to terminate"

    # Enough requests for both gunicorn workers: each finds its connection gone and makes
    # a new one (the health check before reuse), so none fails.
    statuses = [alice.http.post("/api/v1/viewings/", json=look_body(family, family["facebook"])).status_code
                for _ in range(6)]  # fmt: skip
    assert statuses == [201] * 6
    # The worker and beat reconnect too: the new events are sequenced and signed.
    eventually(
        lambda: audrey.get("/api/v1/audit/checkpoint/")["tree_size"] > before + 6,
        "a checkpoint covering the new events",
        45,
        stack.logs,
    )


# --- late: what the faults set going, checked once the periodic resend has had its time ---


def _exactly_one_each(stack, reference: str, officers: list[str], since: float) -> None:
    remaining = RESEND_DEADLINE_SECONDS - (time.monotonic() - since)
    for officer in officers:
        eventually(
            lambda officer=officer: mails_to(stack, officer, f"case {reference}"),
            f"the flag's email on case {reference} to {officer}",
            max(remaining, 5),
            stack.logs,
            step=1,
        )
    for officer in officers:
        mails = mails_to(stack, officer, f"case {reference}")
        assert len(mails) == 1, [m.subject for m in mails]


@pytest.mark.late
def test_the_emails_owed_while_redis_was_down_arrive_once_it_is_back_and_only_once(stack, redis_outage):
    assert redis_outage["sign_in"] is not None
    _exactly_one_each(stack, "E2E-REDIS-1", ["olivia", "oscar"], redis_outage["redis_back_at"])


@pytest.mark.late
def test_the_email_whose_worker_was_killed_mid_send_is_sent_by_the_next_worker_and_only_once(
    stack, worker_killed_mid_send
):
    flag = worker_killed_mid_send["flag"]
    _exactly_one_each(
        stack, worker_killed_mid_send["reference"], sorted(flag["routed_to"]), worker_killed_mid_send["killed_at"]
    )


@pytest.mark.late
def test_every_email_sent_is_recorded_once_and_none_went_twice(stack):
    """Across the whole run: each notification's sending is recorded once, and the SMTP
    sink took exactly as many emails as were recorded sent."""
    audrey = Api(stack, "audrey")

    def sent_events() -> list[dict]:
        events = audrey.get("/api/v1/audit/events/", action="notification.sent", limit=1000)["results"]
        return events

    def settled():
        events = sent_events()
        return len(events) == len(stack.smtp.mails()) and events

    events = eventually(settled, "every accepted email to be recorded sent", 30, stack.logs)
    targets = [e["target_id"] for e in events]
    assert len(targets) == len(set(targets)), "a notification was recorded sent twice"
    received = [(tuple(m.rcpt_tos), m.subject) for m in stack.smtp.mails()]
    assert len(received) == len(events)
