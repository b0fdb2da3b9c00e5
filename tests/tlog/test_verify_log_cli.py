"""tools/verify_log.py, run as an auditor would: a separate process, files on disk."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tlog.merkle import InMemoryTree, leaf_hash, perfect_subtrees
from tlog.note import (
    Checkpoint,
    SignerKey,
    generate_signer_key,
    sign_checkpoint,
    sign_note,
)

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "verify_log.py"
ORIGIN = "evidence.example/audit-log"
LOG_SIZE = 23


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def make_leaves(count: int) -> list[bytes]:
    return [json.dumps({"id": index, "action": "case.read"}).encode() for index in range(count)]


@pytest.fixture(scope="module")
def signer() -> SignerKey:
    return generate_signer_key(ORIGIN)


@pytest.fixture(scope="module")
def leaves() -> list[bytes]:
    return make_leaves(LOG_SIZE)


@pytest.fixture(scope="module")
def tree(leaves: list[bytes]) -> InMemoryTree:
    return InMemoryTree([leaf_hash(leaf) for leaf in leaves])


def signed_checkpoint(tree: InMemoryTree, signer: SignerKey, size: int | None = None) -> str:
    size = tree.size if size is None else size
    return sign_checkpoint(Checkpoint(ORIGIN, size, tree.root(size)), signer)


def make_bundle(
    leaves: list[bytes],
    tree: InMemoryTree,
    signer: SignerKey,
    start: int = 0,
    end: int | None = None,
    *,
    record_leaf_hashes: bool = True,
    checkpoint_sizes: tuple[int, ...] = (),
) -> dict[str, Any]:
    """A bundle as the log's export would write it (format in verify_log.py)."""
    end = tree.size if end is None else end
    entries = []
    for index in range(start, end):
        entry: dict[str, Any] = {"index": index, "leaf": b64(leaves[index])}
        if record_leaf_hashes:
            entry["leaf_hash"] = b64(leaf_hash(leaves[index]))
        entries.append(entry)
    return {
        "origin": ORIGIN,
        "checkpoint": signed_checkpoint(tree, signer),
        "tree_size": tree.size,
        "start": start,
        "end": end,
        "entries": entries,
        "left_hashes": [b64(tree.subtree_hash(*r)) for r in perfect_subtrees(0, start)],
        "right_hashes": [b64(tree.subtree_hash(*r)) for r in perfect_subtrees(end, tree.size)],
        "checkpoints": [signed_checkpoint(tree, signer, size) for size in checkpoint_sizes],
    }


