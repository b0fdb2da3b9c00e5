"""Who is emailed about an authorisation, through the notifications outbox: a submission
reaches the officers who may decide it (never one who works on the case, never the
applicant; only the senior officer when the grant needs them); a decision, a magistrate's
outcome, a cancellation and an expiry reach the applicant and the officers concerned,
never the one who acted. Every email links to the authorisation's page on SITE_URL.
Tasks run in-process."""

import logging
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from authorisations import services, tasks
from authorisations.models import Authorisation
from cases.models import Case
from detection.models import Notification
from tests.authorisations.conftest import CANCELLATION, GRANT, as_user, clock
from tests.factories import UserFactory

SITE = "https://evidence.council.example"


@pytest.fixture(autouse=True)
def eager_tasks_and_site(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True
    settings.SITE_URL = SITE


@pytest.fixture
def nora(north):
    """A RIPA officer in North, the team that owns the case: involved, never asked to decide."""
    return UserFactory(username="nora", role="ripa_officer", teams=[north])


@pytest.fixture
def rita(south):
    """A RIPA officer in South: not involved in North's case."""
    return UserFactory(username="rita", role="ripa_officer", teams=[south])


@pytest.fixture
def gone(db):
    return UserFactory(username="gone", role="ripa_officer", is_active=False)


@pytest.fixture
def officers(olivia, sam, nora, rita, gone, bob, audrey):
    return {"olivia": olivia, "sam": sam, "nora": nora, "rita": rita}


@pytest.fixture
def sent(django_capture_on_commit_callbacks):
    """Run ``action`` and send what it queued after commit; the emails, by recipient's address."""

    def go(action):
        mail.outbox.clear()
        with django_capture_on_commit_callbacks(execute=True):
            result = action()
        return result, {address: message for message in mail.outbox for address in message.to}

    return go


def addressees(emails) -> list[str]:
    return sorted(address.split("@")[0] for address in emails)


def assert_about(message, authorisation):
    assert message.subject.startswith(f"[{authorisation.urn}] ")
    assert f"{SITE}/authorisations/{authorisation.pk}/" in message.body
    assert "/api/v1/" not in message.body
    assert "Jane" not in message.subject + message.body  # no names of people under surveillance


# --- Submitted ------------------------------------------------------------------------------------


def test_a_submitted_application_reaches_every_officer_who_may_decide_it_and_nobody_else(walk, officers, sent):
    authorisation, emails = sent(lambda: walk("submitted", type="directed_surveillance"))
    assert addressees(emails) == ["olivia", "rita", "sam"]  # not nora (North), alice, bob, audrey or gone
    for message in emails.values():
        assert_about(message, authorisation)
        assert "please decide" in message.subject
    event = AuditEvent.objects.get(action="authorisation.submit")
    assert event.payload["notified"] == ["olivia", "rita", "sam"]


def test_an_application_that_needs_the_senior_officer_reaches_only_them(walk, officers, sent):
    authorisation, emails = sent(lambda: walk("submitted", confidential_information_likely=True))
    assert addressees(emails) == ["sam"]
    assert "needs the senior officer" in emails["sam@council.example"].body
    assert_about(emails["sam@council.example"], authorisation)


def test_when_nobody_may_decide_the_submission_still_succeeds_and_a_warning_is_logged(
    walk, sam, nora, north, sent, caplog
):
    sam.teams.add(north)  # the only senior officer works on the case
    with caplog.at_level(logging.WARNING, logger="authorisations.notifications"):
        authorisation, emails = sent(lambda: walk("submitted", confidential_information_likely=True))
    assert authorisation.status == "submitted" and emails == {}
    assert "no active officer may decide it" in caplog.text
    assert AuditEvent.objects.get(action="authorisation.submit").payload["notified"] == []


# --- Decided ----------------------------------------------------------------------------------------


def test_a_grant_reaches_the_applicant_and_the_other_officers_but_not_the_one_who_granted(walk, officers, sent):
    authorisation = walk("submitted", type="directed_surveillance")
    _, emails = sent(
        lambda: services.authorisation_grant(
            ctx=as_user(officers["olivia"]), authorisation=authorisation, review_interval_days=28, **GRANT
        )
    )
    assert addressees(emails) == ["alice", "rita", "sam"]
    for message in emails.values():
        assert_about(message, authorisation)
        assert "Application granted" in message.subject
        assert "awaits a magistrate's approval" in message.body


def test_a_refusal_reaches_the_applicant(walk, officers, sent):
    authorisation = walk("submitted")
    _, emails = sent(
        lambda: services.authorisation_refuse(
            ctx=as_user(officers["rita"]),
            authorisation=authorisation,
            officer_grade="Solicitor",
            statement="Not proportionate.",
        )
    )
    assert addressees(emails) == ["alice", "olivia", "sam"]
    assert "Application refused" in emails["alice@council.example"].subject


def test_a_magistrate_s_outcome_reaches_the_applicant_and_the_granting_officer(walk, officers, sent):
    authorisation = walk("awaiting_judicial_approval", type="directed_surveillance")
    _, emails = sent(
        lambda: services.authorisation_record_judicial_approval(
            ctx=as_user(officers["sam"]),
            authorisation=authorisation,
            court="Leeds Magistrates' Court",
            justice="J. Smith JP",
            decided_at=timezone.now(),
            outcome="approved",
        )
    )
    assert addressees(emails) == ["alice", "olivia"]  # not sam, who recorded it; not rita
    for message in emails.values():
        assert_about(message, authorisation)
        assert "Magistrate approved the grant" in message.subject


def test_a_cancellation_reaches_the_applicant_and_the_granting_officer(walk, officers, sent):
    authorisation = walk("in_force")
    _, emails = sent(
        lambda: services.authorisation_cancel(
            ctx=as_user(officers["sam"]),
            authorisation=authorisation,
            cancellation=services.Cancellation(**CANCELLATION, staff_told_to_stop_at=timezone.now()),
        )
    )
    assert addressees(emails) == ["alice", "olivia"]
    assert "Cancelled" in emails["alice@council.example"].subject


def test_an_expiry_reaches_the_applicant_and_the_granting_officer(walk, officers, sent):
    authorisation = walk("in_force")
    with clock(authorisation.expires_at + timedelta(hours=1)):
        expired, emails = sent(tasks.expire_due)
    assert expired == 1
    assert addressees(emails) == ["alice", "olivia"]
    assert_about(emails["olivia@council.example"], authorisation)
    assert "Expired" in emails["olivia@council.example"].subject


def test_a_review_due_reaches_the_applicant_and_the_granting_officer(walk, officers, sent):
    authorisation = walk("in_force")
    with clock(authorisation.next_review_due + timedelta(hours=1)):
        reminded, emails = sent(tasks.send_reminders)
    assert reminded == 1
    assert addressees(emails) == ["alice", "olivia"]
    assert "Review overdue" in emails["alice@council.example"].subject
    assert_about(emails["alice@council.example"], authorisation)


# --- People who cannot be reached, and hostile text -------------------------------------------------


def test_an_officer_without_an_email_address_breaks_nothing_and_leaves_a_trace(walk, officers, sent, caplog):
    rita = officers["rita"]
    rita.email = ""
    rita.save()
    with caplog.at_level(logging.WARNING):
        authorisation, emails = sent(lambda: walk("submitted"))
    assert authorisation.status == "submitted"
    assert addressees(emails) == ["olivia", "sam"]
    [unsent] = Notification.objects.filter(recipient=rita, authorisation=authorisation)
    assert unsent.status == "pending" and unsent.last_error == "the recipient has no email address"
    failed = AuditEvent.objects.get(action="notification.failed", target_id=str(unsent.pk))
    assert failed.payload["recipient"] == "rita" and failed.payload["will_retry"] is False
    assert failed.case_id == authorisation.case_id
    assert "rita" in caplog.text and "no email address" in caplog.text

    # Once she has an address, the resend job sends what she was owed.
    rita.email = "rita@council.example"
    rita.save()
    from detection import tasks as detection_tasks

    with clock(timezone.now() + timedelta(minutes=20)):
        _, emails = sent(detection_tasks.resend_pending_notifications)
    assert "rita@council.example" in emails


def test_control_characters_in_a_case_reference_do_not_reach_the_email(walk, officers, north_case, sent):
    Case.objects.filter(pk=north_case.pk).update(reference="N-1\r\nBcc: x@evil.example\x1b[31m\u202e")
    authorisation, emails = sent(lambda: walk("submitted"))
    message = emails["olivia@council.example"]
    for text in (message.subject, message.body):
        assert not any(ch in text for ch in "\r\x1b\u202e")
    assert "\n" not in message.subject
    assert message.to == ["olivia@council.example"] and not message.bcc
    assert Authorisation.objects.get(pk=authorisation.pk).status == "submitted"


@pytest.mark.parametrize("grave", [False, True])
def test_those_asked_to_decide_are_exactly_those_the_permissions_let_decide(walk, officers, alice, grave):
    from accounts.models import User
    from authorisations.notifications import may_decide
    from authorisations.permissions import why_cannot_decide, why_needs_senior_officer

    if grave:
        officers["sam"].teams.add(alice.teams.get())  # the only SRO works on the case: nobody may grant it
    authorisation = walk("submitted", confidential_information_likely=grave)
    allowed = {
        user.username
        for user in User.objects.filter(is_active=True)
        if why_cannot_decide(user, authorisation) is None and why_needs_senior_officer(user, authorisation) is None
    }
    assert {officer.username for officer in may_decide(authorisation)} == allowed
    assert allowed == (set() if grave else {"olivia", "rita", "sam"})
