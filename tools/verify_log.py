#!/usr/bin/env python3
"""Offline verifier for the Case Evidence Service audit log.

It needs Python 3.11, the ``cryptography`` package, the ``tlog`` package next to
this folder and the log's verifier key (``name+keyid+base64``, the public key): no
database, no network, no Django. Whoever holds an export of the log can therefore
check that nobody, a database administrator included, altered, removed, inserted or
reordered an audit event after the log signed a checkpoint covering it.

Subcommands (exit status 0 when everything verifies, 1 with the reason on stderr
when something does not, 2 for bad command-line usage)::

    verify_log.py note --vkey VKEY NOTE_FILE
    verify_log.py bundle --vkey VKEY BUNDLE_FILE
    verify_log.py inclusion --vkey VKEY --note NOTE_FILE --index N
                  (--leaf-b64 B64 | --leaf-hash-b64 B64) --proof-json FILE
    verify_log.py consistency --vkey VKEY --old NOTE_FILE --new NOTE_FILE
                  --proof-json FILE

VKEY is the verifier key itself or the path of a file holding it (one key a line).
``--vkey`` may be given several times: after the log's signing key was rotated, trust the
old key and the new, and each signed note is checked with the key it names (its origin
and key id). A note signed by none of the keys given fails.

Bundle format
-------------
A bundle is a JSON object exporting the entries ``[start, end)`` of the log together
with a signed checkpoint for a tree of ``tree_size >= end`` leaves::

    {
      "origin": "<log origin>",              // must equal the checkpoint's origin
      "checkpoint": "<signed note>",         // C2SP checkpoint, signed by VKEY
      "tree_size": 1234,                     // must equal the checkpoint's size
      "start": 0,                            // first entry index, inclusive
      "end": 1234,                           // last entry index, exclusive
      "entries": [                           // exactly end - start, in index order
        {"index": 0,
         "leaf": "<base64 leaf bytes>",      // the leaf exactly as hashed
         "leaf_hash": "<base64>",            // optional, see below
         "opening": {"salt": "<base64>",     // optional, see below
                     "fields": {...}}},
        ...
      ],
      "left_hashes": ["<base64>", ...],      // required when start > 0
      "right_hashes": ["<base64>", ...],     // required when end < tree_size
      "checkpoints": ["<signed note>", ...]  // optional earlier checkpoints
    }

Other keys are allowed and ignored. The verifier recomputes the root of the signed
tree and compares it with the checkpoint:

- For the whole log (``start == 0`` and ``end == tree_size``) the root comes from the
  entries alone: leaf hash = SHA-256(0x00 || leaf), RFC 9162 section 2.1.
- For a sub-range, the leaves outside it are stood in for by the hashes of the
  perfect subtrees that cover them, in left-to-right order: ``left_hashes`` for
  ``[0, start)`` and ``right_hashes`` for ``[end, tree_size)``, split as
  ``tlog.merkle.perfect_subtrees`` splits them (ranges of 2**k leaves starting at a
  multiple of 2**k, largest first). These hashes cannot be forged: any other value
  gives another root.
- ``leaf_hash``, when present, is the leaf hash the log recorded when the event was
  appended. It adds no trust (the root is what is signed) but lets the verifier name
  the exact entry whose bytes were altered afterwards.
- ``opening``, when present, holds the salt and the personal fields that the leaf
  commits to only through its ``commitment`` (SHA-256(salt || canonical JSON of the
  fields)); the verifier recomputes the commitment, so altered personal fields or
  payloads are found too, at their index.
- ``checkpoints`` are other signed checkpoints of the same log at sizes within
  ``[start, end]``. Each is checked against the running root when the entries reach
  its size, which both proves that the log never forked and narrows down where an
  altered entry lies.

Entry indices must run from ``start`` without gaps or repeats; the first wrong index
is named.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
if str(REPOSITORY_ROOT) not in sys.path:
    sys.path.insert(0, str(REPOSITORY_ROOT))

from tlog import merkle  # noqa: E402
from tlog.note import (  # noqa: E402
    Checkpoint,
    NoteError,
    VerifierKey,
    open_checkpoint,
    parse_verifier_key,
)


class VerificationError(Exception):
    """Something did not verify; the message says what, for the person running this."""


# --- Inputs ---------------------------------------------------------------------------


def read_text(path: str, what: str) -> str:
    """A UTF-8 file's content, or a :class:`VerificationError` naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise VerificationError(f"cannot read {what} {path!r}: {error}") from None


