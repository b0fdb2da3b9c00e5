"""The published RFC 6962/9162 proof vectors of transparency-dev/merkle.

A copy lives in ``tests/tlog/vectors/merkle`` (with its licence and README): each file
is a proof, good or deliberately broken, and verification must succeed exactly when the
file's ``wantErr`` is false.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tlog.merkle import ProofError, verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parent / "vectors" / "merkle"

INCLUSION_FILES = sorted(VECTORS.glob("inclusion/*/*.json"))
CONSISTENCY_FILES = sorted(VECTORS.glob("consistency/*/*.json"))


def vector_id(path: Path) -> str:
    return str(path.relative_to(VECTORS).with_suffix(""))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def decode(value: str) -> bytes:
    return base64.b64decode(value)


def decode_proof(values: list[str] | None) -> list[bytes]:
    return [decode(value) for value in values or []]


def outcome(check: Any) -> bool:
    """True when ``check()`` verifies, False when it raises ProofError."""
    try:
        check()
    except ProofError:
        return False
    return True


def test_the_vector_folders_hold_inclusion_and_consistency_vectors() -> None:
    assert INCLUSION_FILES, f"no inclusion vectors under {VECTORS}"
    assert CONSISTENCY_FILES, f"no consistency vectors under {VECTORS}"


@pytest.mark.parametrize("path", INCLUSION_FILES, ids=vector_id)
def test_inclusion_vector_verifies_exactly_when_no_error_is_wanted(path: Path) -> None:
    vector = load(path)

    def check() -> None:
        verify_inclusion(
            decode(vector["leafHash"]),
            vector["leafIdx"],
            vector["treeSize"],
            decode_proof(vector["proof"]),
            decode(vector["root"]),
        )

    assert outcome(check) is not vector["wantErr"], vector["desc"]


@pytest.mark.parametrize("path", CONSISTENCY_FILES, ids=vector_id)
def test_consistency_vector_verifies_exactly_when_no_error_is_wanted(
    path: Path,
) -> None:
    vector = load(path)

    def check() -> None:
        verify_consistency(
            vector["size1"],
            vector["size2"],
            decode_proof(vector["proof"]),
            decode(vector["root1"]),
            decode(vector["root2"]),
        )

    assert outcome(check) is not vector["wantErr"], vector["desc"]
