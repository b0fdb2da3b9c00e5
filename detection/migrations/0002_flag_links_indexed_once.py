"""A flag's links to viewings and its recipients are found by flag through their unique
(flag, viewing) and (flag, officer) indexes: the flag column's own index only slowed writes."""

import django.db.models.deletion
from django.db import migrations, models

from evidence_service.migration_operations import drop_column_indexes


class Migration(migrations.Migration):
    # The indexes are dropped CONCURRENTLY on PostgreSQL (flags go on being joined).
    atomic = False

    dependencies = [
        ("detection", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="flagrecipient",
                    name="flag",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="recipients",
                        to="detection.flag",
                    ),
                ),
                migrations.AlterField(
                    model_name="flagviewing",
                    name="flag",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="flag_viewings",
                        to="detection.flag",
                    ),
                ),
            ],
            database_operations=[
                drop_column_indexes("detection.FlagRecipient", ["flag_id"]),
                drop_column_indexes("detection.FlagViewing", ["flag_id"]),
            ],
        ),
    ]