def load_verifier_key(value: str) -> VerifierKey:
    """The verifier key given on the command line, inline or as a file path (its first)."""
    return load_verifier_keys([value])[0]


def load_verifier_keys(values: Sequence[str]) -> list[VerifierKey]:
    """Every verifier key given with ``--vkey``: inline, or files of one key a line."""
    keys: list[VerifierKey] = []
    for value in values:
        text = read_text(value, "verifier key file") if is_file(value) else value
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if not lines:
            raise VerificationError(f"bad verifier key: {value!r} holds no key")
        for line in lines:
            try:
                keys.append(parse_verifier_key(line))
            except NoteError as error:
                raise VerificationError(f"bad verifier key: {error}") from None
    return keys


def is_file(value: str) -> bool:
    """Whether ``value`` names an existing file (a key string is not a path)."""
    try:
        return Path(value).is_file()
    except (OSError, ValueError):
        return False


def verify_checkpoint_note(note_text: str, verifier: VerifierKey | Sequence[VerifierKey], what: str) -> Checkpoint:
    """Open a signed checkpoint, turning any failure into a message naming ``what``."""
    try:
        return open_checkpoint(note_text, verifier)
    except NoteError as error:
        raise VerificationError(f"{what}: {error}") from None


def load_json(path: str, what: str) -> Any:
    """Parse a JSON file, naming it on failure."""
    try:
        return json.loads(read_text(path, what))
    except json.JSONDecodeError as error:
        raise VerificationError(f"{what} {path!r} is not valid JSON: {error}") from None


def decode_hash(value: Any, what: str) -> bytes:
    """A base64 SHA-256 hash from JSON."""
    raw = decode_base64(value, what)
    if len(raw) != merkle.HASH_SIZE:
        raise VerificationError(f"{what} must be {merkle.HASH_SIZE} bytes, got {len(raw)}")
    return raw


def decode_base64(value: Any, what: str) -> bytes:
    """Strict standard base64 from JSON."""
    if not isinstance(value, str):
        raise VerificationError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"{what} is not valid base64") from None


