"""python manage.py integrate_audit [--full] [--bulk [--batch-size N]]

Sequences committed audit events into the Merkle tree and signs a checkpoint, as the
periodic task does. --full looks at every event ever written, for events that committed
later than the sequencing grace period allows. --bulk sequences a large backlog (a bulk
load, a restored database) in large batches, with one checkpoint at the end: the same
tree, many times faster."""

import time

from django.core.management.base import BaseCommand, CommandError

from audit.log import integrate, sequence_backlog


class Command(BaseCommand):
    help = "Sequence audit events into the Merkle tree and sign a checkpoint."

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true")
        parser.add_argument("--bulk", action="store_true", help="Sequence a large backlog in large batches.")
        parser.add_argument("--batch-size", type=int, default=50_000, help="Events per batch with --bulk.")

    def handle(self, *args, full, bulk, batch_size, verbosity, **options):
        self.verbosity = verbosity
        started = time.monotonic()
        if bulk:
            if batch_size < 1:
                raise CommandError("--batch-size must be at least 1")
            result = sequence_backlog(
                full=full, batch_size=batch_size, read_ahead=True, progress=self._progress(started)
            )
        else:
            result = integrate(sweep=True, full=full, force_checkpoint=True)
        if result is None:
            self.stdout.write("another integrator is running; nothing done")
            return
        signed = f"checkpoint at size {result.checkpoint.tree_size}" if result.checkpoint else "no new checkpoint"
        elapsed = time.monotonic() - started
        self.stdout.write(f"appended {result.appended} leaves; tree size {result.tree_size}; {signed} ({elapsed:.1f}s)")

    def _progress(self, started: float):
        def report(appended: int) -> None:
            if self.verbosity >= 2:
                elapsed = time.monotonic() - started
                self.stderr.write(f"  {appended} leaves appended ({appended / elapsed:,.0f}/s)")

        return report
