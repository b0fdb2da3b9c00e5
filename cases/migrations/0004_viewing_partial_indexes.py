"""A viewing's authorisation and consent are indexed only where set: most looks cite no
authorisation and many have no consent, and a lookup by either never asks for NULL."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from evidence_service.migration_operations import drop_column_indexes, replace_index

AUTHORISATION = models.Index(
    condition=models.Q(("authorisation__isnull", False)), fields=["authorisation"], name="viewing_authorisation"
)
CONSENT = models.Index(condition=models.Q(("consent__isnull", False)), fields=["consent"], name="viewing_consent")


class Migration(migrations.Migration):
    # The new indexes are built CONCURRENTLY on PostgreSQL (viewings go on being logged).
    atomic = False

    dependencies = [
        ("authorisations", "0003_lifecycle"),
        ("cases", "0003_fewer_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Only the indexes change: not the foreign keys, nor the table (see
        # evidence_service/migration_operations.py). The partial indexes are built before
        # the full ones go, so a lookup by either column is never without an index.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="viewing",
                    name="authorisation",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="viewings",
                        to="authorisations.authorisation",
                    ),
                ),
                migrations.AlterField(
                    model_name="viewing",
                    name="consent",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="viewings",
                        to="cases.consent",
                    ),
                ),
                migrations.AddIndex(model_name="viewing", index=AUTHORISATION),
                migrations.AddIndex(model_name="viewing", index=CONSENT),
            ],
            database_operations=[
                replace_index("cases.Viewing", None, AUTHORISATION),
                replace_index("cases.Viewing", None, CONSENT),
                drop_column_indexes(
                    "cases.Viewing", ["authorisation_id", "consent_id"], keep=(AUTHORISATION.name, CONSENT.name)
                ),
            ],
        ),
    ]