def run(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    # The verifier is meant to run as its own process; the arguments are the test's own.
    return subprocess.run(  # noqa: S603
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def write(tmp_path: Path, name: str, content: str | dict[str, Any] | list[Any]) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def verify_bundle(tmp_path: Path, bundle: dict[str, Any], signer: SignerKey) -> subprocess.CompletedProcess[str]:
    path = write(tmp_path, "bundle.json", bundle)
    return run("bundle", "--vkey", signer.verifier().encode(), path, cwd=tmp_path)


def assert_fails_with(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# --- note -----------------------------------------------------------------------------


def test_a_signed_checkpoint_verifies_and_its_size_and_root_are_printed(
    tmp_path: Path, tree: InMemoryTree, signer: SignerKey
) -> None:
    note = write(tmp_path, "checkpoint.note", signed_checkpoint(tree, signer))
    result = run("note", "--vkey", signer.verifier().encode(), note, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"origin: {ORIGIN}" in result.stdout
    assert f"size: {LOG_SIZE}" in result.stdout
    assert f"root: {b64(tree.root())}" in result.stdout


def test_the_verifier_key_can_be_read_from_a_file(tmp_path: Path, tree: InMemoryTree, signer: SignerKey) -> None:
    key_file = write(tmp_path, "log.vkey", signer.verifier().encode() + "\n")
    note = write(tmp_path, "checkpoint.note", signed_checkpoint(tree, signer))
    assert run("note", "--vkey", key_file, note, cwd=tmp_path).returncode == 0


def test_a_checkpoint_with_a_forged_signature_fails(tmp_path: Path, tree: InMemoryTree, signer: SignerKey) -> None:
    # The genuine signature of size 22, moved onto a claim about size 23.
    genuine = signed_checkpoint(tree, signer, LOG_SIZE - 1)
    signature_line = genuine.split("\n\n")[-1]
    forged_text = Checkpoint(ORIGIN, LOG_SIZE, tree.root(LOG_SIZE - 1)).text()
    note = write(tmp_path, "forged.note", forged_text + "\n" + signature_line)
    result = run("note", "--vkey", signer.verifier().encode(), note, cwd=tmp_path)
    assert_fails_with(result, "invalid signature")


def test_a_checkpoint_signed_by_another_key_fails(tmp_path: Path, tree: InMemoryTree) -> None:
    trusted, other = generate_signer_key(ORIGIN), generate_signer_key(ORIGIN)
    note = write(tmp_path, "other.note", signed_checkpoint(tree, other))
    result = run("note", "--vkey", trusted.verifier().encode(), note, cwd=tmp_path)
    assert_fails_with(result, "no signature by a trusted key")


def test_a_signed_note_that_is_not_a_checkpoint_fails(tmp_path: Path, signer: SignerKey) -> None:
    note = write(tmp_path, "text.note", sign_note("just some text\n", signer))
    result = run("note", "--vkey", signer.verifier().encode(), note, cwd=tmp_path)
    assert_fails_with(result, "checkpoint")


def test_a_malformed_verifier_key_is_reported(tmp_path: Path, signer: SignerKey) -> None:
    note = write(tmp_path, "text.note", sign_note("just some text\n", signer))
    assert_fails_with(run("note", "--vkey", "not-a-key", note, cwd=tmp_path), "verifier key")


# --- bundle ---------------------------------------------------------------------------


def test_a_bundle_of_the_whole_log_verifies(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    result = verify_bundle(tmp_path, make_bundle(leaves, tree, signer), signer)
    assert result.returncode == 0, result.stderr
    assert f"size: {LOG_SIZE}" in result.stdout
    assert f"root: {b64(tree.root())}" in result.stdout


def test_a_bundle_with_one_altered_byte_fails_naming_that_entry(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    bundle = make_bundle(leaves, tree, signer)
    altered = bytearray(leaves[11])
    altered[5] ^= 0x01
    bundle["entries"][11]["leaf"] = b64(bytes(altered))
    assert_fails_with(verify_bundle(tmp_path, bundle, signer), "entry index 11", "altered")


def test_an_altered_entry_with_a_recomputed_leaf_hash_still_fails_on_the_root(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    bundle = make_bundle(leaves, tree, signer)
    forged = leaves[11].replace(b"case.read", b"case.edit")
    bundle["entries"][11].update(leaf=b64(forged), leaf_hash=b64(leaf_hash(forged)))
    assert_fails_with(verify_bundle(tmp_path, bundle, signer), "does not match the signed")


def test_earlier_checkpoints_narrow_down_where_an_unhashed_entry_was_altered(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    bundle = make_bundle(leaves, tree, signer, record_leaf_hashes=False, checkpoint_sizes=(16, 8, 12))
    bundle["entries"][13]["leaf"] = b64(leaves[13] + b" ")
    result = verify_bundle(tmp_path, bundle, signer)
    assert_fails_with(result, "checkpoint at size 16", "[12, 16)")


def test_a_bundle_with_a_missing_entry_fails_naming_its_index(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    bundle = make_bundle(leaves, tree, signer)
    del bundle["entries"][7]
    assert_fails_with(verify_bundle(tmp_path, bundle, signer), "entry index 7 is missing")


def test_a_bundle_missing_its_last_entry_fails_naming_that_index(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    bundle = make_bundle(leaves, tree, signer)
    bundle["entries"].pop()
    result = verify_bundle(tmp_path, bundle, signer)
    assert_fails_with(result, f"entry index {LOG_SIZE - 1} is missing")


def test_a_bundle_with_a_repeated_entry_fails_naming_its_index(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    bundle = make_bundle(leaves, tree, signer)
    bundle["entries"].insert(5, bundle["entries"][4])
    assert_fails_with(verify_bundle(tmp_path, bundle, signer), "entry index 4 is repeated")


def test_a_bundle_with_a_forged_checkpoint_signature_fails(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    bundle = make_bundle(leaves, tree, signer)
    text, signature_line = bundle["checkpoint"].split("\n\n")
    prefix, encoded = signature_line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 0x80
    bundle["checkpoint"] = f"{text}\n\n{prefix} {b64(bytes(raw))}\n"
    assert_fails_with(verify_bundle(tmp_path, bundle, signer), "invalid signature")


def test_a_bundle_whose_origin_differs_from_its_checkpoint_fails(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    bundle = make_bundle(leaves, tree, signer)
    bundle["origin"] = "another.example/log"
    assert_fails_with(verify_bundle(tmp_path, bundle, signer), "origin")


def test_a_bundle_whose_tree_size_differs_from_its_checkpoint_fails(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    bundle = make_bundle(leaves, tree, signer)
    bundle["tree_size"] = LOG_SIZE + 1
    assert_fails_with(verify_bundle(tmp_path, bundle, signer), "tree_size")


def test_a_bundle_of_part_of_the_log_verifies_with_its_subtree_hashes(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    bundle = make_bundle(leaves, tree, signer, 5, 18, checkpoint_sizes=(5, 9, 18))
    result = verify_bundle(tmp_path, bundle, signer)
    assert result.returncode == 0, result.stderr
    assert "entries [5, 18)" in result.stdout


def test_a_partial_bundle_with_a_wrong_subtree_hash_fails(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    bundle = make_bundle(leaves, tree, signer, 5, 18)
    bundle["right_hashes"][0] = b64(leaf_hash(b"not the real subtree"))
    assert_fails_with(verify_bundle(tmp_path, bundle, signer), "does not match the signed")


def test_a_partial_bundle_with_missing_subtree_hashes_fails(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    bundle = make_bundle(leaves, tree, signer, 5, 18)
    bundle["left_hashes"].pop()
    assert_fails_with(verify_bundle(tmp_path, bundle, signer), "left_hashes", "[0, 5)")


def test_a_bundle_that_is_not_json_fails(tmp_path: Path, signer: SignerKey) -> None:
    path = write(tmp_path, "bundle.json", "{not json")
    result = run("bundle", "--vkey", signer.verifier().encode(), path, cwd=tmp_path)
    assert_fails_with(result, "not valid JSON")


# --- inclusion and consistency --------------------------------------------------------


def test_an_inclusion_proof_verifies_against_a_signed_checkpoint(
    tmp_path: Path, leaves: list[bytes], tree: InMemoryTree, signer: SignerKey
) -> None:
    note = write(tmp_path, "checkpoint.note", signed_checkpoint(tree, signer))
    proof = write(
        tmp_path,
        "proof.json",
        {
            "index": 9,
            "tree_size": LOG_SIZE,
            "proof": [b64(h) for h in tree.inclusion_proof(9)],
        },
    )
    vkey = signer.verifier().encode()
    args = [
        "inclusion",
        "--vkey",
        vkey,
        "--note",
        note,
        "--index",
        9,
        "--proof-json",
        proof,
    ]
    good = run(*args, "--leaf-b64", b64(leaves[9]), cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    bad = run(*args, "--leaf-b64", b64(leaves[10]), cwd=tmp_path)
    assert_fails_with(bad, "inclusion of leaf 9")


def test_a_consistency_proof_verifies_between_two_signed_checkpoints(
    tmp_path: Path, tree: InMemoryTree, signer: SignerKey
) -> None:
    old = write(tmp_path, "old.note", signed_checkpoint(tree, signer, 10))
    new = write(tmp_path, "new.note", signed_checkpoint(tree, signer))
    good_proof = write(tmp_path, "good.json", [b64(h) for h in tree.consistency_proof(10)])
    bad_proof = write(tmp_path, "bad.json", [b64(h) for h in tree.consistency_proof(11)])
    vkey = signer.verifier().encode()
    args = ["consistency", "--vkey", vkey, "--old", old, "--new", new, "--proof-json"]
    assert run(*args, good_proof, cwd=tmp_path).returncode == 0
    assert_fails_with(run(*args, bad_proof, cwd=tmp_path), f"consistency from 10 to {LOG_SIZE}")
