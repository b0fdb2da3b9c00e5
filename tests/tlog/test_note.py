"""C2SP signed notes, Ed25519 keys and tlog checkpoints."""

from __future__ import annotations

import base64
import hashlib

import pytest

from tlog.merkle import EMPTY_ROOT, leaf_hash
from tlog.note import (
    Checkpoint,
    CheckpointError,
    NoteError,
    SignerKey,
    compute_key_id,
    format_checkpoint,
    generate_signer_key,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    validate_key_name,
    verifier_key_from_signer_key,
)

# Published example of golang.org/x/mod/sumdb/note (note_test.go, TestSign and
# TestOpen): the keys, the text and the signatures that Go's implementation produces.
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_OTHER_VERIFIER_KEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_PETER_SIGNATURE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_SIGNATURE = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
GO_SIGNED_NOTE = GO_TEXT + "\n" + GO_PETER_SIGNATURE

ORIGIN = "evidence.example/audit-log"


@pytest.fixture(scope="module")
def signer() -> SignerKey:
    return generate_signer_key(ORIGIN)


def checkpoint_text(size: int = 3) -> str:
    return format_checkpoint(ORIGIN, size, leaf_hash(b"root stand-in"))


# --- Interoperability with the published Go example -----------------------------------


def test_the_go_signer_key_gives_the_published_key_id_and_verifier_key() -> None:
    signer = parse_signer_key(GO_SIGNER_KEY)
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.verifier().encode() == GO_VERIFIER_KEY
    assert verifier_key_from_signer_key(GO_SIGNER_KEY) == GO_VERIFIER_KEY
    assert signer.encode() == GO_SIGNER_KEY


def test_signing_the_go_example_text_reproduces_the_published_note_byte_for_byte() -> None:
    assert sign_note(GO_TEXT, parse_signer_key(GO_SIGNER_KEY)) == GO_SIGNED_NOTE


def test_the_published_go_note_verifies_with_the_published_verifier_key() -> None:
    opened = open_note(GO_SIGNED_NOTE, parse_verifier_key(GO_VERIFIER_KEY))
    assert opened.text == GO_TEXT
    assert [signature.name for signature in opened.verified] == ["PeterNeumann"]


def test_a_doubly_signed_go_note_verifies_trusted_keys_and_sets_aside_others() -> None:
    message = GO_TEXT + "\n" + GO_PETER_SIGNATURE + GO_ENOCH_SIGNATURE
    peter = parse_verifier_key(GO_VERIFIER_KEY)
    enoch = parse_verifier_key(GO_OTHER_VERIFIER_KEY)

    only_peter = open_note(message, [peter])
    assert [s.name for s in only_peter.verified] == ["PeterNeumann"]
    assert [s.name for s in only_peter.unverified] == ["EnochRoot"]

    both = open_note(message, [peter, enoch])
    assert [s.name for s in both.verified] == ["PeterNeumann", "EnochRoot"]
    assert both.unverified == ()


def test_a_go_note_with_only_unknown_signatures_is_refused() -> None:
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_note(GO_SIGNED_NOTE, parse_verifier_key(GO_OTHER_VERIFIER_KEY))


def test_a_corrupted_signature_by_a_trusted_key_rejects_the_whole_note() -> None:
    corrupted = GO_PETER_SIGNATURE[:60] + "ABCD" + GO_PETER_SIGNATURE[60:]
    with pytest.raises(NoteError, match="invalid signature for key PeterNeumann\\+c74f20a3"):
        open_note(GO_TEXT + "\n" + corrupted, parse_verifier_key(GO_VERIFIER_KEY))


@pytest.mark.parametrize(
    "message",
    [
        GO_TEXT,
        GO_TEXT + "\n",
        GO_TEXT + "\n" + GO_PETER_SIGNATURE[:-1],
        "\x01" + GO_TEXT + "\n" + GO_PETER_SIGNATURE,
        GO_TEXT + "\n" + GO_PETER_SIGNATURE.replace("PeterNeumann", "Bad Name"),
        GO_TEXT + "\n" + GO_PETER_SIGNATURE + "Unexpected line.\n",
        GO_TEXT + "\n" + GO_PETER_SIGNATURE.replace("\u2014", "-"),
        GO_TEXT + "\n" + GO_PETER_SIGNATURE.replace("x08go", "x08g!"),
        GO_TEXT + "\n" + GO_PETER_SIGNATURE * 101,
    ],
    ids=[
        "no-signatures",
        "blank-line-only",
        "no-final-newline",
        "control-character",
        "name-with-space",
        "trailing-text-line",
        "hyphen-instead-of-em-dash",
        "bad-base64",
        "101-signatures",
    ],
)
def test_malformed_notes_are_refused(message: str) -> None:
    with pytest.raises(NoteError):
        open_note(message, parse_verifier_key(GO_VERIFIER_KEY))


