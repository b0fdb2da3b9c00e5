"""The log's Ed25519 signing key, and the public verifier keys anyone who checks trusts.

One key signs at a time (``AUDIT_SIGNING_KEY``); after a rotation the verifier keys of
earlier ones stay trusted (``AUDIT_VERIFIER_KEYS``), so every checkpoint they signed still
verifies: each signed note names its key (origin and key id), and the trusted key with that
name and id checks it."""

from __future__ import annotations

import os
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from tlog.note import (
    NoteError,
    SignerKey,
    VerifierKey,
    generate_signer_key,
    parse_signer_key,
    parse_verifier_key,
)


@cache
def signer() -> SignerKey:
    """From ``AUDIT_SIGNING_KEY`` (or ``_FILE``); otherwise (only with ``DEBUG`` on: the
    settings refuse to start without one when it is off) the key kept in
    ``DATA_DIR/audit-signing.key``, generated (mode 0600) the first time it is needed."""
    text = settings.AUDIT_SIGNING_KEY
    if not text:
        path = settings.AUDIT_SIGNING_KEY_PATH
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = generate_signer_key(settings.AUDIT_LOG_ORIGIN)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process generated it first: use theirs
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(key.encode() + "\n")
        text = path.read_text().strip()
    try:
        key = parse_signer_key(text)
    except NoteError as exc:
        raise ImproperlyConfigured(f"AUDIT_SIGNING_KEY is not a valid signed-note Ed25519 key: {exc}") from exc
    if key.name != settings.AUDIT_LOG_ORIGIN:
        raise ImproperlyConfigured(
            f"The audit signing key is named {key.name!r} but AUDIT_LOG_ORIGIN is {settings.AUDIT_LOG_ORIGIN!r}; "
            "checkpoints are signed under the log's origin."
        )
    return key


def verifier() -> VerifierKey:
    return signer().verifier()


def trusted_verifiers() -> list[VerifierKey]:
    """The current key's verifier, then those of earlier keys (``AUDIT_VERIFIER_KEYS``)."""
    current = verifier()
    trusted = [current]
    for text in settings.AUDIT_VERIFIER_KEYS:
        try:
            key = parse_verifier_key(text)
        except NoteError as exc:
            raise ImproperlyConfigured(f"AUDIT_VERIFIER_KEYS: {text!r} is not a verifier key: {exc}") from exc
        if key not in trusted:
            trusted.append(key)
    return trusted


def verifier_for(key_id: str) -> VerifierKey | None:
    """The trusted verifier key with this key id (hex), if any."""
    for key in trusted_verifiers():
        if key.key_id.hex() == key_id.lower():
            return key
    return None
