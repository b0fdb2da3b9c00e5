"""Issue 18: the LATE_ENTRIES rule, and REPEAT_VIEWING's consent_needs_confirmation. The
policy in force gains both as a new version (earlier versions stay as they were)."""

from django.db import migrations, models
from django.utils import timezone

# As first added (a copy, so that this migration never changes).
LATE_ENTRIES = {"enabled": True, "severity": "medium", "params": {"threshold": 2, "window_days": 28}}


def add_rule(apps, schema_editor):
    policy = apps.get_model("detection", "DetectionPolicy")
    newest = policy.objects.order_by("-version").first()
    if newest is None or "LATE_ENTRIES" in newest.rules:
        return
    rules = dict(newest.rules)
    rules["LATE_ENTRIES"] = LATE_ENTRIES
    repeat = dict(rules.get("REPEAT_VIEWING") or {})
    repeat["params"] = {"consent_needs_confirmation": True, **(repeat.get("params") or {})}
    rules["REPEAT_VIEWING"] = repeat
    policy.objects.create(
        version=newest.version + 1,
        rules=rules,
        note="Late entries counted (LATE_ENTRIES); consent recorded by the practitioner who looks needs an "
        "officer's confirmation (REPEAT_VIEWING consent_needs_confirmation).",
        created_at=timezone.now(),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("detection", "0003_notification_about_authorisation"),
    ]

    operations = [
        migrations.AlterField(
            model_name="flag",
            name="rule",
            field=models.CharField(
                choices=[
                    ("REPEAT_VIEWING", "Repeat viewing"),
                    ("SYSTEMATIC_RECORDING", "Systematic recording"),
                    ("EVIDENCE_PURPOSE", "Evidence gathering"),
                    ("COLLATERAL_INTRUSION", "Collateral intrusion"),
                    ("COVERT_ACCESS", "Covert access"),
                    ("POSSIBLE_CHIS", "Possible covert human intelligence source"),
                    ("OUTSIDE_AUTHORISATION", "Outside an authorisation"),
                    ("CLOSED_CASE", "Closed case"),
                    ("LATE_ENTRIES", "Late entries"),
                ],
                max_length=30,
            ),
        ),
        migrations.RunPython(add_rule, migrations.RunPython.noop),
    ]
