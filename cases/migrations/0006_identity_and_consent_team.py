"""One person, one record; teams stay apart (issue 18).

- ``Subject.external_key``: the external id's normal form (``cases.identity``), unique. Existing
  ids are given their key in id order. Two existing people whose ids share a key are not
  merged here (merging would move one team's records onto another's person, a decision for
  people, not a migration): the earlier keeps the key, the later is left without one and
  is named on the migration's output, so that an officer can look at both. Nothing is lost.
- ``Consent.team``: the team that recorded each consent, worked out for existing consents as
  the recorder's team with a case the person is on (the earliest such link); left NULL
  where there is none, and then seen by officers only.
"""

import django.db.models.deletion
from django.db import migrations, models

from cases.identity import external_id_key


def give_keys(apps, schema_editor):
    Subject = apps.get_model("cases", "Subject")
    taken: dict[str, int] = {}
    kept_apart = []
    for subject in Subject.objects.exclude(external_id=None).order_by("id").only("id", "external_id"):
        key = external_id_key(subject.external_id) or None
        if key is None:
            continue
        if key in taken:
            kept_apart.append((subject.pk, subject.external_id, taken[key]))
            continue
        taken[key] = subject.pk
        Subject.objects.filter(pk=subject.pk).update(external_key=key)
    for pk, external_id, first in kept_apart:
        print(
            f"\n  cases.0005: subject {pk} (external_id {external_id!r}) has the same id as subject {first}; "
            "both are kept, and only the earlier is found by the id: check whether they are one person."
        )


def give_teams(apps, schema_editor):
    Consent = apps.get_model("cases", "Consent")
    CaseSubject = apps.get_model("cases", "CaseSubject")
    User = apps.get_model("accounts", "User")
    for consent in Consent.objects.filter(team=None).order_by("id"):
        teams = User.objects.get(pk=consent.recorded_by_id).teams.values("pk")
        link = (
            CaseSubject.objects.filter(subject_id=consent.subject_id, case__team__in=teams)
            .order_by("linked_at", "id")
            .values_list("case__team_id", flat=True)
            .first()
        )
        if link is not None:
            Consent.objects.filter(pk=consent.pk).update(team_id=link)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("cases", "0005_consent_believed_coverage"),
    ]

    operations = [
        migrations.AddField(
            model_name="consent",
            name="team",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="accounts.team",
            ),
        ),
        migrations.AddField(
            model_name="subject",
            name="external_key",
            field=models.CharField(blank=True, editable=False, max_length=200, null=True, unique=True),
        ),
        migrations.RunPython(give_keys, migrations.RunPython.noop, elidable=False),
        migrations.RunPython(give_teams, migrations.RunPython.noop, elidable=False),
    ]
