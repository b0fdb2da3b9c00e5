"""Sign-in throttling: failures counted per (username, address), per address and per
username, in the database; shared by the token API and the session sign-in page; refusals
answer 429 without checking the password and are audited, naming the limit."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from rest_framework.test import APIClient

from accounts import throttling
from accounts.models import ApiToken, LoginAddress, LoginFailure
from audit.models import AuditEvent
from tests.factories import UserFactory
from tlog.note import generate_signer_key

GOOD = "correct-horse-battery"
ROOT = Path(__file__).resolve().parents[2]


def login(username, password=GOOD, *, ip="127.0.0.1", **extra):
    return APIClient().post(
        "/api/v1/auth/token/", {"username": username, "password": password}, format="json", REMOTE_ADDR=ip, **extra
    )


def session_login(username, password=GOOD, *, ip="127.0.0.1"):
    return Client().post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def last_refusal():
    return AuditEvent.objects.filter(action="auth.login_throttled").order_by("-id").first()


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
    monkeypatch.setattr(throttling, "_last_prune", float("-inf"))
    return clock


@pytest.fixture
def redis_down(settings):
    """The cache is a Redis on a loopback port where nothing listens (one just freed, so no
    other Redis on this machine can be there)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    with pytest.raises(redis.exceptions.ConnectionError):
        cache.set("probe", 1)


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


def test_the_defaults_are_five_per_username_and_address_twenty_per_address_and_a_hundred_per_username(settings):
    assert (
        settings.LOGIN_FAILURES_PER_USER_AND_IP,
        settings.LOGIN_FAILURES_PER_IP,
        settings.LOGIN_FAILURES_PER_USER,
        settings.LOGIN_FAILURE_WINDOW_SECONDS,
        settings.LOGIN_KNOWN_ADDRESS_DAYS,
    ) == (5, 20, 100, 900, 30)


def test_the_sixth_failure_for_a_username_from_one_address_is_refused_with_429_without_checking_the_password(
    alice, password_checks
):
    for _ in range(5):
        assert login("alice", "wrong-guess").status_code == 401
    password_checks.clear()

    response = login("alice")  # even the right password

    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "login_throttled" and body["request_id"] == response["X-Request-ID"]
    assert set(body) >= {"code", "message", "fields", "request_id"}
    assert 1 <= int(response["Retry-After"]) <= 900
    assert password_checks == []
    assert not ApiToken.objects.exists()
    event = last_refusal()
    assert (event.action, event.outcome, event.actor_id, event.target_id) == (
        "auth.login_throttled",
        "denied",
        None,
        "",
    )
    assert event.payload == {
        "username": "alice",
        "method": "token",
        "limit": "user_and_ip",
        "retry_after": int(response["Retry-After"]),
    }
    # Each failure before it was audited as usual, and the refusal once.
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 5
    assert AuditEvent.objects.filter(action="auth.login_throttled").count() == 1


def test_a_stranger_guessing_from_another_address_cannot_lock_the_officer_out_of_her_own(olivia):
    for _ in range(40):
        login("olivia", "guess", ip="198.51.100.66")
        session_login("olivia", "guess", ip="198.51.100.66")
    assert login("olivia", "guess", ip="198.51.100.66").status_code == 429
    assert last_refusal().payload["limit"] == "user_and_ip"
    # Only the first five counted: the refusals after them are not failures.
    assert LoginFailure.objects.count() == 5

    assert login("olivia", ip="192.0.2.10").status_code == 200
    assert session_login("olivia", ip="192.0.2.10").status_code == 302
    # Her own mistakes are counted for her address, not added to the stranger's.
    for _ in range(4):
        assert login("olivia", "typo", ip="192.0.2.10").status_code == 401
    assert login("olivia", ip="192.0.2.10").status_code == 200


def test_a_correct_password_from_an_address_not_throttled_works_while_another_is_throttled(alice):
    for _ in range(5):
        assert session_login("alice", "wrong-guess", ip="203.0.113.1").status_code == 200
    assert session_login("alice", ip="203.0.113.1").status_code == 429
    assert login("alice", ip="203.0.113.2").status_code == 200
    assert session_login("alice", ip="203.0.113.1").status_code == 429


