"""python manage.py verify_audit [--checkpoint NOTE_FILE ...] [--vkey VKEY ...]

Recomputes the Merkle tree from the stored events (in bounded memory), checks every stored
checkpoint's root and signature, and that the log still contains every trusted checkpoint
(the service's own copy in DATA_DIR, plus any given). Exits non-zero naming the first bad
leaf index or checkpoint. The keys trusted are the service's own (its current key and
AUDIT_VERIFIER_KEYS), or exactly those given with --vkey (repeatable: after a rotation,
the old key and the new)."""

import time

from django.core.management.base import BaseCommand, CommandError

from audit import keys
from audit.log import witness_path
from audit.verify import VerificationFailed, verify_log
from tlog.note import NoteError, parse_verifier_key


class Command(BaseCommand):
    help = "Verify the audit log's Merkle tree and signed checkpoints."

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoint",
            action="append",
            default=[],
            metavar="NOTE_FILE",
            help="A signed checkpoint kept outside the database (repeatable).",
        )
        parser.add_argument(
            "--vkey",
            action="append",
            default=[],
            help="A trusted verifier key (repeatable; default: the service's own key and AUDIT_VERIFIER_KEYS).",
        )
        parser.add_argument("--no-witness", action="store_true", help="Ignore the copy kept in DATA_DIR.")

    def handle(self, *args, checkpoint, vkey, no_witness, **options):
        try:
            verifiers = [parse_verifier_key(text) for text in vkey] if vkey else keys.trusted_verifiers()
        except NoteError as exc:
            raise CommandError(f"--vkey: {exc}") from exc
        notes = []
        for path in checkpoint:
            try:
                with open(path) as handle:
                    notes.append(handle.read())
            except OSError as exc:
                raise CommandError(f"--checkpoint {path}: {exc}") from exc
        if not no_witness and witness_path().exists():
            notes.append(witness_path().read_text())
        started = time.monotonic()
        try:
            report = verify_log(verifiers=verifiers, trusted_checkpoints=notes)
        except VerificationFailed as exc:
            raise CommandError(f"audit log verification FAILED: {exc}") from exc
        elapsed = time.monotonic() - started
        rate = report.leaves / elapsed if elapsed > 0 else 0
        self.stdout.write(
            self.style.SUCCESS(
                f"audit log OK: {report.leaves} leaves, {report.checkpoints} checkpoints, "
                f"{len(notes)} trusted checkpoint(s), root {report.root.hex()} "
                f"({elapsed:.2f}s, {rate:,.0f} events/s)"
            )
        )
