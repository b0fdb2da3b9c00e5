"""python manage.py integrate_audit [--full]

Sequences committed audit events into the Merkle tree and signs a checkpoint, as the
periodic task does. --full looks at every event ever written, for events that committed
later than the sequencing grace period allows."""

from django.core.management.base import BaseCommand

from audit.log import integrate


class Command(BaseCommand):
    help = "Sequence audit events into the Merkle tree and sign a checkpoint."

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true")

    def handle(self, *args, full, **options):
        result = integrate(sweep=True, full=full, force_checkpoint=True)
        if result is None:
            self.stdout.write("another integrator is running; nothing done")
            return
        signed = f"checkpoint at size {result.checkpoint.tree_size}" if result.checkpoint else "no new checkpoint"
        self.stdout.write(f"appended {result.appended} leaves; tree size {result.tree_size}; {signed}")
