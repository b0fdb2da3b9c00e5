"""Output shapes for cases, subjects, profiles, consent and viewings."""

from __future__ import annotations

from collections import defaultdict

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from authorisations.selectors import authorisation_check_viewing
from cases.coverage import covered_by, needs_confirmation
from cases.models import ExternalAuthorityKind, Viewing
from detection.selectors import flag_links_of, policy_rules_in_force
from evidence_service.api.fields import LineField, ReadTogether, moment_text


class CaseOutput(serializers.Serializer):
    id = serializers.IntegerField()
    reference = serializers.CharField()
    title = serializers.CharField()
    team = serializers.IntegerField(source="team_id")
    team_name = serializers.CharField(source="team.name")
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class CaseRefOutput(serializers.Serializer):
    id = serializers.IntegerField()
    reference = serializers.CharField()


class CaseSubjectOutput(serializers.Serializer):
    subject = serializers.IntegerField(source="subject_id")
    display_name = serializers.CharField(source="subject.display_name")
    relationship = serializers.CharField()


class CaseDetailOutput(CaseOutput):
    subjects = CaseSubjectOutput(many=True, source="subject_links_for_output")


class ProfileOutput(serializers.Serializer):
    id = serializers.IntegerField()
    subject = serializers.IntegerField(source="subject_id")
    platform = serializers.CharField()
    handle = serializers.CharField()
    url = serializers.CharField()
    created_at = serializers.DateTimeField()


class ConsentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    subject = serializers.IntegerField(source="subject_id")
    scope = serializers.ListField(child=serializers.CharField())
    granted_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    evidence = serializers.CharField()
    given_by = serializers.CharField(
        help_text="subject, parental_responsibility or legal_representative; empty: not recorded."
    )
    given_by_name = serializers.CharField()
    method = serializers.CharField(help_text="written, verbal or electronic; empty: not recorded.")
    granted_at_reason = serializers.CharField()
    status = serializers.CharField(help_text="awaiting_confirmation or confirmed (by an officer).")
    recorded_at = serializers.DateTimeField()
    recorded_by = serializers.IntegerField(source="recorded_by_id")
    confirmed_at = serializers.DateTimeField(allow_null=True)
    confirmed_by = serializers.IntegerField(source="confirmed_by_id", allow_null=True)
    team = serializers.IntegerField(source="team_id", allow_null=True, help_text="The team that recorded it.")
    withdrawn_at = serializers.DateTimeField(allow_null=True)
    withdrawal_reason = serializers.CharField()


class SubjectCaseLinkOutput(serializers.Serializer):
    case = CaseRefOutput()
    relationship = serializers.CharField()


class SubjectOutput(serializers.Serializer):
    id = serializers.IntegerField()
    display_name = serializers.CharField()
    external_id = serializers.CharField(allow_null=True)
    date_of_birth = serializers.DateField(allow_null=True)
    created_at = serializers.DateTimeField()


class SubjectDetailOutput(SubjectOutput):
    cases = SubjectCaseLinkOutput(many=True, source="visible_case_links")
    profiles = ProfileOutput(many=True, source="profiles_for_output")
    consents = ConsentOutput(many=True, source="consents_for_output")


class ExternalAuthority(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ExternalAuthorityKind.choices)
    reference = LineField(max_length=200)


class AuthorisationRefOutput(serializers.Serializer):
    id = serializers.IntegerField()
    urn = serializers.CharField()
    type = serializers.CharField()
    status = serializers.SerializerMethodField(help_text="Now: in_force past its expiry is expired.")
    in_force_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)

    def get_status(self, authorisation) -> str:
        return authorisation.effective_status(timezone.now())


class AuthorisationCheckOutput(serializers.Serializer):
    covers = serializers.BooleanField(help_text="Whether the cited authorisation covered this look when it happened.")
    problems = serializers.ListField(child=serializers.CharField(), help_text="Why it does not; empty if it does.")


class CoveredByConsentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    given_by = serializers.CharField(allow_null=True)
    method = serializers.CharField(allow_null=True)
    status = serializers.CharField()
    granted_at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()
    withdrawn_at = serializers.DateTimeField(allow_null=True)
    scope = serializers.ListField(child=serializers.CharField())


class CoveredByAuthorisationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    urn = serializers.CharField()
    case = serializers.IntegerField()
    cited = serializers.BooleanField()