def require(document: dict[str, Any], key: str, kind: type, what: str = "bundle") -> Any:
    """``document[key]``, which must exist and be of ``kind`` (bool is not an int)."""
    if key not in document:
        raise VerificationError(f"{what} has no {key!r} field")
    value = document[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise VerificationError(f"{what} field {key!r} must be of type {kind.__name__}")
    return value


def b64(data: bytes) -> str:
    """Base64 text, as checkpoints show hashes."""
    return base64.b64encode(data).decode()


# --- Bundles --------------------------------------------------------------------------


def verify_bundle(bundle: Any, verifier: VerifierKey | Sequence[VerifierKey]) -> Checkpoint:
    """Check a bundle (see the module docstring); return its verified checkpoint."""
    if not isinstance(bundle, dict):
        raise VerificationError("bundle must be a JSON object")
    origin = require(bundle, "origin", str)
    checkpoint = verify_checkpoint_note(require(bundle, "checkpoint", str), verifier, "bundle checkpoint")
    if checkpoint.origin != origin:
        raise VerificationError(f"checkpoint origin {checkpoint.origin!r} is not the bundle's {origin!r}")
    tree_size = require(bundle, "tree_size", int)
    if tree_size != checkpoint.size:
        raise VerificationError(f"bundle tree_size {tree_size} is not the checkpoint's {checkpoint.size}")
    start, end = require(bundle, "start", int), require(bundle, "end", int)
    if not 0 <= start <= end <= tree_size:
        raise VerificationError(f"bundle range [{start}, {end}) is not within the tree of size {tree_size}")
    milestones = MilestoneCheckpoints(bundle, verifier, origin, start, end)
    builder = merkle.TreeBuilder()
    append_subtree_hashes(builder, bundle, "left_hashes", 0, start)
    milestones.check(builder)
    for leaf_hash in iter_leaf_hashes(bundle, start, end):
        builder.append(leaf_hash)
        milestones.check(builder)
    append_subtree_hashes(builder, bundle, "right_hashes", end, tree_size)
    root = builder.root()
    if root != checkpoint.root:
        raise VerificationError(
            f"root {b64(root)} computed from entries [{start}, {end}) does not match "
            f"the signed checkpoint at size {tree_size} (root {b64(checkpoint.root)}): "
            f"an entry {milestones.describe_suspect_range(end)} was altered, removed, "
            f"inserted or reordered{suspect_subtree_hashes(start, end, tree_size)}"
        )
    return checkpoint


def suspect_subtree_hashes(start: int, end: int, tree_size: int) -> str:
    """The other possible culprit when a partial bundle's root does not match."""
    if start == 0 and end == tree_size:
        return ""
    return ", or a hash in left_hashes or right_hashes is wrong"


def append_subtree_hashes(builder: merkle.TreeBuilder, bundle: dict[str, Any], key: str, start: int, end: int) -> None:
    """Feed the perfect-subtree hashes standing in for leaves ``[start, end)``."""
    ranges = merkle.perfect_subtrees(start, end)
    hashes = bundle.get(key, [])
    if not isinstance(hashes, list) or len(hashes) != len(ranges):
        raise VerificationError(
            f"bundle {key!r} must list {len(ranges)} hashes, the perfect subtrees "
            f"covering [{start}, {end}), got {_count(hashes)}"
        )
    for position, ((first, last), value) in enumerate(zip(ranges, hashes, strict=True)):
        subtree_hash = decode_hash(value, f"{key}[{position}]")
        builder.append_subtree(subtree_hash, last - first)


def _count(value: Any) -> str:
    return str(len(value)) if isinstance(value, list) else type(value).__name__


def iter_leaf_hashes(bundle: dict[str, Any], start: int, end: int) -> Iterator[bytes]:
    """Yield the leaf hash of each entry in turn, checking that the indices run on.

    The first entry that is missing, repeated, out of order or malformed stops the
    check with a message naming its index.
    """
    entries = require(bundle, "entries", list)
    expected = start
    for entry in entries:
        index = entry_index(entry, expected)
        if expected >= end:
            raise VerificationError(f"entry index {index} is past the bundle's end {end}")
        if index != expected:
            raise VerificationError(describe_index_error(index, expected))
        yield entry_leaf_hash(entry, index)
        expected += 1
    if expected != end:
        raise VerificationError(f"entry index {expected} is missing: the entries stop before {end}")


def entry_index(entry: Any, expected: int) -> int:
    """The ``index`` of an entry, which must be an integer."""
    if not isinstance(entry, dict):
        raise VerificationError(f"entry expected at index {expected} is not a JSON object")
    return require(entry, "index", int, f"entry expected at index {expected}")


def describe_index_error(index: int, expected: int) -> str:
    """Name the first index that breaks the run of entries."""
    if index < expected:
        return f"entry index {index} is repeated or out of order (expected {expected})"
    return f"entry index {expected} is missing (the next entry has index {index})"


def entry_leaf_hash(entry: dict[str, Any], index: int) -> bytes:
    """The leaf hash of an entry, checked against its recorded ``leaf_hash`` if any."""
    what = f"entry index {index}"
    leaf = decode_base64(require(entry, "leaf", str, what), f"{what} leaf")
    computed = merkle.leaf_hash(leaf)
    if "opening" in entry:
        check_opening(entry["opening"], leaf, what)
    if "leaf_hash" in entry:
        recorded = decode_hash(entry["leaf_hash"], f"{what} leaf_hash")
        if recorded != computed:
            raise VerificationError(
                f"{what}: the leaf does not hash to the leaf hash recorded when it was "
                "logged; the entry (or its recorded hash) has been altered"
            )
    return computed


def canonical_json(value: Any) -> bytes:
    """The service's canonical JSON: keys sorted, no spaces, UTF-8 as itself."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def check_opening(opening: Any, leaf: bytes, what: str) -> None:
    """Check an entry's commitment opening against its leaf.

    The leaf commits to the event's personal fields (username, address, user agent,
    request id, payload) only through ``commitment`` = SHA-256(salt || canonical JSON of
    those fields). An export that carries them as ``opening: {"salt", "fields"}`` lets the
    verifier show that they too are unaltered.
    """
    if not isinstance(opening, dict):
        raise VerificationError(f"{what}: opening is not a JSON object")
    salt = decode_base64(require(opening, "salt", str, f"{what} opening"), f"{what} opening salt")
    fields = require(opening, "fields", dict, f"{what} opening")
    try:
        committed = base64.b64decode(json.loads(leaf)["commitment"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise VerificationError(f"{what}: the leaf carries no readable commitment") from None
    if hashlib.sha256(salt + canonical_json(fields)).digest() != committed:
        raise VerificationError(
            f"{what}: the event's personal fields or payload do not match the leaf's commitment; "
            "they were altered after the event was logged"
        )


class MilestoneCheckpoints:
    """Earlier signed checkpoints, checked as the running tree reaches their sizes.

    Each one that matches proves the entries below its size; the first that does
    not bounds the range holding the altered entry.
    """

    def __init__(
        self,
        bundle: dict[str, Any],
        verifier: VerifierKey | Sequence[VerifierKey],
        origin: str,
        start: int,
        end: int,
    ) -> None:
        notes = bundle.get("checkpoints", [])
        if not isinstance(notes, list):
            raise VerificationError("bundle 'checkpoints' must be a list of signed notes")
        self._pending: list[Checkpoint] = []
        for position, note_text in enumerate(notes):
            what = f"bundle checkpoints[{position}]"
            if not isinstance(note_text, str):
                raise VerificationError(f"{what} must be a signed note string")
            checkpoint = verify_checkpoint_note(note_text, verifier, what)
            if checkpoint.origin != origin:
                raise VerificationError(f"{what} has origin {checkpoint.origin!r}, not {origin!r}")
            if not start <= checkpoint.size <= end:
                raise VerificationError(f"{what} has size {checkpoint.size}, outside [{start}, {end}]")
            self._pending.append(checkpoint)
        self._pending.sort(key=lambda checkpoint: checkpoint.size, reverse=True)
        self._start = start
        self.verified_size = start

    def check(self, builder: merkle.TreeBuilder) -> None:
        """Compare the running root with every checkpoint at the builder's size."""
        while self._pending and self._pending[-1].size == builder.size:
            checkpoint = self._pending.pop()
            if builder.root() != checkpoint.root:
                raise VerificationError(self._mismatch(checkpoint.size))
            self.verified_size = checkpoint.size

    def _mismatch(self, size: int) -> str:
        """Why a checkpoint failed: the stand-in hashes, or an entry in a range."""
        if size == self._start:
            return (
                f"the signed checkpoint at size {size} does not match the bundle's "
                f"left_hashes, which stand in for entries [0, {size})"
            )
        return (
            f"the signed checkpoint at size {size} does not match the entries: an "
            f"entry {self.describe_suspect_range(size)} was altered, removed, inserted "
            "or reordered"
        )

    def describe_suspect_range(self, end: int) -> str:
        """Where the fault must be, given the checkpoints that did match."""
        return f"with index in [{self.verified_size}, {end})"


