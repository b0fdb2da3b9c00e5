"""C2SP signed notes with Ed25519 keys, and tlog checkpoints carried in them.

A checkpoint (https://c2sp.org/tlog-checkpoint) is the log's signed statement "my
tree of ``size`` leaves has root ``root``"; it travels as a signed note
(https://c2sp.org/signed-note) so that standard tooling, such as the Go package
``golang.org/x/mod/sumdb/note``, can check it too. The formats here follow those
specifications and that package's key encodings::

    note         = text (ending in "\\n") + "\\n" + signature line, one or more
    sig line     = "\u2014 " + key name + " " + base64(key id[4] || signature) + "\\n"
    key id       = SHA-256(key name || 0x0A || 0x01 || Ed25519 public key)[:4]
    verifier key = name + "+" + hex(key id) + "+" + base64(0x01 || public key)
    signer key   = "PRIVATE+KEY+" + name + "+" + hex(key id) + "+" + base64(0x01||seed)
    checkpoint   = origin "\\n" decimal size "\\n" base64(root) "\\n" [extension lines]

The Ed25519 signature covers the note text, final newline included, and nothing
else. Ed25519 is deterministic, so a text signed twice with one key gives the same
note byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

ED25519_ALGORITHM = 0x01
"""Signature type byte for Ed25519 in key ids and encoded keys (signed-note spec)."""

KEY_ID_SIZE = 4
ED25519_KEY_SIZE = 32
ROOT_HASH_SIZE = 32

MAX_SIGNATURES = 100
"""Signature lines accepted in one note; more is refused before any is checked."""

SIGNATURE_PREFIX = "\u2014 "
"""Start of every signature line: EM DASH (U+2014) and a space."""

_PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
_KEY_ID_PATTERN = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL_PATTERN = re.compile(r"0|[1-9][0-9]*")
_MAX_TREE_SIZE = 2**64 - 1


class NoteError(ValueError):
    """A key, note or signature is malformed, or a note did not verify."""


class CheckpointError(NoteError):
    """A note's text is not a well-formed checkpoint."""


# --- Keys -----------------------------------------------------------------------------


def validate_key_name(name: str) -> None:
    """Refuse names the note format cannot carry: empty, with spaces, or with '+'.

    Spaces would break the signature line and '+' the key encodings.
    """
    if not isinstance(name, str) or not name:
        raise NoteError("key name must be a non-empty string")
    if "+" in name or any(char.isspace() for char in name):
        raise NoteError(f"key name {name!r} must not contain spaces or '+'")
    if any(ord(char) < 0x20 for char in name):
        raise NoteError(f"key name {name!r} must not contain control characters")


