#!/usr/bin/env python3
"""Generate an audit log signing key, for a new deployment (no Django, no database).

    python3 tools/audit_keygen.py ORIGIN [--output FILE]

ORIGIN is the log's name, AUDIT_LOG_ORIGIN (e.g. evidence.example-council.gov.uk/audit-log).
Prints the private key (AUDIT_SIGNING_KEY; or writes it to FILE, mode 0600) and the public
verifier key to hand to the auditors. To rotate the key of a running service, use
``python manage.py rotate_audit_key`` instead: it also prints the AUDIT_VERIFIER_KEYS that
keep the old checkpoints verifiable. Needs Python 3.11 and ``cryptography``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
if str(REPOSITORY_ROOT) not in sys.path:
    sys.path.insert(0, str(REPOSITORY_ROOT))

from tlog.note import NoteError, generate_signer_key  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audit_keygen.py", description="Generate an audit log signing key.")
    parser.add_argument("origin", metavar="ORIGIN", help="the log's name (AUDIT_LOG_ORIGIN)")
    parser.add_argument("--output", metavar="FILE", help="write the private key here (mode 0600) rather than print it")
    args = parser.parse_args(argv)
    if any(ch.isspace() for ch in args.origin) or "+" in args.origin:
        parser.error("ORIGIN may not contain spaces or '+'")
    try:
        key = generate_signer_key(args.origin)
    except NoteError as error:
        parser.error(f"ORIGIN: {error}")
    if args.output:
        try:
            fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            parser.error(f"--output {args.output}: {error} (it must not exist yet)")
        with os.fdopen(fd, "w") as handle:
            handle.write(key.encode() + "\n")
        print(f"AUDIT_SIGNING_KEY_FILE={Path(args.output).resolve()}")
    else:
        print(f"AUDIT_SIGNING_KEY={key.encode()}")
    print(f"AUDIT_LOG_ORIGIN={args.origin}")
    print(f"# verifier key, for the auditors: {key.verifier().encode()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