def test_a_note_in_bytes_must_be_utf8() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        parse_note(b"\xff" + GO_SIGNED_NOTE.encode())
    assert parse_note(GO_SIGNED_NOTE.encode()).text == GO_TEXT


# --- Our own keys ---------------------------------------------------------------------


def test_a_key_id_is_the_first_four_bytes_of_the_hash_of_name_algorithm_and_key(
    signer: SignerKey,
) -> None:
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + signer.public_key).digest()[:4]
    assert compute_key_id(ORIGIN, signer.public_key) == expected
    assert signer.key_id == expected == signer.verifier().key_id


def test_encoded_keys_round_trip(signer: SignerKey) -> None:
    verifier_text = signer.verifier().encode()
    assert verifier_text.startswith(f"{ORIGIN}+{signer.key_id.hex()}+")
    assert parse_verifier_key(verifier_text) == signer.verifier()
    assert parse_signer_key(signer.encode()) == signer
    assert signer.encode().startswith("PRIVATE+KEY+")


def test_the_signer_key_seed_stays_out_of_its_repr(signer: SignerKey) -> None:
    assert base64.b64encode(signer.seed).decode() not in repr(signer)
    assert signer.seed.hex() not in repr(signer)


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\tname", "nl\nname"])
def test_key_names_must_be_non_empty_without_spaces_or_plus(name: str) -> None:
    with pytest.raises(NoteError):
        validate_key_name(name)
    with pytest.raises(NoteError):
        generate_signer_key(name)


def test_a_verifier_key_whose_id_does_not_match_is_refused() -> None:
    name, _, key = GO_VERIFIER_KEY.split("+", 2)
    with pytest.raises(NoteError, match="does not match"):
        parse_verifier_key(f"{name}+c74f20a4+{key}")
    with pytest.raises(NoteError, match="does not match"):
        parse_verifier_key(f"PeterNeuman+c74f20a3+{key}")


@pytest.mark.parametrize(
    "text",
    [
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW ",
    ],
    ids=["no-key", "short-id", "unknown-algorithm", "short-key", "trailing-space"],
)
def test_malformed_verifier_keys_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        parse_verifier_key(text)


def test_a_signer_key_needs_the_private_key_prefix_and_a_matching_id() -> None:
    with pytest.raises(NoteError, match="PRIVATE"):
        parse_signer_key(GO_SIGNER_KEY.removeprefix("PRIVATE+KEY+"))
    with pytest.raises(NoteError, match="does not match"):
        parse_signer_key(GO_SIGNER_KEY.replace("c74f20a3", "c74f20a4"))


# --- Signing and verifying ------------------------------------------------------------


def test_a_signed_note_round_trips(signer: SignerKey) -> None:
    message = sign_note(checkpoint_text(), signer)
    assert message.startswith(checkpoint_text() + "\n\u2014 " + ORIGIN + " ")
    opened = open_note(message, signer.verifier())
    assert opened.text == checkpoint_text()
    assert opened.verified[0].key_id == signer.key_id


def test_signing_is_deterministic(signer: SignerKey) -> None:
    assert sign_note(checkpoint_text(), signer) == sign_note(checkpoint_text(), signer)


def test_note_text_must_end_with_a_newline_to_be_signed(signer: SignerKey) -> None:
    with pytest.raises(NoteError, match="newline"):
        sign_note("no newline", signer)


def test_tampered_note_text_fails(signer: SignerKey) -> None:
    message = sign_note(checkpoint_text(3), signer)
    tampered = message.replace("\n3\n", "\n4\n", 1)
    assert tampered != message
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(tampered, signer.verifier())