# --- Subcommands ----------------------------------------------------------------------


def print_checkpoint(checkpoint: Checkpoint) -> None:
    """What an auditor writes down: the tree head that was verified."""
    print(f"origin: {checkpoint.origin}")
    print(f"size: {checkpoint.size}")
    print(f"root: {b64(checkpoint.root)}")


def command_note(args: argparse.Namespace) -> None:
    """Verify a signed checkpoint note."""
    verifier = load_verifier_keys(args.vkey)
    checkpoint = verify_checkpoint_note(read_text(args.note_file, "note"), verifier, "note")
    print("checkpoint signature: OK")
    print_checkpoint(checkpoint)


def command_bundle(args: argparse.Namespace) -> None:
    """Verify an exported bundle of entries against its signed checkpoint."""
    verifier = load_verifier_keys(args.vkey)
    bundle = load_json(args.bundle_file, "bundle")
    checkpoint = verify_bundle(bundle, verifier)
    print(f"bundle: OK, entries [{bundle['start']}, {bundle['end']}) match the checkpoint")
    print_checkpoint(checkpoint)


def load_proof(path: str, fields: dict[str, int]) -> list[bytes]:
    """A proof file: a JSON list of base64 hashes, or an object with a ``proof`` list.

    Integer ``fields`` the object also carries (index, sizes) must agree with the
    values being verified, so a proof for another leaf or size is not misapplied.
    """
    document = load_json(path, "proof file")
    if isinstance(document, dict):
        for key, value in fields.items():
            if key in document and document[key] != value:
                raise VerificationError(f"proof file {key} {document[key]!r} is not {value}")
        document = document.get("proof")
    if not isinstance(document, list):
        raise VerificationError("proof file must hold a list of base64 hashes")
    return [decode_hash(value, f"proof hash {n}") for n, value in enumerate(document)]