def test_a_username_is_counted_whatever_its_case_space_or_unicode_form(db):
    UserFactory(username="olivia")
    guesses = ["olivia", "Olivia", "OLIVIA", " olivia", "olivia\t", "ｏｌｉｖｉａ"]
    for guess in guesses[:3]:
        assert login(guess, "wrong-guess").status_code == 401
    for guess in guesses[3:5]:
        assert session_login(guess, "wrong-guess").status_code == 200
    # The sixth variation, though the sign-in form would take it for olivia.
    page = session_login(guesses[5])
    assert page.status_code == 429
    assert login(" Olivia ").status_code == 429
    assert LoginFailure.objects.values("username_key").distinct().count() == 1


def test_the_session_sign_in_page_shares_the_counts_and_refuses_with_429(alice, password_checks):
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
    event = last_refusal()
    assert (event.action, event.outcome, event.payload["method"], event.payload["limit"]) == (
        "auth.login_throttled",
        "denied",
        "session",
        "user_and_ip",
    )
    # And the token API refuses too.
    assert login("alice").status_code == 429


def test_failures_from_one_address_across_many_usernames_are_throttled_per_address(alice):
    for n in range(20):
        assert login(f"someone{n}", "wrong-guess", ip="198.51.100.7").status_code == 401

    refused = login("alice", ip="198.51.100.7")

    assert refused.status_code == 429
    assert last_refusal().payload["limit"] == "ip"
    assert session_login("alice", ip="198.51.100.7").status_code == 429
    # Another address is not affected.
    assert login("alice", ip="198.51.100.8").status_code == 200


def test_a_distributed_guess_at_one_username_is_stopped_by_the_per_username_limit(olivia):
    """A hundred failures from twenty addresses, five each (every address within its own
    limits): the username's limit then refuses every address olivia has not signed in from."""
    for n in range(20):
        for _ in range(5):
            assert login("olivia", "guess", ip=f"198.18.0.{n}").status_code == 401

    assert login("olivia", ip="198.18.1.1").status_code == 429
    assert last_refusal().payload["limit"] == "user"
    assert session_login("olivia", "guess", ip="198.18.1.2").status_code == 429
    # Other usernames are not affected.
    UserFactory(username="oscar")
    assert login("oscar", ip="198.18.1.1").status_code == 200


def test_the_per_username_limit_is_not_applied_where_the_user_has_signed_in_before(olivia, settings):
    settings.LOGIN_FAILURES_PER_USER = 10
    assert login("olivia", ip="192.0.2.10").status_code == 200  # her office
    for n in range(5):
        for _ in range(2):
            assert login("olivia", "guess", ip=f"198.18.0.{n}").status_code == 401
    assert login("olivia", "guess", ip="198.18.9.9").status_code == 429

    assert login("olivia", ip="192.0.2.10").status_code == 200
    assert session_login("olivia", ip="192.0.2.10").status_code == 302
    # Her office is still held to the limit of one username from one address.
    for _ in range(5):
        assert login("olivia", "typo", ip="192.0.2.10").status_code == 401
    assert login("olivia", ip="192.0.2.10").status_code == 429
    assert last_refusal().payload["limit"] == "user_and_ip"


def test_an_address_is_known_only_for_login_known_address_days(olivia, settings, clock):
    settings.LOGIN_FAILURES_PER_USER = 3
    settings.LOGIN_KNOWN_ADDRESS_DAYS = 2
    assert login("olivia", ip="192.0.2.10").status_code == 200
    clock.advance(2 * 86400 + 1)
    for n in range(3):
        assert login("olivia", "guess", ip=f"198.18.0.{n}").status_code == 401
    assert login("olivia", ip="192.0.2.10").status_code == 429
    assert last_refusal().payload["limit"] == "user"


def test_without_known_addresses_the_per_username_limit_applies_everywhere(olivia, settings):
    settings.LOGIN_FAILURES_PER_USER = 3
    settings.LOGIN_KNOWN_ADDRESS_DAYS = 0
    assert login("olivia", ip="192.0.2.10").status_code == 200
    assert not LoginAddress.objects.exists()
    for n in range(3):
        assert login("olivia", "guess", ip=f"198.18.0.{n}").status_code == 401
    assert login("olivia", ip="192.0.2.10").status_code == 429