def test_a_note_signed_by_another_key_with_the_same_name_fails(
    signer: SignerKey,
) -> None:
    impostor = generate_signer_key(ORIGIN)
    message = sign_note(checkpoint_text(), impostor)
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_note(message, signer.verifier())


def test_unknown_signatures_are_ignored_but_a_trusted_one_is_needed(
    signer: SignerKey,
) -> None:
    witness = generate_signer_key("witness.example/w1")
    message = sign_note(checkpoint_text(), witness, signer)
    opened = open_note(message, signer.verifier())
    assert [s.name for s in opened.verified] == [ORIGIN]
    assert [s.name for s in opened.unverified] == ["witness.example/w1"]
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_note(sign_note(checkpoint_text(), witness), signer.verifier())


def test_text_may_contain_blank_lines_since_signatures_follow_the_last_one(
    signer: SignerKey,
) -> None:
    text = "first paragraph\n\nsecond paragraph\n"
    assert open_note(sign_note(text, signer), signer.verifier()).text == text


# --- Checkpoints ----------------------------------------------------------------------


def test_a_checkpoint_is_origin_size_and_base64_root_on_three_lines() -> None:
    root = leaf_hash(b"x")
    text = format_checkpoint(ORIGIN, 42, root)
    assert text == f"{ORIGIN}\n42\n{base64.b64encode(root).decode()}\n"
    assert parse_checkpoint(text) == Checkpoint(ORIGIN, 42, root)


def test_an_empty_tree_checkpoint_has_size_zero_and_the_empty_root() -> None:
    text = format_checkpoint(ORIGIN, 0, EMPTY_ROOT)
    assert text.splitlines()[1] == "0"
    assert parse_checkpoint(text).root == EMPTY_ROOT


def test_extension_lines_round_trip() -> None:
    text = format_checkpoint(ORIGIN, 1, EMPTY_ROOT, ["extension one", "two"])
    assert parse_checkpoint(text).extension_lines == ("extension one", "two")


def test_a_signed_checkpoint_opens_to_the_same_checkpoint(signer: SignerKey) -> None:
    checkpoint = Checkpoint(ORIGIN, 7, leaf_hash(b"seven"))
    assert open_checkpoint(sign_checkpoint(checkpoint, signer), signer.verifier()) == checkpoint


ROOT_B64 = base64.b64encode(EMPTY_ROOT).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"{ORIGIN}\n1\n{ROOT_B64}",
        f"{ORIGIN}\n1\n",
        f"\n1\n{ROOT_B64}\n",
        f"{ORIGIN}\n01\n{ROOT_B64}\n",
        f"{ORIGIN}\n+1\n{ROOT_B64}\n",
        f"{ORIGIN}\n-1\n{ROOT_B64}\n",
        f"{ORIGIN}\n 1\n{ROOT_B64}\n",
        f"{ORIGIN}\n\u0661\n{ROOT_B64}\n",
        f"{ORIGIN}\n{2**64}\n{ROOT_B64}\n",
        f"{ORIGIN}\n1\n{ROOT_B64[:-1]}\n",
        f"{ORIGIN}\n1\n{ROOT_B64[:-2]}V=\n",
        f"{ORIGIN}\n1\n{base64.b64encode(EMPTY_ROOT[:31]).decode()}\n",
        f"{ORIGIN}\n1\n{ROOT_B64}\n\n",
    ],
    ids=[
        "no-final-newline",
        "no-root",
        "empty-origin",
        "leading-zero",
        "plus-sign",
        "negative",
        "space",
        "non-ascii-digit",
        "too-large",
        "bad-base64",
        "non-canonical-base64",
        "short-root",
        "empty-extension-line",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint(text)


def test_format_checkpoint_refuses_what_it_could_not_parse_back() -> None:
    with pytest.raises(CheckpointError):
        format_checkpoint("", 1, EMPTY_ROOT)
    with pytest.raises(CheckpointError):
        format_checkpoint(ORIGIN, -1, EMPTY_ROOT)
    with pytest.raises(CheckpointError):
        format_checkpoint(ORIGIN, 1, EMPTY_ROOT[:31])
    with pytest.raises(CheckpointError):
        format_checkpoint("two\nlines", 1, EMPTY_ROOT)
