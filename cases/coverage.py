"""What covered a look, and why: one place for the viewing's answer, its audit event, the
viewing list, the access history (JSON and CSV) and the pre-look check.

``covered_by`` (the shape every output uses)::

    {
      "covered": bool,                      # whether anything covered the look
      "consent": {"id", "given_by", "method", "status", "granted_at", "recorded_at",
                  "withdrawn_at", "scope"} | null,
      "authorisation": {"id", "urn", "case", "cited"} | null,
      "reason": "plain English: what covered it and why, or why nothing did",
    }

A consent shown there is the one in effect for the platform when the look happened and
recorded before the look was (first) logged; ``covered`` is false while it does not count
(awaiting an officer's confirmation, for its recorder's own looks, or withdrawn since at a
moment before the look). An authorisation shown there was, when the look happened, in force
for the look's own case and named the person and the platform or profile, whether or not the
look cited it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from evidence_service.api.fields import moment_text

CONFIRMED = "confirmed"
AWAITING_CONFIRMATION = "awaiting_confirmation"

#: The least number of characters, not counting spaces, a late-entry reason, a consent's
#: evidence and the reason for an old ``granted_at`` must have.
MEANINGFUL_TEXT_MIN = 10
#: The least number of different letters and digits such a text must use.
MEANINGFUL_DISTINCT_MIN = 4


def meaningful(text: str | None) -> bool:
    """Whether ``text`` says something: at least ``MEANINGFUL_TEXT_MIN`` characters that are
    not spaces, and not only punctuation or a letter or two repeated ("aaaaaaaaaa", "x x x x
    x x x x x x")."""
    letters = "".join((text or "").split())
    alphanumeric = [ch.casefold() for ch in letters if ch.isalnum()]
    return (
        len(letters) >= MEANINGFUL_TEXT_MIN
        and len(alphanumeric) >= MEANINGFUL_TEXT_MIN // 2
        and len(set(alphanumeric)) >= MEANINGFUL_DISTINCT_MIN
    )


def needs_confirmation(rules: dict[str, Any] | None) -> bool:
    """The policy's ``consent_needs_confirmation`` (REPEAT_VIEWING's parameter; true when not
    given, as in policy versions written before it existed)."""
    params = ((rules or {}).get("REPEAT_VIEWING") or {}).get("params") or {}
    return bool(params.get("consent_needs_confirmation", True))


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%-d %b %Y %H:%M")


def consent_counts(
    *,
    consent_id: int | None,
    status: str | None,
    recorded_by_id: int | None,
    withdrawn_at: datetime | None,
    viewed_at: datetime,
    practitioner_id: int,
    confirmation_needed: bool,
    logged_at: datetime | None = None,
) -> tuple[bool, str]:
    """Whether the consent stored on a look (in effect and recorded before the look was
    logged, worked out then) counts as cover now, and why not when it does not. A withdrawal
    takes effect at its ``withdrawn_at``, even recorded later: for looks made after it, and
    for looks logged after it (``logged_at``: when the look was logged; None for a
    correction, judged by its moment alone: the look it corrects was logged earlier), since
    the moment a look is said to have happened is the practitioner's word."""
    if consent_id is None:
        return False, ""
    if withdrawn_at is not None and withdrawn_at <= viewed_at:
        return False, f"consent {consent_id} was withdrawn at {_when(withdrawn_at)}, before this look"
    if withdrawn_at is not None and logged_at is not None and withdrawn_at <= logged_at:
        return False, f"consent {consent_id} was withdrawn at {_when(withdrawn_at)}, before this look was logged"
    if confirmation_needed and status != CONFIRMED and recorded_by_id == practitioner_id:
        return False, (
            f"consent {consent_id} was recorded by the practitioner who looked and awaits an officer's confirmation"
        )
    return True, ""


def covered_by(
    *,
    viewed_at: datetime,
    practitioner_id: int,
    platform: str,
    logged_at: datetime | None = None,
    consent: Any = None,
    authorisation: Any = None,
    cited_authorisation_id: int | None = None,
    confirmation_needed: bool = True,
) -> dict[str, Any]:
    """``covered_by`` of a look from its consent and covering authorisation (model instances
    or None); ``logged_at``: as for ``consent_counts``."""
    consent_ok, consent_why = consent_counts(
        consent_id=getattr(consent, "pk", None),
        status=getattr(consent, "status", None),
        recorded_by_id=getattr(consent, "recorded_by_id", None),
        withdrawn_at=getattr(consent, "withdrawn_at", None),
        viewed_at=viewed_at,
        practitioner_id=practitioner_id,
        confirmation_needed=confirmation_needed,
        logged_at=logged_at,
    )
    return covered_by_values(
        consent=None
        if consent is None
        else {
            "id": consent.pk,
            "given_by": consent.given_by or None,
            "method": consent.method or None,
            "status": consent.status,
            "granted_at": consent.granted_at,
            "recorded_at": consent.recorded_at,
            "withdrawn_at": consent.withdrawn_at,
            "scope": [str(p) for p in consent.scope],
        },
        consent_ok=consent_ok,
        consent_why=consent_why,
        authorisation=None
        if authorisation is None
        else {"id": authorisation.pk, "urn": authorisation.urn, "case": authorisation.case_id},
        cited_authorisation_id=cited_authorisation_id,
        platform=platform,
    )


def covered_by_values(
    *,
    consent: dict[str, Any] | None,
    consent_ok: bool,
    consent_why: str,
    authorisation: dict[str, Any] | None,
    cited_authorisation_id: int | None,
    platform: str,
) -> dict[str, Any]:
    """``covered_by`` from plain values (as the access history reads them)."""
    reasons = []
    if consent is not None and consent_ok:
        given = f" given by {consent['given_by'].replace('_', ' ')}" if consent.get("given_by") else ""
        how = f" ({consent['method']})" if consent.get("method") else ""
        reasons.append(
            f"Consent {consent['id']}{given}{how} was in effect for {platform} when the look happened, and was "
            "recorded before the look was logged."
        )
    if authorisation is not None:
        authorisation = {**authorisation, "cited": authorisation["id"] == cited_authorisation_id}
        cited = "cited by the look" if authorisation["cited"] else "not cited by the look, but in force for it"
        reasons.append(
            f"Authorisation {authorisation['urn']} ({cited}) was in force for this case and named this person and "
            f"this {platform} profile when the look happened."
        )
    covered = bool(reasons)
    if consent is not None and not consent_ok:
        reasons.append(f"Not counted as cover: {consent_why}.")
    if not covered:
        reasons.insert(
            0,
            f"Nothing covered this look: no consent recorded before it was logged named {platform}, and no "
            "authorisation for this case in force then named this person and profile.",
        )
    if consent is not None:
        consent = {
            **consent,
            **{key: moment_text(consent.get(key)) for key in ("granted_at", "recorded_at", "withdrawn_at")},
        }
    return {"covered": covered, "consent": consent, "authorisation": authorisation, "reason": " ".join(reasons)}