def test_a_refusal_says_nothing_about_whether_the_username_exists(alice):
    for username in ("alice", "nobody"):
        for _ in range(5):
            assert login(username, "wrong-guess", ip="203.0.113.40").status_code == 401
    answers = [login(username, "wrong-guess", ip="203.0.113.40") for username in ("alice", "nobody")]

    assert [answer.status_code for answer in answers] == [429, 429]
    bodies = [{k: v for k, v in answer.json().items() if k != "request_id"} for answer in answers]
    assert bodies[0] == bodies[1]
    assert answers[0]["Retry-After"] == answers[1]["Retry-After"]
    events = AuditEvent.objects.filter(action="auth.login_throttled").order_by("id")
    assert [(e.target_type, e.target_id, e.actor_id, e.payload["username"]) for e in events] == [
        ("user", "", None, "alice"),
        ("user", "", None, "nobody"),
    ]


def test_every_refusal_is_audited_once_on_both_paths(alice):
    for _ in range(5):
        login("alice", "wrong-guess")
    answers = [login("alice"), session_login("alice"), login("alice", "x"), session_login("alice", "x")]
    assert [answer.status_code for answer in answers] == [429] * 4
    events = AuditEvent.objects.filter(action="auth.login_throttled").order_by("id")
    assert [(e.payload["method"], e.payload["limit"], e.outcome) for e in events] == [
        ("token", "user_and_ip", "denied"),
        ("session", "user_and_ip", "denied"),
        ("token", "user_and_ip", "denied"),
        ("session", "user_and_ip", "denied"),
    ]
    # The refusals are not also audited as failed sign-ins or as generic denied requests.
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 5
    assert not AuditEvent.objects.filter(action="request.denied").exists()