class CoveredByOutput(serializers.Serializer):
    covered = serializers.BooleanField()
    consent = CoveredByConsentOutput(allow_null=True)
    authorisation = CoveredByAuthorisationOutput(allow_null=True)
    reason = serializers.CharField()


class ViewingFlagOutput(serializers.Serializer):
    id = serializers.IntegerField(source="flag_id")
    rule = serializers.CharField(source="flag.rule")
    severity = serializers.CharField(source="flag.severity")
    status = serializers.CharField(source="flag.status")
    explanation = serializers.CharField()
    counted_viewing_ids = serializers.ListField(child=serializers.IntegerField())
    absorbed = serializers.SerializerMethodField(help_text="True when added to a flag already open.")
    routed_to = serializers.SerializerMethodField()
    policy_version = serializers.IntegerField(source="flag.policy_version")

    def get_absorbed(self, link) -> bool:
        return link.added_at != link.flag.raised_at

    def get_routed_to(self, link) -> list[str]:
        return sorted(recipient.officer.username for recipient in link.flag.recipients.all())


class ViewingListOutput(ReadTogether):
    def read_together(self, rows: list) -> None:
        _read_seldom_set(rows)
        _read_flags(rows)


class ViewingOutput(serializers.Serializer):
    class Meta:
        list_serializer_class = ViewingListOutput

    id = serializers.IntegerField()
    case = CaseRefOutput()
    profile = ProfileOutput()
    subject = serializers.IntegerField(source="subject_id")
    practitioner = serializers.CharField(source="practitioner.username")
    viewed_at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()
    purpose = serializers.CharField()
    purpose_detail = serializers.CharField()
    justification = serializers.CharField()
    access_method = serializers.CharField()
    interaction = serializers.CharField()
    information_recorded = serializers.CharField()
    third_party_information = serializers.CharField()
    late_entry_reason = serializers.CharField()
    authorisation = AuthorisationRefOutput(allow_null=True)
    authorisation_check = serializers.SerializerMethodField()
    external_authority = serializers.SerializerMethodField()
    consent = ConsentOutput(allow_null=True)
    supersedes = serializers.IntegerField(source="supersedes_id", allow_null=True)
    supersede_reason = serializers.CharField()
    superseded_by = serializers.SerializerMethodField()
    covered_by = serializers.SerializerMethodField(
        help_text="What covered the look when it happened (consent and/or authorisation, cited or not) and why, "
        "or why nothing did."
    )
    flags = serializers.SerializerMethodField()

    @extend_schema_field(ExternalAuthority(allow_null=True))
    def get_external_authority(self, viewing):
        if not viewing.external_authority_kind:
            return None
        return {"kind": viewing.external_authority_kind, "reference": viewing.external_authority_reference}

    @extend_schema_field(AuthorisationCheckOutput(allow_null=True))
    def get_authorisation_check(self, viewing):
        # Worked out at read time from the authorisation's stored times and scope, so it
        # is always true to the data (a later renewal or cancellation is reflected).
        if viewing.authorisation is None:
            return None
        problems = authorisation_check_viewing(
            authorisation=viewing.authorisation,
            subject_id=viewing.subject_id,
            profile_id=viewing.profile_id,
            platform=viewing.profile.platform,
            at=viewing.viewed_at,
        )
        return {"covers": not problems, "problems": problems}

    @extend_schema_field(CoveredByOutput)
    def get_covered_by(self, viewing):
        cover = getattr(viewing, "covered_by_output", None)
        if cover is None:
            if not all(relation.is_cached(viewing) for relation in _SELDOM_SET):
                _read_seldom_set([viewing])
            cover = covered_by(
                viewed_at=viewing.viewed_at,
                practitioner_id=viewing.practitioner_id,
                platform=viewing.profile.platform,
                logged_at=viewing.recorded_at if viewing.supersedes_id is None else None,
                consent=viewing.consent,
                authorisation=viewing.covering_authorisation,
                cited_authorisation_id=viewing.authorisation_id,
                confirmation_needed=getattr(viewing, "confirmation_needed", None)
                if getattr(viewing, "confirmation_needed", None) is not None
                else needs_confirmation(policy_rules_in_force()),
            )
        return cover

    def get_superseded_by(self, viewing) -> int | None:
        correction = getattr(viewing, "superseded_by", None)
        return correction.pk if correction else None

    @extend_schema_field(ViewingFlagOutput(many=True))
    def get_flags(self, viewing):
        """The flags this viewing raised or was added to, each explained for the
        practitioner: what fired, which views counted, what happens next, and to whom."""
        links = getattr(viewing, "flag_links_for_output", None)
        if links is not None:
            return [_flag_link(link) for link in sorted(links, key=lambda link: link.pk)]
        if getattr(viewing, "flags_output", None) is None:
            _read_flags([viewing])
        return viewing.flags_output

    def to_representation(self, viewing) -> dict:
        """The fields declared above, written out: a viewing is the answer to most of the
        service's requests, and building the declared fields for each one costs more than
        the rest of the answer (tests/cases/test_viewing_output.py checks the two agree)."""
        if not all(relation.is_cached(viewing) for relation in _SELDOM_SET):
            _read_seldom_set([viewing])
        authorisation = viewing.authorisation
        consent = viewing.consent
        profile = viewing.profile
        return {
            "id": viewing.pk,
            "case": {"id": viewing.case.pk, "reference": viewing.case.reference},
            "profile": {
                "id": profile.pk,
                "subject": profile.subject_id,
                "platform": profile.platform,
                "handle": profile.handle,
                "url": profile.url,
                "created_at": moment_text(profile.created_at),
            },
            "subject": viewing.subject_id,
            "practitioner": viewing.practitioner.username,
            "viewed_at": moment_text(viewing.viewed_at),
            "recorded_at": moment_text(viewing.recorded_at),
            "purpose": viewing.purpose,
            "purpose_detail": viewing.purpose_detail,
            "justification": viewing.justification,
            "access_method": viewing.access_method,
            "interaction": viewing.interaction,
            "information_recorded": viewing.information_recorded,
            "third_party_information": viewing.third_party_information,
            "late_entry_reason": viewing.late_entry_reason,
            "authorisation": None
            if authorisation is None
            else {
                "id": authorisation.pk,
                "urn": authorisation.urn,
                "type": authorisation.type,
                "status": authorisation.effective_status(timezone.now()),
                "in_force_at": moment_text(authorisation.in_force_at),
                "expires_at": moment_text(authorisation.expires_at),
                "cancelled_at": moment_text(authorisation.cancelled_at),
            },
            "authorisation_check": self.get_authorisation_check(viewing),
            "external_authority": self.get_external_authority(viewing),
            "consent": None
            if consent is None
            else {
                "id": consent.pk,
                "subject": consent.subject_id,
                "scope": [str(platform) for platform in consent.scope],
                "granted_at": moment_text(consent.granted_at),
                "expires_at": moment_text(consent.expires_at),
                "evidence": consent.evidence,
                "given_by": consent.given_by,
                "given_by_name": consent.given_by_name,
                "method": consent.method,
                "granted_at_reason": consent.granted_at_reason,
                "status": consent.status,
                "recorded_at": moment_text(consent.recorded_at),
                "recorded_by": consent.recorded_by_id,
                "confirmed_at": moment_text(consent.confirmed_at),
                "confirmed_by": consent.confirmed_by_id,
                "team": consent.team_id,
                "withdrawn_at": moment_text(consent.withdrawn_at),
                "withdrawal_reason": consent.withdrawal_reason,
            },
            "supersedes": viewing.supersedes_id,
            "supersede_reason": viewing.supersede_reason,
            "superseded_by": self.get_superseded_by(viewing),
            "covered_by": self.get_covered_by(viewing),
            "flags": self.get_flags(viewing),
        }


