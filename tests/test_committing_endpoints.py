"""Every state-changing endpoint, called as a client would and COMMITTED: each test here
runs with ``transaction=True``, so the request's transaction ends for real (after-commit
work runs; a service that needs a transaction but runs outside one fails, as it would in
production), and what it wrote is read back on another database connection, with its
audit event, sequenced into the log. On PostgreSQL, ``CES_TEST_RUNTIME_ROLE=1`` runs them
as the service's non-owner runtime role (tests/db_harness.py); .ci/run does.

The last test walks the URL configuration: an endpoint that accepts POST, PUT, PATCH or
DELETE and has no committing test here fails the suite."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.sessions.models import Session
from django.db import connection, connections, transaction
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django.views.generic import RedirectView

from accounts.models import ApiToken
from audit.models import AuditEvent, AuditLeaf
from audit.services import AuditContext
from authorisations import services as authorisation_services
from authorisations.models import Authorisation, AuthorisationRenewal, AuthorisationReview, JudicialApproval
from cases.models import Case, CaseSubject, Consent, Profile, Subject, Viewing
from detection.models import DetectionPolicy, Flag
from tests.factories import ConsentFactory

pytestmark = pytest.mark.django_db(transaction=True)

#: route (as in the URL configuration) -> the method its committing test sends.
COMMITTING: dict[str, str] = {}


def committing(route: str, method: str = "POST"):
    def register(test):
        COMMITTING[route] = method
        return test

    return register


@pytest.fixture(autouse=True)
def _own_data_dir(settings, tmp_path):
    """The log's witness copy of its newest checkpoint is kept in DATA_DIR, outside the
    database, which is emptied after each test: each test keeps its own."""
    settings.DATA_DIR = tmp_path


def elsewhere(read):
    """``read()`` on a database connection of its own (another thread's), so it sees only
    what was committed."""

    def run():
        try:
            return read()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def committed_event(action: str, **lookup) -> AuditEvent:
    """The one audit event of ``action`` (matching ``lookup``), as another connection sees
    it, sequenced into the log after the commit."""

    def read():
        event = AuditEvent.objects.get(action=action, **lookup)
        assert AuditLeaf.objects.filter(event_id=event.pk).exists(), f"{action} was not sequenced after commit"
        return event

    return elsewhere(read)


def viewing_payload(case, profile, **overrides):
    return {
        "case": case.pk,
        "profile": profile.pk,
        "purpose": "safeguarding_assessment",
        "justification": "Concern raised by school about a party this weekend.",
        "access_method": "logged_out_public",
        "interaction": "none",
        "information_recorded": "",
        "third_party_information": "",
        **overrides,
    }


def application_payload(case, subject, **overrides):
    return {
        "type": "non_ripa",
        "case": case.pk,
        "title": "Locating M",
        "subjects": [subject.pk],
        "platforms": ["instagram"],
        "purpose": "To find where M is living so that the court papers can be served.",
        "information_sought": "The town M now lives in.",
        "necessity": "M has left the last known address and no one will give a new one.",
        "proportionality": "Viewing is limited to public posts over four weeks.",
        "alternatives_considered": "Letters to the last address; calls to relatives.",
        "collateral_intrusion": "Friends' comments may be seen; nothing about them is recorded.",
        "confidential_information_likely": False,
        **overrides,
    }


GRANT = {"officer_grade": "Head of Service", "statement": "Necessary and proportionate.", "limits": "Public posts only"}
RIPA_DS = {
    "crime_purpose": True,
    "offence": "Child cruelty (Children and Young Persons Act 1933, s.1)",
    "offence_max_sentence_months": 120,
}


@pytest.fixture
def authorisation_at(alice, olivia, north_case, jane, jane_profile):
    """``authorisation_at(state, type=...)``: alice's application about jane, taken to
    ``state`` through the services, each step in a transaction of its own (the setting-up
    is not what is tested; the request that follows is)."""

    def make(state: str, *, type: str = "non_ripa") -> Authorisation:
        application = authorisation_services.Application(
            type=type,
            subject_ids=[jane.pk],
            platforms=["instagram"],
            profile_ids=[],
            title="Locating J",
            purpose="Find J",
            information_sought="Where J lives",
            necessity="No other way",
            proportionality="Least intrusive",
            alternatives_considered="Letters",
            collateral_intrusion="None recorded",
            **(RIPA_DS if type != "non_ripa" else {}),
        )
        with transaction.atomic():
            authorisation = authorisation_services.authorisation_create(
                ctx=AuditContext(actor=alice, via="api"), case=north_case, application=application
            )
        if state == "draft":
            return authorisation
        with transaction.atomic():
            authorisation_services.authorisation_submit(
                ctx=AuditContext(actor=alice, via="api"), authorisation=authorisation
            )
        if state != "submitted":
            with transaction.atomic():
                authorisation_services.authorisation_grant(
                    ctx=AuditContext(actor=olivia, via="api"),
                    authorisation=authorisation,
                    review_interval_days=28,
                    expires_at=None if type != "non_ripa" else timezone.now() + timedelta(days=60),
                    **GRANT,
                )
        return Authorisation.objects.get(pk=authorisation.pk)

    return make


# --- Signing in and out ------------------------------------------------------------------------


@committing("api/v1/auth/token/")
def test_signing_in_for_a_token_commits_the_token_and_its_event(alice):
    response = Client().post(
        "/api/v1/auth/token/",
        {"username": "alice", "password": "correct-horse-battery"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert elsewhere(lambda: ApiToken.objects.filter(user=alice, revoked_at__isnull=True).count()) == 1
    committed_event("auth.login", actor_username="alice")


@committing("api/v1/auth/logout/")
def test_signing_out_commits_the_revoked_token_and_its_event(alice, client_for):
    response = client_for(alice).post("/api/v1/auth/logout/")
    assert response.status_code in (200, 204), response.content
    assert elsewhere(lambda: ApiToken.objects.filter(user=alice, revoked_at__isnull=True).exists()) is False
    committed_event("auth.logout", actor_username="alice")


@committing("accounts/login/")
def test_signing_in_on_the_form_commits_the_session_and_its_event(alice):
    response = Client().post("/accounts/login/", {"username": "alice", "password": "correct-horse-battery"})
    assert response.status_code == 302
    assert elsewhere(lambda: Session.objects.count()) == 1
    assert committed_event("auth.login", actor_username="alice").payload["method"] == "session"


# --- Cases, people, profiles, consent ----------------------------------------------------------


@committing("api/v1/cases/")
def test_opening_a_case_commits_it_and_its_event(alice, north, client_for):
    response = client_for(alice).post(
        "/api/v1/cases/", {"reference": "N-9", "title": "A new case", "team": north.pk}, format="json"
    )
    assert response.status_code == 201, response.content
    case_id = response.json()["id"]
    assert elsewhere(lambda: Case.objects.get(pk=case_id).reference) == "N-9"
    committed_event("case.create", target_id=str(case_id))


@committing("api/v1/cases/<id:pk>/close/")
def test_closing_a_case_commits_it_and_its_event(alice, north_case, client_for):
    response = client_for(alice).post(f"/api/v1/cases/{north_case.pk}/close/")
    assert response.status_code == 200, response.content
    assert elsewhere(lambda: Case.objects.get(pk=north_case.pk).status) == "closed"
    committed_event("case.close", target_id=str(north_case.pk))


@committing("api/v1/cases/<id:pk>/subjects/")
def test_adding_a_person_to_a_case_commits_them_and_the_events(alice, north_case, client_for):
    response = client_for(alice).post(
        f"/api/v1/cases/{north_case.pk}/subjects/",
        {"display_name": "Jane Doe", "relationship": "parent", "date_of_birth": "1990-02-01"},
        format="json",
    )
    assert response.status_code == 201, response.content
    subject_id = response.json()["id"]
    assert elsewhere(lambda: CaseSubject.objects.filter(case=north_case, subject_id=subject_id).exists())
    assert elsewhere(lambda: Subject.objects.get(pk=subject_id).display_name) == "Jane Doe"
    committed_event("subject.create", target_id=str(subject_id))


@committing("api/v1/subjects/<id:pk>/profiles/")
def test_adding_a_profile_commits_it_and_its_event(alice, jane, client_for):
    response = client_for(alice).post(
        f"/api/v1/subjects/{jane.pk}/profiles/", {"platform": "facebook", "handle": "jane.doe"}, format="json"
    )
    assert response.status_code == 201, response.content
    profile_id = response.json()["id"]
    assert elsewhere(lambda: Profile.objects.get(pk=profile_id).subject_id) == jane.pk
    committed_event("profile.create", target_id=str(profile_id))


@committing("api/v1/subjects/<id:pk>/consents/")
def test_recording_consent_commits_it_and_its_event(alice, jane, client_for):
    granted = timezone.now() - timedelta(days=1)
    response = client_for(alice).post(
        f"/api/v1/subjects/{jane.pk}/consents/",
        {
            "scope": ["instagram"],
            "granted_at": granted.isoformat(),
            "evidence": "Signed form, 3 May",
            "given_by": "subject",
            "given_by_name": "Jane Doe",
            "method": "written",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    consent_id = response.json()["id"]
    assert elsewhere(lambda: Consent.objects.get(pk=consent_id).subject_id) == jane.pk
    committed_event("consent.create", target_id=str(consent_id))


@committing("api/v1/consents/<id:pk>/withdraw/")
def test_withdrawing_consent_commits_it_and_its_event(alice, jane, client_for):
    consent = ConsentFactory(subject=jane, recorded_by=alice)
    response = client_for(alice).post(
        f"/api/v1/consents/{consent.pk}/withdraw/", {"reason": "Asked us to stop"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert elsewhere(lambda: Consent.objects.get(pk=consent.pk).withdrawal_reason) == "Asked us to stop"
    committed_event("consent.withdraw", target_id=str(consent.pk))


@committing("api/v1/consents/<id:pk>/confirm/")
def test_confirming_consent_commits_it_and_its_event(alice, olivia, jane, client_for):
    consent = ConsentFactory(subject=jane, recorded_by=alice, status="awaiting_confirmation")
    response = client_for(olivia).post(
        f"/api/v1/consents/{consent.pk}/confirm/", {"note": "Saw the signed form"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert elsewhere(lambda: Consent.objects.get(pk=consent.pk).confirmed_by_id) == olivia.pk
    assert committed_event("consent.confirm", target_id=str(consent.pk)).payload["note"] == "Saw the signed form"


# --- Viewings, corrections, flags, policy ------------------------------------------------------


@committing("api/v1/viewings/")
def test_logging_a_viewing_commits_it_and_its_event(alice, north_case, jane_profile, client_for):
    response = client_for(alice).post("/api/v1/viewings/", viewing_payload(north_case, jane_profile), format="json")
    assert response.status_code == 201, response.content
    viewing_id = response.json()["id"]
    assert elsewhere(lambda: Viewing.objects.get(pk=viewing_id).practitioner_id) == alice.pk
    committed_event("viewing.create", target_id=str(viewing_id))


@committing("api/v1/viewings/check/")
def test_checking_a_viewing_commits_its_event_and_nothing_else(alice, north_case, jane_profile, client_for):
    client = client_for(alice)
    earlier = viewing_payload(north_case, jane_profile, viewed_at=(timezone.now() - timedelta(days=2)).isoformat())
    assert client.post("/api/v1/viewings/", earlier, format="json").status_code == 201
    response = client.post("/api/v1/viewings/check/", viewing_payload(north_case, jane_profile), format="json")
    assert response.status_code == 200, response.content
    assert [(flag["rule"], flag["action"]) for flag in response.json()["flags"]] == [("REPEAT_VIEWING", "raise")]
    # Nothing of the look it judged was written: one viewing (the earlier one), no flag.
    assert elsewhere(lambda: (Viewing.objects.count(), Flag.objects.count())) == (1, 0)
    event = committed_event("viewing.check", target_id=str(jane_profile.pk))
    assert elsewhere(lambda: list(event.subject_links.values_list("subject_id", flat=True))) == [
        jane_profile.subject_id
    ]


@pytest.mark.postgres
def test_a_check_answers_while_a_look_at_the_same_person_is_being_logged(alice, north_case, jane_profile, client_for):
    """Logging holds the person's lock until it commits; a check takes no lock, so it does
    not wait for it (had it waited, it would answer only once the lock is let go, 10 s on)."""
    import time

    from cases.selectors import PERSON_LOCK_SPACE

    client = client_for(alice)
    holding, release = threading.Event(), threading.Event()

    def hold_the_persons_lock():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, (%s %% 2147483647)::integer)",
                    [PERSON_LOCK_SPACE, jane_profile.subject_id],
                )
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(hold_the_persons_lock)
        assert holding.wait(10)
        started = time.monotonic()
        try:
            response = client.post("/api/v1/viewings/check/", viewing_payload(north_case, jane_profile), format="json")
        finally:
            took = time.monotonic() - started
            release.set()
        held.result()
    assert response.status_code == 200, response.content
    assert took < 5, took


@committing("api/v1/viewings/<id:pk>/supersede/")
def test_correcting_a_viewing_commits_the_correction_and_its_event(alice, north_case, jane_profile, client_for):
    """Answered 500 under the runtime role: the original was locked with SELECT ... FOR
    UPDATE, which needs the UPDATE privilege it rightly lacks on an append-only table."""
    client = client_for(alice)
    original = client.post("/api/v1/viewings/", viewing_payload(north_case, jane_profile), format="json").json()
    payload = {**viewing_payload(north_case, jane_profile, purpose="evidence_gathering"), "reason": "Wrong purpose"}
    response = client.post(f"/api/v1/viewings/{original['id']}/supersede/", payload, format="json")
    assert response.status_code == 201, response.content
    correction_id = response.json()["id"]
    assert elsewhere(lambda: Viewing.objects.get(pk=correction_id).supersedes_id) == original["id"]
    committed_event("viewing.supersede", target_id=str(correction_id))


@pytest.mark.postgres
def test_two_corrections_of_one_viewing_sent_at_once_give_one_correction_and_one_409(
    alice, north_case, jane_profile, client_for
):
    """The second waits for the first's lock (an advisory lock: the runtime role may take
    it) and then finds the viewing corrected. So that the race is run every time, the first
    to hold the lock keeps its transaction open until the other is seen waiting for it."""
    from cases import services as case_services

    original = (
        client_for(alice).post("/api/v1/viewings/", viewing_payload(north_case, jane_profile), format="json").json()
    )
    clients = [client_for(alice), client_for(alice)]
    payload = {**viewing_payload(north_case, jane_profile, purpose="evidence_gathering"), "reason": "Wrong purpose"}
    lock_viewing = case_services._lock_viewing
    first = threading.Lock()
    seen_waiting = []

    def waiting_for_a_lock() -> int:
        def read():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event = 'advisory'"
                )
                return cursor.fetchone()[0]

        return elsewhere(read)

    def lock_and_hold(viewing_id):
        lock_viewing(viewing_id)
        if first.acquire(blocking=False):
            deadline = timezone.now() + timedelta(seconds=20)
            while waiting_for_a_lock() < 1 and timezone.now() < deadline:
                threading.Event().wait(0.02)
            seen_waiting.append(waiting_for_a_lock())

    def correct(client):
        try:
            return client.post(f"/api/v1/viewings/{original['id']}/supersede/", payload, format="json")
        finally:
            connections.close_all()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(case_services, "_lock_viewing", lock_and_hold)
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(correct, clients))
    assert sorted(answer.status_code for answer in answers) == [201, 409], [a.content for a in answers]
    assert [answer.json()["code"] for answer in answers if answer.status_code == 409] == ["already_superseded"]
    assert seen_waiting == [1]
    assert elsewhere(lambda: Viewing.objects.filter(supersedes_id=original["id"]).count()) == 1
    # Two transactions at once may commit their events out of id order; the periodic
    # sweep sequences what the request path left.
    from audit.tasks import audit_integrate

    audit_integrate()
    committed_event("viewing.supersede")


@committing("api/v1/flags/<id:pk>/decide/")
def test_deciding_a_flag_commits_the_decision_and_its_event(alice, olivia, north_case, jane_profile, client_for):
    client = client_for(alice)
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    client.post("/api/v1/viewings/", viewing_payload(north_case, jane_profile, viewed_at=yesterday), format="json")
    client.post("/api/v1/viewings/", viewing_payload(north_case, jane_profile), format="json")
    flag = Flag.objects.get()
    response = client_for(olivia).post(
        f"/api/v1/flags/{flag.pk}/decide/",
        {"outcome": "no_authorisation_needed", "reasoning": "Two looks to find the mother before a hearing."},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert elsewhere(lambda: Flag.objects.get(pk=flag.pk).status) == "decided"
    committed_event("flag.decide", target_id=str(flag.pk))


@committing("api/v1/policy/", "PUT")
def test_changing_the_policy_commits_the_new_version_and_its_event(sam, client_for):
    rules = DetectionPolicy.objects.order_by("-version").first().rules
    rules["REPEAT_VIEWING"] = {**rules["REPEAT_VIEWING"], "params": {"threshold": 3, "window_days": 14}}
    response = client_for(sam).put("/api/v1/policy/", {"rules": rules, "note": "Tighter"}, format="json")
    assert response.status_code == 200, response.content
    # Versions 1 and 2 (issue 18's LATE_ENTRIES) come from the migrations.
    assert elsewhere(lambda: list(DetectionPolicy.objects.values_list("version", flat=True).order_by("version"))) == [
        1,
        2,
        3,
    ]
    committed_event("policy.update")


# --- Authorisations ----------------------------------------------------------------------------

URL = "/api/v1/authorisations/"


@committing("api/v1/authorisations/")
def test_applying_for_an_authorisation_commits_the_draft_and_its_event(alice, north_case, jane, client_for):
    response = client_for(alice).post(URL, application_payload(north_case, jane), format="json")
    assert response.status_code == 201, response.content
    authorisation_id = response.json()["id"]
    assert elsewhere(lambda: Authorisation.objects.get(pk=authorisation_id).status) == "draft"
    committed_event("authorisation.create", target_id=str(authorisation_id))


@committing("api/v1/authorisations/<id:pk>/submit/")
def test_submitting_an_application_commits_it_and_its_event(alice, authorisation_at, client_for):
    """Answered 500 on PostgreSQL every time: the service's transaction did not wrap its
    row lock (issue 16)."""
    draft = authorisation_at("draft")
    response = client_for(alice).post(f"{URL}{draft.pk}/submit/")
    assert response.status_code == 200, response.content
    assert elsewhere(lambda: Authorisation.objects.get(pk=draft.pk).status) == "submitted"
    committed_event("authorisation.submit", target_id=str(draft.pk))


@committing("api/v1/authorisations/<id:pk>/grant/")
def test_granting_commits_the_decision_and_its_event(olivia, authorisation_at, client_for):
    submitted = authorisation_at("submitted")
    expires = (timezone.now() + timedelta(days=60)).isoformat()
    response = client_for(olivia).post(
        f"{URL}{submitted.pk}/grant/", {**GRANT, "review_interval_days": 28, "expires_at": expires}, format="json"
    )
    assert response.status_code == 200, response.content
    assert elsewhere(lambda: Authorisation.objects.get(pk=submitted.pk).status) == "in_force"
    committed_event("authorisation.grant", target_id=str(submitted.pk))


@committing("api/v1/authorisations/<id:pk>/refuse/")
def test_refusing_commits_the_decision_and_its_event(olivia, authorisation_at, client_for):
    submitted = authorisation_at("submitted")
    response = client_for(olivia).post(
        f"{URL}{submitted.pk}/refuse/",
        {"officer_grade": "Service Manager", "statement": "Ask the family first."},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert elsewhere(lambda: Authorisation.objects.get(pk=submitted.pk).status) == "refused"
    committed_event("authorisation.refuse", target_id=str(submitted.pk))


@committing("api/v1/authorisations/<id:pk>/judicial-approval/")
def test_recording_the_magistrates_approval_commits_it_and_its_event(olivia, authorisation_at, client_for):
    granted = authorisation_at("granted", type="directed_surveillance")
    assert granted.status == "awaiting_judicial_approval"
    response = client_for(olivia).post(
        f"{URL}{granted.pk}/judicial-approval/",
        {
            "court": "Leeds Magistrates' Court",
            "justice": "J. Smith JP",
            "decided_at": timezone.now().isoformat(),
            "outcome": "approved",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert elsewhere(lambda: JudicialApproval.objects.filter(authorisation_id=granted.pk).count()) == 1
    assert elsewhere(lambda: Authorisation.objects.get(pk=granted.pk).status) == "in_force"
    committed_event("authorisation.judicial_approval", target_id=str(granted.pk))


@committing("api/v1/authorisations/<id:pk>/reviews/")
def test_reviewing_commits_the_review_and_its_event(olivia, authorisation_at, client_for):
    in_force = authorisation_at("granted")
    response = client_for(olivia).post(
        f"{URL}{in_force.pk}/reviews/", {"findings": "Still necessary.", "outcome": "continue"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert elsewhere(lambda: AuthorisationReview.objects.filter(authorisation_id=in_force.pk).count()) == 1
    committed_event("authorisation.review", target_id=str(in_force.pk))


@committing("api/v1/authorisations/<id:pk>/renew/")
def test_renewing_commits_the_renewal_and_its_event(olivia, authorisation_at, client_for):
    in_force = authorisation_at("granted")
    expires = (in_force.expires_at + timedelta(days=30)).isoformat()
    response = client_for(olivia).post(
        f"{URL}{in_force.pk}/renew/",
        {"officer_grade": "Head of Service", "statement": "Still necessary.", "expires_at": expires},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert elsewhere(lambda: AuthorisationRenewal.objects.filter(authorisation_id=in_force.pk).count()) == 1
    committed_event("authorisation.renew", target_id=str(in_force.pk))


@committing("api/v1/authorisations/<id:pk>/cancel/")
def test_cancelling_commits_the_cancellation_and_its_event(olivia, authorisation_at, client_for):
    in_force = authorisation_at("granted")
    response = client_for(olivia).post(
        f"{URL}{in_force.pk}/cancel/",
        {
            "reason": "M has been found.",
            "information_obtained": "M's town of residence.",
            "material_direction": "Keep the note on the case file; destroy the screenshots.",
            "staff_told_to_stop_at": timezone.now().isoformat(),
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert elsewhere(lambda: Authorisation.objects.get(pk=in_force.pk).status) == "cancelled"
    committed_event("authorisation.cancel", target_id=str(in_force.pk))


# --- Nothing left out ---------------------------------------------------------------------------

WRITE_METHODS = ("post", "put", "patch", "delete")


def refuses(view, method: str) -> bool:
    request = getattr(RequestFactory(), method)("/")
    return view(request).status_code == 405


def state_changing_routes() -> dict[str, list[str]]:
    """Every route in the URL configuration whose view accepts a method that writes, with
    those methods (a redirect changes nothing, whatever the method)."""
    found: dict[str, list[str]] = {}

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
                continue
            assert isinstance(pattern, URLPattern)
            view = getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
            if view is None:
                # A function view says what it accepts only by answering: ask it (a view
                # that does not refuse with 405 counts as one that writes).
                methods = [m for m in WRITE_METHODS if refuses(pattern.callback, m) is False]
            elif issubclass(view, RedirectView):
                continue
            else:
                methods = [m for m in WRITE_METHODS if m in view.http_method_names and hasattr(view, m)]
            if methods:
                found[prefix + str(pattern.pattern)] = [m.upper() for m in methods]

    walk(get_resolver().url_patterns)
    return found


def test_every_state_changing_endpoint_has_a_committing_test():
    routes = state_changing_routes()
    assert len(routes) >= 20  # the walk finds the API (a walk that finds nothing proves nothing)
    missing = sorted(route for route in routes if route not in COMMITTING)
    assert not missing, f"state-changing endpoints without a committing test in {__name__}: {missing}"
    stale = sorted(route for route in COMMITTING if route not in routes)
    assert not stale, f"committing tests for routes that no longer change state: {stale}"
    for route, method in COMMITTING.items():
        assert method in routes[route], (route, method, routes[route])


# --- The scheduled work and the log's own commands ---------------------------------------------


def test_the_scheduled_work_and_verify_audit_commit_as_the_service_would(authorisation_at):
    """Not endpoints, but they change state too, and in production they run as the same
    runtime role: reminders of a review due, an expiry, the log's sweep, ``verify_audit``."""
    from django.core.management import call_command

    from audit.tasks import audit_integrate
    from authorisations.tasks import expire_due, send_reminders

    in_force = authorisation_at("granted")  # a review due in 28 days, expiring in 60
    now = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=now + timedelta(days=29)):
        assert send_reminders() >= 1
    assert elsewhere(lambda: AuditEvent.objects.filter(action="authorisation.remind").count()) >= 1
    with mock.patch("django.utils.timezone.now", return_value=now + timedelta(days=61)):
        assert expire_due() == 1
    assert elsewhere(lambda: Authorisation.objects.get(pk=in_force.pk).status) == "expired"
    committed_event("authorisation.expire", target_id=str(in_force.pk))
    audit_integrate()
    call_command("verify_audit", verbosity=0)