def test_a_forged_x_forwarded_for_is_ignored_without_trusted_proxies(alice, settings):
    assert settings.TRUSTED_PROXY_HOPS == 0
    for n in range(5):
        assert login("alice", "wrong-guess", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").status_code == 401
    assert login("alice", HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429


def test_behind_a_trusted_proxy_entries_a_client_prepends_to_x_forwarded_for_do_not_count(alice, settings):
    """One proxy: it appends the address it saw, so only the last entry is the client's."""
    settings.TRUSTED_PROXY_HOPS = 1
    for n in range(5):
        forged = f"192.0.2.{n}, 203.0.113.9"
        assert login("alice", "wrong-guess", ip="10.0.0.1", HTTP_X_FORWARDED_FOR=forged).status_code == 401
    assert login("alice", ip="10.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.77, 203.0.113.9").status_code == 429
    # Another client behind the same proxy is its own address.
    assert login("alice", ip="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.10").status_code == 200


def test_an_ipv6_client_is_counted_by_its_64_network(alice, settings):
    settings.LOGIN_FAILURES_PER_IP = 3
    for n in range(3):
        assert login(f"someone{n}", "wrong-guess", ip=f"2001:db8:1:2::{n + 1}").status_code == 401
    assert login("alice", ip="2001:db8:1:2:ffff::9").status_code == 429
    assert login("alice", ip="2001:db8:1:3::1").status_code == 200


def test_signing_in_successfully_does_not_let_an_attacker_reset_the_address_count(alice, bob, settings):
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


def test_a_successful_sign_in_starts_the_count_for_that_username_and_address_afresh(alice):
    for _ in range(4):
        assert login("alice", "wrong-guess").status_code == 401
    assert login("alice").status_code == 200
    for _ in range(5):
        assert login("alice", "wrong-guess").status_code == 401
    assert login("alice", "wrong-guess").status_code == 429


def test_a_successful_sign_in_does_not_reset_the_usernames_count_from_other_addresses(olivia, settings):
    settings.LOGIN_FAILURES_PER_USER = 6
    for n in range(5):
        assert login("olivia", "guess", ip=f"198.18.0.{n}").status_code == 401
    assert login("olivia", ip="192.0.2.10").status_code == 200
    assert login("olivia", "guess", ip="198.18.0.7").status_code == 401  # the sixth
    assert login("olivia", "guess", ip="198.18.0.8").status_code == 429


def test_the_window_slides_and_retry_after_says_when_to_come_back(alice, clock):
    for _ in range(5):
        assert login("alice", "wrong-guess").status_code == 401
        clock.advance(60)  # one guess a minute
    refused = login("alice")
    assert refused.status_code == 429
    # The oldest failure leaves the 15-minute window 10 minutes from now.
    assert int(refused["Retry-After"]) == 10 * 60

    clock.advance(10 * 60 - 1)
    assert login("alice").status_code == 429  # refusals are not counted, so waiting is enough
    clock.advance(1)
    assert login("alice").status_code == 200


def test_retry_after_is_the_longest_wait_of_the_limits_exceeded(alice, clock, settings):
    settings.LOGIN_FAILURES_PER_IP = 6
    for _ in range(5):
        assert login("alice", "wrong-guess").status_code == 401
        clock.advance(10)
    assert login("someone", "wrong-guess").status_code == 401  # the address's sixth
    clock.advance(100)
    refused = login("alice")
    assert refused.status_code == 429
    # Per username and address, the first failure must leave (in 900 - 150 s); per
    # address, the first as well: both the same wait, the more specific limit named.
    assert int(refused["Retry-After"]) == 750
    assert last_refusal().payload["limit"] == "user_and_ip"


def test_failures_older_than_the_window_are_forgotten_and_deleted(alice, clock, settings):
    for _ in range(5):
        assert login("alice", "wrong-guess").status_code == 401
    assert login("alice").status_code == 429
    assert LoginFailure.objects.count() == 5
    clock.advance(settings.LOGIN_FAILURE_WINDOW_SECONDS + throttling.PRUNE_EVERY)
    assert login("bob-does-not-exist", "x").status_code == 401
    assert LoginFailure.objects.count() == 1  # the old ones pruned, this one kept
    assert login("alice").status_code == 200


def test_concurrent_attempts_cannot_all_slip_under_the_limit(db, settings):
    """Each attempt reserves its failure before the password is checked: ten attempts in
    flight at once for one username, none yet answered, let only five through."""
    attempts = [throttling.login_attempt_reserve(username="alice", ip="192.0.2.1") for _ in range(10)]
    assert [attempt.refused for attempt in attempts] == [False] * 5 + [True] * 5
    assert {attempt.refused_scope for attempt in attempts[5:]} == {"user_and_ip"}

    settings.LOGIN_FAILURES_PER_USER = 5
    attempts = [throttling.login_attempt_reserve(username="bob", ip=f"192.0.2.{n}") for n in range(10)]
    assert [attempt.refused for attempt in attempts] == [False] * 5 + [True] * 5
    assert {attempt.refused_scope for attempt in attempts[5:]} == {"user"}


def test_a_limit_of_zero_switches_that_limit_off(alice, settings):
    settings.LOGIN_FAILURES_PER_USER_AND_IP = 0
    settings.LOGIN_FAILURES_PER_IP = 0
    settings.LOGIN_FAILURES_PER_USER = 0
    for _ in range(30):
        assert login("alice", "wrong-guess").status_code == 401
    assert login("alice").status_code == 200
    assert not LoginFailure.objects.exists()


def test_an_unexpected_error_while_checking_the_password_is_not_counted_as_a_failure(alice, monkeypatch, settings):
    from accounts import services

    settings.LOGIN_FAILURES_PER_USER_AND_IP = 1

    def broken(**credentials):
        raise RuntimeError("backend down")

    monkeypatch.setattr(services, "authenticate", broken)
    client = APIClient()
    client.raise_request_exception = False
    assert client.post("/api/v1/auth/token/", {"username": "alice", "password": GOOD}, format="json").status_code == 500
    assert not LoginFailure.objects.exists()
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


def test_with_redis_down_sign_in_works_counts_and_refuses_without_waiting(alice, redis_down):
    started = time.monotonic()
    assert login("alice").status_code == 200
    assert session_login("alice").status_code == 302
    for _ in range(3):
        assert login("alice", "wrong-guess").status_code == 401
    for _ in range(2):
        assert session_login("alice", "wrong-guess").status_code == 200
    assert login("alice").status_code == 429
    assert session_login("alice").status_code == 429
    assert login("alice", ip="192.0.2.50").status_code == 200
    elapsed = time.monotonic() - started

    assert elapsed < 5  # ten sign-ins; not one waits for Redis
    assert AuditEvent.objects.filter(action="auth.login_throttled").count() == 2


def test_the_counts_do_not_live_in_the_cache(alice):
    """Redis restarted (its keys gone) forgets nothing: the counts are in the database."""
    for _ in range(5):
        assert login("alice", "wrong-guess").status_code == 401
    cache.clear()
    assert login("alice").status_code == 429


def test_an_operator_can_forget_a_usernames_failures_and_it_is_audited(alice, capsys):
    for _ in range(5):
        assert login("alice", "wrong-guess", ip="203.0.113.1").status_code == 401
    assert login("someone", "wrong-guess", ip="203.0.113.1").status_code == 401
    assert login("alice", ip="203.0.113.1").status_code == 429

    call_command("clear_login_failures", "--username", " ALICE ")

    assert "Forgot 5 failed sign-in(s)." in capsys.readouterr().out
    event = AuditEvent.objects.get(action="auth.login_failures_cleared")
    assert (event.actor_id, event.payload) == (
        None,
        {"username": "ALICE", "address": "", "failures_cleared": 5, "via": "command:clear_login_failures"},
    )
    assert LoginFailure.objects.count() == 1  # the address's failure at another username stays
    assert login("alice", ip="203.0.113.1").status_code == 200


def test_an_operator_can_forget_an_addresss_failures(alice):
    with override_settings(LOGIN_FAILURES_PER_IP=3):
        for n in range(3):
            assert login(f"someone{n}", "wrong-guess", ip="2001:db8:5:6::1").status_code == 401
        assert login("alice", ip="2001:db8:5:6::2").status_code == 429
        call_command("clear_login_failures", "--address", "2001:db8:5:6::99")
        assert login("alice", ip="2001:db8:5:6::2").status_code == 200


@pytest.mark.parametrize(
    ("arguments", "message"),
    [([], "Name a username, an address or both."), (["--address", "not-an-ip"], "is not an IP address")],
)
def test_clearing_failures_needs_a_username_or_a_valid_address(db, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("clear_login_failures", *arguments)
    assert not AuditEvent.objects.filter(action="auth.login_failures_cleared").exists()


def _settings_with(tmp_path, **environ) -> subprocess.CompletedProcess:
    code = (
        "from evidence_service import settings as s; print(s.LOGIN_FAILURES_PER_USER_AND_IP, s.LOGIN_FAILURES_PER_IP,"
        " s.LOGIN_FAILURES_PER_USER, s.LOGIN_KNOWN_ADDRESS_DAYS, s.LOGIN_FAILURE_WINDOW_SECONDS)"
    )
    origin = "council.example/audit-log"
    env = {
        "PATH": "/usr/bin:/bin",
        "DATA_DIR": str(tmp_path),
        "SECRET_KEY": "x" * 50,
        "AUDIT_LOG_ORIGIN": origin,
        "AUDIT_SIGNING_KEY": generate_signer_key(origin).encode(),
        **environ,
    }
    return subprocess.run(  # noqa: S603 - this interpreter importing the settings module
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_the_limits_are_read_from_the_environment(tmp_path):
    result = _settings_with(
        tmp_path,
        LOGIN_FAILURES_PER_USER_AND_IP="3",
        LOGIN_FAILURES_PER_IP="50",
        LOGIN_FAILURES_PER_USER="0",
        LOGIN_KNOWN_ADDRESS_DAYS="7",
        LOGIN_FAILURE_WINDOW_SECONDS="600",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "50", "0", "7", "600"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("LOGIN_FAILURES_PER_USER_AND_IP", "-1"), ("LOGIN_FAILURES_PER_USER", "lots"), ("LOGIN_KNOWN_ADDRESS_DAYS", "-2")],
)
def test_a_malformed_limit_stops_the_service_from_starting(tmp_path, name, value):
    result = _settings_with(tmp_path, **{name: value})
    assert result.returncode != 0 and name in result.stderr
