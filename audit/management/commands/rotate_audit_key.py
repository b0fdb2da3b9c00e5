"""python manage.py rotate_audit_key [--output FILE]

Generates the log's next signing key (for the same AUDIT_LOG_ORIGIN) and prints what to
set: the new AUDIT_SIGNING_KEY (written to FILE, mode 0600, instead of printed, with
--output), and AUDIT_VERIFIER_KEYS with the current key's verifier added, so that every
checkpoint signed so far still verifies. Nothing changes until the service runs with the new
settings; the first checkpoint it then signs with the new key is recorded in the audit log
as ``audit.key_rotated`` with both key ids (audit/log.py). See docs/operations.md."""

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit import keys
from tlog.note import generate_signer_key


class Command(BaseCommand):
    help = "Generate the audit log's next signing key and print the settings that rotate to it."

    def add_arguments(self, parser):
        parser.add_argument(
            "--output", metavar="FILE", help="Write the new private key here (mode 0600) rather than print it."
        )

    def handle(self, *args, output, **options):
        current = keys.verifier()
        new = generate_signer_key(settings.AUDIT_LOG_ORIGIN)
        if output:
            path = Path(output)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as exc:
                raise CommandError(f"--output {output}: {exc} (it must not exist yet)") from exc
            with os.fdopen(fd, "w") as handle:
                handle.write(new.encode() + "\n")
            key_line = f"AUDIT_SIGNING_KEY_FILE={path.resolve()}"
        else:
            key_line = f"AUDIT_SIGNING_KEY={new.encode()}"
        trusted = [key.encode() for key in keys.trusted_verifiers()]
        self.stdout.write(
            "\n".join(
                [
                    f"Current key:  {current.key_id.hex()}  {current.encode()}",
                    f"New key:      {new.key_id.hex()}  {new.verifier().encode()}",
                    "",
                    "Set these for the web app, the worker and beat (everything that runs with these settings), then",
                    "restart them all; the first checkpoint signed with the new key is recorded as audit.key_rotated:",
                    "",
                    key_line,
                    f"AUDIT_VERIFIER_KEYS={','.join(trusted)}",
                    "",
                    "Give the new verifier key to the auditors, and keep trusting the old one (it signed every",
                    "checkpoint so far). Keep the private key secret and backed up; never commit it.",
                ]
            )
            + "\n"
        )
