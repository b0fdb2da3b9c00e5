"""Sign-in throttling: failures counted per username and per client address, shared by the
token API and the session sign-in page; refusals answer 429 without checking the password
and are audited."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts import throttling
from accounts.models import ApiToken
from audit.models import AuditEvent
from tests.factories import UserFactory

GOOD = "correct-horse-battery"


def login(username, password=GOOD, *, ip="127.0.0.1"):
    return APIClient().post(
        "/api/v1/auth/token/", {"username": username, "password": password}, format="json", REMOTE_ADDR=ip
    )


def session_login(username, password=GOOD, *, ip="127.0.0.1"):
    return Client().post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.fixture
def clock(monkeypatch):
    """The throttle's clock, moved by hand."""

    class Clock:
        now = 1_900_000_000.0

        def __call__(self):
            return self.now

        def advance(self, seconds):
            self.now += seconds

    clock = Clock()
    monkeypatch.setattr(throttling, "_now", clock)
    return clock


@pytest.fixture
def password_checks(monkeypatch):
    """Every username whose password the service checked."""
    from accounts import services

    checked = []
    real = services.authenticate

    def spy(**credentials):
        checked.append(credentials["username"])
        return real(**credentials)

    monkeypatch.setattr(services, "authenticate", spy)
    return checked


def test_the_sixth_failure_for_a_username_is_refused_with_429_without_checking_the_password(
    alice, settings, password_checks
):
    assert (settings.LOGIN_FAILURES_PER_USER, settings.LOGIN_FAILURE_WINDOW_SECONDS) == (5, 900)
    for _ in range(5):
        assert login("alice", "wrong-guess").status_code == 401
    password_checks.clear()

    response = login("alice")  # even the right password

    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "login_throttled" and body["request_id"] == response["X-Request-ID"]
    assert set(body) >= {"code", "message", "fields", "request_id"}
    assert 1 <= int(response["Retry-After"]) <= 900 + 60
    assert password_checks == []
    assert not ApiToken.objects.exists()
    event = AuditEvent.objects.order_by("-id").first()
    assert (event.action, event.outcome, event.actor_id) == ("auth.login_throttled", "denied", None)
    assert event.payload == {
        "username": "alice",
        "method": "token",
        "limit": "user",
        "retry_after": int(response["Retry-After"]),
    }
    # Each failure before it was audited as usual, and the refusal once.
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 5
    assert AuditEvent.objects.filter(action="auth.login_throttled").count() == 1


def test_a_username_is_counted_whatever_its_case(alice):
    for guess in ["alice", "ALICE", "Alice", "aLiCe", "alicE"]:
        assert login(guess, "wrong-guess").status_code == 401
    assert login("alice").status_code == 429


def test_the_session_sign_in_page_shares_the_counters_and_refuses_with_429(alice, password_checks):
    for _ in range(3):
        assert login("alice", "wrong-guess").status_code == 401
    for _ in range(2):
        assert session_login("alice", "wrong-guess").status_code == 200  # the form again, with an error
    password_checks.clear()

    page = session_login("alice")

    assert page.status_code == 429
    assert int(page["Retry-After"]) >= 1
    assert "Too many failed sign-in attempts" in page.content.decode()
    assert password_checks == []
    assert "_auth_user_id" not in page.wsgi_request.session
    event = AuditEvent.objects.order_by("-id").first()
    assert (event.action, event.outcome, event.payload["method"], event.payload["limit"]) == (
        "auth.login_throttled",
        "denied",
        "session",
        "user",
    )
    # And the token API refuses too.
    assert login("alice").status_code == 429


def test_failures_from_one_address_across_many_usernames_are_throttled_per_address(alice, settings):
    assert settings.LOGIN_FAILURES_PER_IP == 20
    for n in range(20):
        assert login(f"someone{n}", "wrong-guess", ip="198.51.100.7").status_code == 401

    refused = login("alice", ip="198.51.100.7")

    assert refused.status_code == 429
    assert AuditEvent.objects.order_by("-id").first().payload["limit"] == "ip"
    # Another address is not affected.
    assert login("alice", ip="198.51.100.8").status_code == 200


