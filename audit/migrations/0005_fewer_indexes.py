"""An actor's events in a date range are read from an (actor, occurred_at, id) index alone;
the subject link's own index on its event goes (its unique (event, subject) index leads with
the event). Neither change blocks the service's writes: see evidence_service/migration_operations.py."""

import django.db.models.deletion
from django.db import migrations, models

from evidence_service.migration_operations import drop_column_indexes, replace_index

OLD = models.Index(fields=["actor_username", "occurred_at"], name="audit_actor_time")
NEW = models.Index(fields=["actor_username", "occurred_at", "id"], name="audit_actor_time_seq")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("audit", "0004_actor_time_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="auditevent", name="audit_actor_time"),
                migrations.AlterField(
                    model_name="auditsubjectlink",
                    name="event",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="subject_links",
                        to="audit.auditevent",
                    ),
                ),
                migrations.AddIndex(model_name="auditevent", index=NEW),
            ],
            database_operations=[
                replace_index("audit.AuditEvent", OLD, NEW),
                drop_column_indexes("audit.AuditSubjectLink", ["event_id"]),
            ],
        ),
    ]
