"""Viewings are never edited or deleted: the database rejects UPDATE, DELETE and TRUNCATE.
Deliberately irreversible."""

from django.db import migrations

from audit.append_only import protect_models


class Migration(migrations.Migration):
    dependencies = [("cases", "0001_initial"), ("audit", "0002_append_only")]

    operations = [migrations.RunPython(protect_models("cases.Viewing"))]
