"""The audit tables reject UPDATE, DELETE and TRUNCATE in the database itself.
Deliberately irreversible: no migration path removes the protection."""

from django.db import migrations

from audit.append_only import protect_models


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(protect_models("audit.AuditEvent", "audit.AuditSubjectLink"))]