def compute_key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte id that signature lines use to name an Ed25519 key."""
    validate_key_name(name)
    if len(public_key) != ED25519_KEY_SIZE:
        raise NoteError(f"an Ed25519 public key is {ED25519_KEY_SIZE} bytes")
    material = name.encode() + b"\n" + bytes([ED25519_ALGORITHM]) + public_key
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE]


@dataclass(frozen=True)
class VerifierKey:
    """A named Ed25519 public key: what an auditor needs to check checkpoints."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        # Validates the name and the key length in one place.
        compute_key_id(self.name, self.public_key)

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id, as found at the start of each signature."""
        return compute_key_id(self.name, self.public_key)

    def encode(self) -> str:
        """The ``name+keyid+base64`` text form, as used by Go's sumdb/note."""
        key = base64.b64encode(bytes([ED25519_ALGORITHM]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{key}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class SignerKey:
    """A named Ed25519 private key (its 32-byte seed), which signs checkpoints.

    The seed is left out of ``repr`` so that the key cannot leak through logs.
    """

    name: str
    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        if len(self.seed) != ED25519_KEY_SIZE:
            raise NoteError(f"an Ed25519 private key seed is {ED25519_KEY_SIZE} bytes")

    def _private_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key derived from the seed."""
        return self._private_key().public_key().public_bytes_raw()

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id, shared with the matching :class:`VerifierKey`."""
        return compute_key_id(self.name, self.public_key)

    def verifier(self) -> VerifierKey:
        """The public half, to publish for auditors."""
        return VerifierKey(self.name, self.public_key)

    def encode(self) -> str:
        """The ``PRIVATE+KEY+name+keyid+base64`` text form of Go's sumdb/note."""
        key = base64.b64encode(bytes([ED25519_ALGORITHM]) + self.seed).decode()
        return f"{_PRIVATE_KEY_PREFIX}{self.name}+{self.key_id.hex()}+{key}"

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private_key().sign(message)


def generate_signer_key(name: str) -> SignerKey:
    """A new random signer key for ``name``; publish ``.verifier().encode()``."""
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return SignerKey(name, seed)


def _decode_base64(text: str, what: str) -> bytes:
    """Strict standard base64: no whitespace, no stray characters, right padding."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteError(f"{what} is not valid base64") from None


def _parse_encoded_key(text: str, what: str) -> tuple[str, bytes, bytes]:
    """Split ``name+keyid+base64(0x01 || key)`` into (name, key id, raw key)."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteError(f"{what} must have the form name+keyid+base64key")
    name, key_id_hex, key_base64 = parts
    validate_key_name(name)
    if not _KEY_ID_PATTERN.fullmatch(key_id_hex):
        raise NoteError(f"{what} key id must be 8 hexadecimal digits")
    key = _decode_base64(key_base64, f"{what} key")
    if not key or key[0] != ED25519_ALGORITHM:
        raise NoteError(f"{what} uses an unsupported algorithm (only Ed25519, 0x01)")
    if len(key) != 1 + ED25519_KEY_SIZE:
        raise NoteError(f"{what} must hold a {ED25519_KEY_SIZE}-byte Ed25519 key")
    return name, bytes.fromhex(key_id_hex), key[1:]


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse ``name+keyid+base64``, checking that the key id matches the key."""
    name, key_id, public_key = _parse_encoded_key(text, "verifier key")
    verifier = VerifierKey(name, public_key)
    if verifier.key_id != key_id:
        raise NoteError("verifier key id does not match its name and public key")
    return verifier


def parse_signer_key(text: str) -> SignerKey:
    """Parse ``PRIVATE+KEY+name+keyid+base64``, checking the key id after derivation."""
    if not text.startswith(_PRIVATE_KEY_PREFIX):
        raise NoteError(f"signer key must start with {_PRIVATE_KEY_PREFIX!r}")
    name, key_id, seed = _parse_encoded_key(text[len(_PRIVATE_KEY_PREFIX) :], "signer key")
    signer = SignerKey(name, seed)
    if signer.key_id != key_id:
        raise NoteError("signer key id does not match its name and derived public key")
    return signer


def verifier_key_from_signer_key(signer_key: str) -> str:
    """The encoded verifier key for an encoded signer key."""
    return parse_signer_key(signer_key).verifier().encode()


# --- Notes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """One signature line of a note."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """The signature line, final newline included."""
        encoded = base64.b64encode(self.key_id + self.signature).decode()
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}\n"


@dataclass(frozen=True)
class Note:
    """A note as written: its text and all its signature lines, none checked."""

    text: str
    signatures: tuple[Signature, ...]


@dataclass(frozen=True)
class VerifiedNote:
    """A note with at least one valid signature by a trusted key.

    ``unverified`` holds signatures by keys the caller did not trust (witnesses,
    rotated keys, ...): the spec requires them to be ignored, not rejected.
    """

    text: str
    verified: tuple[Signature, ...]
    unverified: tuple[Signature, ...]


def sign_note(text: str, *signers: SignerKey) -> str:
    """Sign ``text`` (which must end in a newline) with each of ``signers``."""
    if not signers:
        raise NoteError("a note needs at least one signer")
    _check_note_characters(text)
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    message = text.encode()
    lines = [Signature(s.name, s.key_id, s.sign(message)).line() for s in signers]
    return text + "\n" + "".join(lines)


def _check_note_characters(text: str) -> None:
    """Signed notes are UTF-8 without control characters other than newline."""
    for position, char in enumerate(text):
        if ord(char) < 0x20 and char != "\n":
            raise NoteError(f"note has a control character (U+{ord(char):04X}) at {position}")
        if 0xD800 <= ord(char) <= 0xDFFF:
            raise NoteError(f"note is not valid UTF-8 (lone surrogate at {position})")


def _as_text(message: str | bytes) -> str:
    if isinstance(message, str):
        return message
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("note is not valid UTF-8") from None


def parse_note(message: str | bytes) -> Note:
    """Split a signed note into text and signature lines, checking only the syntax.

    The text ends at the last blank line; everything after it must be well-formed
    signature lines, at most :data:`MAX_SIGNATURES` of them.
    """
    message = _as_text(message)
    _check_note_characters(message)
    split = message.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line between its text and its signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if not block:
        raise NoteError("note has no signature lines")
    if not block.endswith("\n"):
        raise NoteError("note's last signature line does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    return Note(text, tuple(_parse_signature_line(line) for line in lines))


def _parse_signature_line(line: str) -> Signature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError(f"signature line must start with an em dash and a space: {line!r}")
    name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    validate_key_name(name)
    raw = _decode_base64(encoded, f"signature by {name!r}")
    if len(raw) <= KEY_ID_SIZE:
        raise NoteError(f"signature by {name!r} is too short")
    return Signature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


def _index_verifiers(
    verifiers: VerifierKey | Iterable[VerifierKey],
) -> dict[tuple[str, bytes], VerifierKey]:
    """Trusted keys by (name, key id), the pair that names a key in a note."""
    if isinstance(verifiers, VerifierKey):
        verifiers = [verifiers]
    known: dict[tuple[str, bytes], VerifierKey] = {}
    for verifier in verifiers:
        key = (verifier.name, verifier.key_id)
        if key in known and known[key] != verifier:
            raise NoteError(f"ambiguous trusted keys for {verifier.name}+{verifier.key_id.hex()}")
        known[key] = verifier
    return known


def open_note(message: str | bytes, verifiers: VerifierKey | Iterable[VerifierKey]) -> VerifiedNote:
    """Parse a signed note and check it against the trusted ``verifiers``.

    Signatures by unknown keys are set aside as unverified. A signature whose key
    name and id match a trusted key must verify, else the whole note is refused:
    it was forged or altered. At least one trusted signature is required.
    """
    known = _index_verifiers(verifiers)
    note = parse_note(message)
    message_bytes = note.text.encode()
    verified: dict[tuple[str, bytes], Signature] = {}
    unverified: dict[Signature, None] = {}
    for signature in note.signatures:
        key = (signature.name, signature.key_id)
        verifier = known.get(key)
        if verifier is None:
            unverified.setdefault(signature)
        elif key not in verified:
            if not verifier.verify(message_bytes, signature.signature):
                key_text = f"{signature.name}+{signature.key_id.hex()}"
                raise NoteError(f"invalid signature for key {key_text}")
            verified[key] = signature
    if not verified:
        trusted = ", ".join(f"{name}+{key_id.hex()}" for name, key_id in known) or "none"
        raise NoteError(f"note has no signature by a trusted key (trusted: {trusted})")
    return VerifiedNote(note.text, tuple(verified.values()), tuple(unverified))


# --- Checkpoints ----------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """The log's tree head: origin, tree size, root hash, optional extension lines."""

    origin: str
    size: int
    root: bytes
    extension_lines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise CheckpointError("checkpoint origin must be one non-empty line")
        if not isinstance(self.size, int) or isinstance(self.size, bool):
            raise CheckpointError("checkpoint tree size must be an integer")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint tree size {self.size} is out of range")
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_HASH_SIZE:
            raise CheckpointError(f"checkpoint root hash must be {ROOT_HASH_SIZE} bytes")
        for line in self.extension_lines:
            if not isinstance(line, str) or not line or "\n" in line:
                raise CheckpointError("checkpoint extension lines must be non-empty lines")

    def text(self) -> str:
        """The note text of this checkpoint, final newline included."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "\n".join([*lines, *self.extension_lines]) + "\n"


def format_checkpoint(origin: str, size: int, root: bytes, extension_lines: Sequence[str] = ()) -> str:
    """Checkpoint note text: ``origin\\nsize\\nbase64(root)\\n`` plus any extensions."""
    return Checkpoint(origin, size, root, tuple(extension_lines)).text()


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse checkpoint text strictly: only what :func:`format_checkpoint` writes.

    The size must be plain decimal without leading zeros and the root canonical
    base64 of 32 bytes, so that one tree head has exactly one text, and so one
    signature.
    """
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint must have an origin, a tree size and a root hash")
    origin, size_text, root_text, *extension_lines = lines
    if not _DECIMAL_PATTERN.fullmatch(size_text):
        raise CheckpointError(f"checkpoint tree size {size_text!r} is not a plain decimal")
    try:
        root = _decode_base64(root_text, "checkpoint root hash")
    except NoteError as error:
        raise CheckpointError(str(error)) from None
    if base64.b64encode(root).decode() != root_text:
        raise CheckpointError("checkpoint root hash is not canonical base64")
    return Checkpoint(origin, int(size_text), root, tuple(extension_lines))


def sign_checkpoint(checkpoint: Checkpoint, *signers: SignerKey) -> str:
    """The signed note of ``checkpoint``."""
    return sign_note(checkpoint.text(), *signers)


def open_checkpoint(message: str | bytes, verifiers: VerifierKey | Iterable[VerifierKey]) -> Checkpoint:
    """Verify a signed checkpoint note and parse its text."""
    return parse_checkpoint(open_note(message, verifiers).text)
