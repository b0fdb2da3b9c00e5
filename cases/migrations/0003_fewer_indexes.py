"""Viewings lose four indexes that the composite ones already provide."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from evidence_service.migration_operations import drop_column_indexes


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0002_viewing_append_only"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The (column, viewed_at) indexes serve lookups by each column alone; only the
        # single-column indexes go, without touching the foreign keys or the table (see
        # evidence_service/migration_operations.py).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="viewing",
                    name="case",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="viewings",
                        to="cases.case",
                    ),
                ),
                migrations.AlterField(
                    model_name="viewing",
                    name="practitioner",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="viewings",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="viewing",
                    name="profile",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="viewings",
                        to="cases.profile",
                    ),
                ),
                migrations.AlterField(
                    model_name="viewing",
                    name="subject",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="viewings",
                        to="cases.subject",
                    ),
                ),
            ],
            database_operations=[
                drop_column_indexes("cases.Viewing", ["case_id", "profile_id", "subject_id", "practitioner_id"]),
            ],
        ),
    ]