def test_an_ipv6_client_is_counted_by_its_64_network(alice, settings):
    settings.LOGIN_FAILURES_PER_IP = 3
    for n in range(3):
        assert login(f"someone{n}", "wrong-guess", ip=f"2001:db8:1:2::{n + 1}").status_code == 401
    assert login("alice", ip="2001:db8:1:2:ffff::9").status_code == 429
    assert login("alice", ip="2001:db8:1:3::1").status_code == 200


def test_signing_in_successfully_does_not_let_an_attacker_reset_the_address_counter(alice, bob, settings):
    """The attacker knows bob's password and alternates it with guesses at other accounts."""
    settings.LOGIN_FAILURES_PER_IP = 4
    for n in range(4):
        assert login("bob", ip="203.0.113.5").status_code == 200
        assert login(f"victim{n}", "guess", ip="203.0.113.5").status_code == 401

    assert login("victim9", "guess", ip="203.0.113.5").status_code == 429
    assert login("bob", ip="203.0.113.5").status_code == 429


def test_successful_sign_ins_are_not_counted_as_failures(alice, settings):
    settings.LOGIN_FAILURES_PER_IP = 3
    for _ in range(10):
        assert login("alice").status_code == 200
    for n in range(3):
        assert login(f"someone{n}", "wrong-guess").status_code == 401
    assert login("alice").status_code == 429


def test_a_successful_sign_in_starts_the_usernames_count_afresh(alice):
    for _ in range(4):
        assert login("alice", "wrong-guess").status_code == 401
    assert login("alice").status_code == 200
    for _ in range(5):
        assert login("alice", "wrong-guess").status_code == 401
    assert login("alice", "wrong-guess").status_code == 429


def test_the_window_slides_and_retry_after_says_when_to_come_back(alice, clock):
    for _ in range(5):
        assert login("alice", "wrong-guess").status_code == 401
        clock.advance(60)  # one guess a minute
    refused = login("alice")
    assert refused.status_code == 429
    wait = int(refused["Retry-After"])
    # The oldest failure leaves the 15-minute window about 10 minutes from now.
    assert 9 * 60 <= wait <= 11 * 60

    clock.advance(wait - 2)
    assert login("alice").status_code == 429  # refusals are not counted, so waiting is enough
    clock.advance(2)
    assert login("alice").status_code == 200


def test_failures_older_than_the_window_are_forgotten(alice, clock, settings):
    for _ in range(5):
        assert login("alice", "wrong-guess").status_code == 401
    assert login("alice").status_code == 429
    clock.advance(settings.LOGIN_FAILURE_WINDOW_SECONDS + settings.LOGIN_FAILURE_WINDOW_SECONDS / throttling.SLOTS)
    assert login("alice").status_code == 200


def test_concurrent_attempts_cannot_all_slip_under_the_limit(db, settings):
    """Each attempt reserves its failure before the password is checked: ten attempts in
    flight at once for one username, none yet answered, let only five through."""
    attempts = [throttling.login_attempt_reserve(username="alice", ip=f"192.0.2.{n}") for n in range(10)]
    assert [attempt.refused for attempt in attempts] == [False] * 5 + [True] * 5


def test_a_limit_of_zero_switches_that_limit_off(alice, settings):
    settings.LOGIN_FAILURES_PER_USER = 0
    settings.LOGIN_FAILURES_PER_IP = 0
    for _ in range(30):
        assert login("alice", "wrong-guess").status_code == 401
    assert login("alice").status_code == 200


def test_an_unexpected_error_while_checking_the_password_is_not_counted_as_a_failure(alice, monkeypatch, settings):
    from accounts import services

    settings.LOGIN_FAILURES_PER_USER = 1

    def broken(**credentials):
        raise RuntimeError("backend down")

    monkeypatch.setattr(services, "authenticate", broken)
    client = APIClient()
    client.raise_request_exception = False
    assert client.post("/api/v1/auth/token/", {"username": "alice", "password": GOOD}, format="json").status_code == 500
    monkeypatch.undo()
    assert login("alice").status_code == 200


def test_the_schema_documents_the_429_of_the_token_endpoint(db):
    schema = APIClient().get("/api/v1/schema/?format=json").json()
    responses = schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]
    assert responses["429"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert "401" in responses


def test_an_inactive_user_fails_like_a_wrong_password_and_is_counted(db):
    UserFactory(username="gone", is_active=False)
    for _ in range(5):
        assert login("gone").status_code == 401
    assert login("gone").status_code == 429
