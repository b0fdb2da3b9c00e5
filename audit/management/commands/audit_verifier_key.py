"""python manage.py audit_verifier_key — print the log's public verifier key (name+id+key),
to hand to anyone who will check checkpoints and exports with tools/verify_log.py."""

from django.core.management.base import BaseCommand

from audit import keys


class Command(BaseCommand):
    help = "Print the audit log's verifier key."

    def handle(self, *args, **options):
        self.stdout.write(keys.verifier().encode())