def command_inclusion(args: argparse.Namespace) -> None:
    """Verify that one leaf is in the tree of a signed checkpoint."""
    verifier = load_verifier_keys(args.vkey)
    checkpoint = verify_checkpoint_note(read_text(args.note, "note"), verifier, "note")
    if args.leaf_b64 is not None:
        leaf_hash = merkle.leaf_hash(decode_base64(args.leaf_b64, "--leaf-b64"))
    else:
        leaf_hash = decode_hash(args.leaf_hash_b64, "--leaf-hash-b64")
    fields = {"index": args.index, "tree_size": checkpoint.size}
    proof = load_proof(args.proof_json, fields)
    try:
        merkle.verify_inclusion(leaf_hash, args.index, checkpoint.size, proof, checkpoint.root)
    except merkle.ProofError as error:
        raise VerificationError(f"inclusion of leaf {args.index}: {error}") from None
    print(f"inclusion: OK, leaf {args.index} is in the tree of the checkpoint")
    print_checkpoint(checkpoint)


def command_consistency(args: argparse.Namespace) -> None:
    """Verify that an older signed checkpoint is a prefix of a newer one."""
    verifier = load_verifier_keys(args.vkey)
    old = verify_checkpoint_note(read_text(args.old, "old note"), verifier, "old note")
    new = verify_checkpoint_note(read_text(args.new, "new note"), verifier, "new note")
    if old.origin != new.origin:
        raise VerificationError(f"checkpoints are of different logs: {old.origin!r}, {new.origin!r}")
    proof = load_proof(args.proof_json, {"size1": old.size, "size2": new.size})
    try:
        merkle.verify_consistency(old.size, new.size, proof, old.root, new.root)
    except merkle.ProofError as error:
        raise VerificationError(f"consistency from {old.size} to {new.size}: {error}") from None
    print(f"consistency: OK, the tree of size {old.size} is a prefix of size {new.size}")
    print_checkpoint(new)


def build_parser() -> argparse.ArgumentParser:
    """The command line described in the module docstring."""
    parser = argparse.ArgumentParser(
        prog="verify_log.py",
        description="Check the Case Evidence Service audit log offline.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    note = commands.add_parser("note", help="verify a signed checkpoint note")
    note.add_argument("note_file", metavar="NOTE_FILE")
    note.set_defaults(handler=command_note)

    bundle = commands.add_parser("bundle", help="verify an exported bundle of log entries")
    bundle.add_argument("bundle_file", metavar="BUNDLE_FILE")
    bundle.set_defaults(handler=command_bundle)

    inclusion = commands.add_parser("inclusion", help="verify an inclusion proof")
    inclusion.add_argument("--note", required=True, metavar="NOTE_FILE")
    inclusion.add_argument("--index", required=True, type=int)
    leaf = inclusion.add_mutually_exclusive_group(required=True)
    leaf.add_argument("--leaf-b64", help="the leaf bytes, base64")
    leaf.add_argument("--leaf-hash-b64", help="the leaf hash, base64")
    inclusion.add_argument("--proof-json", required=True, metavar="FILE")
    inclusion.set_defaults(handler=command_inclusion)

    consistency = commands.add_parser("consistency", help="verify a consistency proof")
    consistency.add_argument("--old", required=True, metavar="NOTE_FILE")
    consistency.add_argument("--new", required=True, metavar="NOTE_FILE")
    consistency.add_argument("--proof-json", required=True, metavar="FILE")
    consistency.set_defaults(handler=command_consistency)

    for subparser in (note, bundle, inclusion, consistency):
        subparser.add_argument(
            "--vkey",
            required=True,
            action="append",
            help="a trusted verifier key, or a file of them (repeatable: the keys before and after a rotation)",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; 0 when it verifies, 1 (reason on stderr) when not."""
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except VerificationError as error:
        print(f"verify_log: FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