# --- Reads: audited, so they write too ----------------------------------------------------------


def routes_answering_get() -> list[str]:
    found = []

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
                continue
            view = getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
            if view is None or hasattr(view, "get"):
                found.append(prefix + str(pattern.pattern))

    walk(get_resolver().url_patterns)
    return found


def test_every_read_answers_and_commits_its_audit_event(
    alice, olivia, sam, audrey, north_case, jane, jane_profile, authorisation_at, client_for
):
    """Each GET route, asked by someone who may, answers 200 (302 for the way in) in a
    transaction that commits: the reads that are audited write their event. A route added
    without a line here fails the test."""
    client = client_for(alice)
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    viewing = client.post(
        "/api/v1/viewings/", viewing_payload(north_case, jane_profile, viewed_at=yesterday), format="json"
    ).json()
    client.post("/api/v1/viewings/", viewing_payload(north_case, jane_profile), format="json")
    flag = Flag.objects.get()
    authorisation = authorisation_at("submitted")
    officer, sro, auditor = client_for(olivia), client_for(sam), client_for(audrey)
    # With a broker configured, the request path signs a checkpoint at most once per
    # interval; the periodic sweep signs the rest, so the export's range is covered.
    from audit.tasks import audit_integrate

    audit_integrate()
    reads = {
        "": (Client(), "/", 302),
        "healthz": (Client(), "/healthz", 200),
        "accounts/login/": (Client(), "/accounts/login/", 200),
        "api/v1/me/": (client, "/api/v1/me/", 200),
        "api/v1/teams/": (client, "/api/v1/teams/", 200),
        "api/v1/authorisations/": (client, "/api/v1/authorisations/", 200),
        "api/v1/authorisations/central-record/": (officer, "/api/v1/authorisations/central-record/", 200),
        "api/v1/authorisations/<id:pk>/": (client, f"/api/v1/authorisations/{authorisation.pk}/", 200),
        "api/v1/cases/": (client, "/api/v1/cases/", 200),
        "api/v1/cases/<id:pk>/": (client, f"/api/v1/cases/{north_case.pk}/", 200),
        "api/v1/subjects/<id:pk>/": (client, f"/api/v1/subjects/{jane.pk}/", 200),
        "api/v1/viewings/": (client, "/api/v1/viewings/", 200),
        "api/v1/viewings/<id:pk>/": (client, f"/api/v1/viewings/{viewing['id']}/", 200),
        "api/v1/policy/": (sro, "/api/v1/policy/", 200),
        "api/v1/flags/": (officer, "/api/v1/flags/", 200),
        "api/v1/flags/<id:pk>/": (officer, f"/api/v1/flags/{flag.pk}/", 200),
        "api/v1/audit/events/": (auditor, "/api/v1/audit/events/", 200),
        "api/v1/audit/access-history/": (auditor, f"/api/v1/audit/access-history/?subject={jane.pk}", 200),
        "api/v1/audit/checkpoint/": (auditor, "/api/v1/audit/checkpoint/", 200),
        "api/v1/audit/proof/inclusion/": (auditor, "/api/v1/audit/proof/inclusion/?index=0&tree_size=2", 200),
        "api/v1/audit/proof/consistency/": (auditor, "/api/v1/audit/proof/consistency/?first=1&second=2", 200),
        "api/v1/audit/entries/": (auditor, "/api/v1/audit/entries/?start=0&end=2", 200),
        "api/v1/audit/export/": (auditor, "/api/v1/audit/export/?start=0&end=2", 200),
        "api/v1/schema/": (client, "/api/v1/schema/", 200),
        "api/v1/docs/": (client, "/api/v1/docs/", 200),
        # The links in emails: through the sign-in page to the resource.
        "flags/<id:pk>/": (Client(), f"/flags/{flag.pk}/", 302),
        "authorisations/<id:pk>/": (Client(), f"/authorisations/{authorisation.pk}/", 302),
        "viewings/<id:pk>/": (Client(), f"/viewings/{viewing['id']}/", 302),
    }
    routes = routes_answering_get()
    assert sorted(routes) == sorted(reads), "a route without a read here (or one gone)"
    for route, (who, url, status) in reads.items():
        response = who.get(url)
        assert response.status_code == status, (route, response.status_code, response.content[:300])
    for action, target in (
        ("case.read", north_case.pk),
        ("subject.read", jane.pk),
        ("viewing.read", viewing["id"]),
        ("flag.read", flag.pk),
        ("authorisation.read", authorisation.pk),
    ):
        committed_event(action, target_id=str(target))