_SELDOM_SET = (
    Viewing.consent.field,
    Viewing.authorisation.field,
    Viewing.superseded_by.related,
    Viewing.covering_authorisation.field,
)


def _read_seldom_set(viewings) -> None:
    """Give the viewings whose consent, authorisation or correction is not in hand each of
    these, read for all of them at once: a statement for each that any of them has (two
    more for the authorisations' people and profiles) and one for the corrections. Most
    looks have none of them; joining all three into the statement that reads the page made
    PostgreSQL plan it ten times as long (every table joined multiplies the join orders
    weighed), longer than reading the page took."""
    consent, authorisation, correction, covering = _SELDOM_SET
    # Whether consent needs confirmation (the policy in force), once for the page.
    if any(getattr(viewing, "confirmation_needed", None) is None for viewing in viewings):
        needed = needs_confirmation(policy_rules_in_force())
        for viewing in viewings:
            if getattr(viewing, "confirmation_needed", None) is None:
                viewing.confirmation_needed = needed
    for field in (consent, authorisation, covering):
        pending = [viewing for viewing in viewings if not field.is_cached(viewing)]
        keys = {getattr(viewing, field.attname) for viewing in pending} - {None}
        rows = field.related_model._base_manager.all()
        if field is authorisation:  # with their scope, for authorisation_check
            rows = rows.prefetch_related("subjects", "profiles")
        found = rows.in_bulk(keys) if keys else {}
        for viewing in pending:
            field.set_cached_value(viewing, found.get(getattr(viewing, field.attname)))
    pending = [viewing for viewing in viewings if not correction.is_cached(viewing)]
    if pending:
        corrections = Viewing._base_manager.filter(supersedes_id__in=[viewing.pk for viewing in pending])
        by_original = {row.supersedes_id: row for row in corrections.only("id", "supersedes_id")}
        for viewing in pending:
            correction.set_cached_value(viewing, by_original.get(viewing.pk))


