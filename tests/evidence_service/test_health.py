"""/healthz tells the truth: 503 naming the reason when nothing sequences the audit log, or
(with a broker) when the periodic tasks beat sends are not being run."""

from datetime import timedelta

import pytest
import redis
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from audit import health
from audit import log as audit_log
from audit.models import AuditEvent, AuditLogState, Heartbeat
from audit.services import AuditContext, audit_record
from audit.tasks import audit_integrate


def _health():
    response = APIClient().get("/healthz")
    return response.status_code, response.json()


def _event(ago_seconds: float, **fields) -> AuditEvent:
    return AuditEvent.objects.create(
        occurred_at=timezone.now() - timedelta(seconds=ago_seconds), action="case.read", commitment_salt=b"s", **fields
    )


@pytest.fixture
def no_broker(settings):
    settings.REDIS_URL = None


@pytest.fixture
def broker(settings, monkeypatch):
    """A broker configured; its ping answered here (Redis itself is not what is tested)."""
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"

    class Answering:
        def ping(self):
            return True

    monkeypatch.setattr(redis.Redis, "from_url", classmethod(lambda cls, *args, **kwargs: Answering()))


@pytest.fixture
def signing_key_in_tmp(settings, tmp_path):
    from audit import keys

    settings.DATA_DIR = tmp_path
    settings.AUDIT_SIGNING_KEY_PATH = tmp_path / "audit-signing.key"
    keys.signer.cache_clear()
    yield
    keys.signer.cache_clear()


def test_a_service_whose_log_is_sequenced_is_healthy(db, no_broker):
    with transaction.atomic():
        audit_record(ctx=AuditContext.command("test"), action="case.read")  # just written: not late
    assert _health() == (200, {"status": "ok", "database": "ok", "redis": "not_configured"})


def test_an_event_waiting_longer_than_the_limit_makes_it_unavailable_naming_why(db, no_broker, signing_key_in_tmp):
    _event(ago_seconds=90)
    status, body = _health()
    assert status == 503
    assert body["status"] == "unavailable" and body["reasons"] == ["audit_sequencing_stalled"]
    assert body["audit_sequencing"]["oldest_unsequenced_seconds"] >= 90
    assert body["audit_sequencing"]["max_lag_seconds"] == 60
    audit_log.integrate()  # sequenced: healthy again
    assert _health()[0] == 200


def test_the_limit_is_a_setting(db, no_broker, settings):
    _event(ago_seconds=20)
    assert _health()[0] == 200
    settings.AUDIT_HEALTH_MAX_LAG_SECONDS = 10
    assert _health()[1]["reasons"] == ["audit_sequencing_stalled"]


def test_with_a_broker_a_beat_that_never_ran_is_reported_once_the_limit_has_passed(db, broker):
    assert _health()[0] == 200  # a fresh deployment: beat has a minute to show itself...
    waiting_since = Heartbeat.objects.get(name="beat").at  # ...counted from the first question
    assert _health()[0] == 200 and Heartbeat.objects.get(name="beat").at == waiting_since
    Heartbeat.objects.update(at=timezone.now() - timedelta(seconds=61))
    status, body = _health()
    assert status == 503 and body["reasons"] == ["beat_stalled"] and body["redis"] == "ok"
    assert body["audit_sequencing"]["beat_seconds"] >= 61


def test_the_periodic_audit_task_is_the_heartbeat(db, broker, signing_key_in_tmp):
    Heartbeat.objects.create(name="beat", at=timezone.now() - timedelta(days=1))
    assert _health()[1]["reasons"] == ["beat_stalled"]
    audit_integrate.apply()  # what beat sends every 2 seconds, run here as a worker would
    assert Heartbeat.objects.get(name="beat").at > timezone.now() - timedelta(seconds=5)
    assert _health()[0] == 200
    Heartbeat.objects.update(at=timezone.now() - timedelta(seconds=120))  # beat (or every worker) stopped
    status, body = _health()
    assert status == 503 and body["reasons"] == ["beat_stalled"]


def test_without_a_broker_there_is_no_beat_to_wait_for(db, no_broker):
    Heartbeat.objects.create(name="beat", at=timezone.now() - timedelta(days=1))
    assert _health()[0] == 200


def test_an_event_that_committed_late_and_was_left_unsequenced_is_found(db, broker, signing_key_in_tmp):
    """Below the highest sequenced event: the sweep's business, found while beat runs."""
    _event(ago_seconds=0, id=1000)
    audit_log.integrate()
    assert AuditLogState.objects.get(pk=1).max_event_id == 1000
    health.record_beat()
    late = _event(ago_seconds=90, id=500)
    assert _health()[1]["reasons"] == ["audit_sequencing_stalled"]
    audit_log.integrate(sweep=True)
    assert AuditEvent.objects.get(pk=late.pk).leaf is not None
    assert _health()[0] == 200


def test_every_reason_is_named_at_once(db, settings, signing_key_in_tmp):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    Heartbeat.objects.create(name="beat", at=timezone.now() - timedelta(days=1))
    _event(ago_seconds=300)
    status, body = _health()
    assert status == 503
    assert body["reasons"] == ["redis_unavailable", "audit_sequencing_stalled", "beat_stalled"]


def test_the_check_is_cheap_whatever_the_size_of_the_log(db, broker, signing_key_in_tmp, django_assert_max_num_queries):
    for _ in range(50):
        _event(ago_seconds=0)
    audit_log.integrate(sweep=True)
    health.record_beat()
    with django_assert_max_num_queries(5):  # SELECT 1, heartbeat, state, two single-row reads
        assert _health()[0] == 200