def _read_flags(viewings) -> None:
    """Give each viewing whose flags are not in hand their entries (``flags_output``),
    read for all of them in two statements."""
    pending = [
        viewing
        for viewing in viewings
        if getattr(viewing, "flags_output", None) is None and getattr(viewing, "flag_links_for_output", None) is None
    ]
    if not pending:
        return
    links, routed = flag_links_of(viewing.pk for viewing in pending)
    entries = defaultdict(list)
    for link in links:
        entries[link["viewing_id"]].append(_flag_entry(link, routed[link["flag_id"]]))
    for viewing in pending:
        viewing.flags_output = entries[viewing.pk]


def _flag_entry(link: dict, routed_to: list[str]) -> dict:
    """One entry of ``ViewingFlagOutput``, written out from ``flag_links_of``'s values."""
    return {
        "id": link["flag_id"],
        "rule": link["flag__rule"],
        "severity": link["flag__severity"],
        "status": link["flag__status"],
        "explanation": link["explanation"],
        "counted_viewing_ids": [int(pk) for pk in link["counted_viewing_ids"]],
        "absorbed": link["added_at"] != link["flag__raised_at"],
        "routed_to": routed_to,
        "policy_version": link["flag__policy_version"],
    }


def _flag_link(link) -> dict:
    """The same entry, from a link just made (its flag and recipients in hand)."""
    flag = link.flag
    values = {
        "flag_id": link.flag_id,
        "flag__rule": flag.rule,
        "flag__severity": flag.severity,
        "flag__status": flag.status,
        "flag__raised_at": flag.raised_at,
        "flag__policy_version": flag.policy_version,
        "explanation": link.explanation,
        "counted_viewing_ids": link.counted_viewing_ids,
        "added_at": link.added_at,
    }
    return _flag_entry(values, sorted(recipient.officer.username for recipient in flag.recipients.all()))


# --- Check before you look ------------------------------------------------------------------------


class CheckFlagOutput(serializers.Serializer):
    rule = serializers.CharField()
    severity = serializers.CharField()
    action = serializers.ChoiceField(
        choices=["raise", "join"], help_text="raise: a new flag; join: the open flag about this person for the rule."
    )
    flag = serializers.IntegerField(
        allow_null=True, help_text="The open flag it would join, when you may see a look in it; else null."
    )
    explanation = serializers.CharField(help_text="What the rule found: the flag's explanation would begin so.")
    next_step = serializers.CharField()
    routed_to = serializers.ListField(child=serializers.CharField(), help_text="The officers it would be with.")
    counted_viewing_ids = serializers.ListField(
        child=serializers.IntegerField(), help_text="The looks counted that you may see (this one has no id yet)."
    )
    looks_counted = serializers.IntegerField(help_text="Every look counted, this one and other teams' included.")


class ViewingCheckOutput(serializers.Serializer):
    case = serializers.IntegerField()
    profile = serializers.IntegerField()
    subject = serializers.IntegerField()
    viewed_at = serializers.DateTimeField()
    policy_version = serializers.IntegerField(allow_null=True)
    covered_by = CoveredByOutput(help_text="What would cover the look and why, as a logged viewing says it.")
    authorisation_check = AuthorisationCheckOutput(
        allow_null=True, help_text="Whether the authorisation cited would cover the look; null if none is cited."
    )
    flags = CheckFlagOutput(many=True)
    advice = serializers.ListField(child=serializers.CharField(), help_text="What to do, in plain English.")
