"""RFC 9162 Merkle trees: roots, proofs, and the storage callback contract."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from tlog.merkle import (
    EMPTY_ROOT,
    InMemoryTree,
    ProofError,
    TreeBuilder,
    consistency_proof,
    inclusion_proof,
    is_perfect_subtree,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    root_from_leaf_hashes,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

MAX_PROOF_SIZE = 40

# The reference tree of transparency-dev/merkle (testonly/constants.go): its leaves
# and the published root of every prefix of it.
REFERENCE_LEAVES = [
    bytes.fromhex(value)
    for value in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
REFERENCE_ROOTS = [
    bytes.fromhex(value)
    for value in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def leaves(count: int) -> list[bytes]:
    return [leaf_hash(f"event {index}".encode()) for index in range(count)]


def flip_bit(value: bytes, bit: int = 0) -> bytes:
    changed = bytearray(value)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


class CountingStorage:
    """Wraps the in-memory tree to count calls and enforce the callback contract."""

    def __init__(self, tree: InMemoryTree, size: int) -> None:
        self.tree, self.size, self.calls = tree, size, 0

    def __call__(self, start: int, end: int) -> bytes:
        assert is_perfect_subtree(start, end), (start, end)
        assert end <= self.size, (start, end, self.size)
        self.calls += 1
        return self.tree.subtree_hash(start, end)


def test_leaf_and_node_hashes_carry_the_rfc_domain_prefixes() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT


def test_every_prefix_of_the_published_reference_tree_has_the_published_root() -> None:
    hashes = [leaf_hash(leaf) for leaf in REFERENCE_LEAVES]
    builder = TreeBuilder()
    assert builder.root() == REFERENCE_ROOTS[0]
    for size in range(1, len(hashes) + 1):
        builder.append(hashes[size - 1])
        assert root_from_leaf_hashes(hashes[:size]) == REFERENCE_ROOTS[size]
        assert builder.root() == REFERENCE_ROOTS[size]


def test_recursive_and_incremental_roots_agree_for_every_size_up_to_70() -> None:
    hashes = leaves(70)
    builder = TreeBuilder()
    for size in range(71):
        assert builder.size == size
        assert builder.root() == root_from_leaf_hashes(hashes[:size]), size
        assert InMemoryTree(hashes[:size]).root() == builder.root(), size
        if size < 70:
            builder.append(hashes[size])


def test_the_builder_keeps_one_hash_per_bit_of_the_size() -> None:
    builder = TreeBuilder()
    for size, value in enumerate(leaves(1000), start=1):
        builder.append(value)
        assert len(builder.subtrees()) == size.bit_count()
    assert [(start, end) for start, end, _ in builder.subtrees()] == perfect_subtrees(0, 1000)


def test_the_builder_refuses_a_subtree_that_is_not_aligned() -> None:
    builder = TreeBuilder()
    builder.append(leaf_hash(b"first"))
    with pytest.raises(ValueError, match="not a perfect subtree"):
        builder.append_subtree(leaf_hash(b"second"), 2)


def test_perfect_subtrees_cover_any_range_with_aligned_powers_of_two() -> None:
    for start in range(0, 40):
        for end in range(start, 80):
            ranges = perfect_subtrees(start, end)
            assert all(is_perfect_subtree(first, last) for first, last in ranges)
            covered = [index for first, last in ranges for index in range(first, last)]
            assert covered == list(range(start, end))


def test_a_tree_rebuilt_from_subtree_hashes_around_a_range_has_the_same_root() -> None:
    tree = InMemoryTree(leaves(37))
    for start in range(38):
        for end in range(start, 38):
            builder = TreeBuilder()
            for first, last in perfect_subtrees(0, start):
                builder.append_subtree(tree.subtree_hash(first, last), last - first)
            for index in range(start, end):
                builder.append(tree.levels[0][index])
            for first, last in perfect_subtrees(end, 37):
                builder.append_subtree(tree.subtree_hash(first, last), last - first)
            assert builder.root() == tree.root(), (start, end)


def test_every_inclusion_proof_verifies_and_a_flipped_bit_fails() -> None:
    tree = InMemoryTree(leaves(MAX_PROOF_SIZE))
    for size in range(1, MAX_PROOF_SIZE + 1):
        root = tree.root(size)
        for index in range(size):
            value = tree.levels[0][index]
            proof = tree.inclusion_proof(index, size)
            verify_inclusion(value, index, size, proof, root)
            with pytest.raises(ProofError):
                verify_inclusion(flip_bit(value), index, size, proof, root)
            with pytest.raises(ProofError):
                verify_inclusion(value, index, size, proof, flip_bit(root, 255))
            for position in range(len(proof)):
                tampered = [*proof]
                tampered[position] = flip_bit(tampered[position], 7)
                with pytest.raises(ProofError):
                    verify_inclusion(value, index, size, tampered, root)


def test_an_inclusion_proof_does_not_verify_for_another_index_or_size() -> None:
    tree = InMemoryTree(leaves(13))
    proof = tree.inclusion_proof(5)
    value = tree.levels[0][5]
    with pytest.raises(ProofError):
        verify_inclusion(value, 4, 13, proof, tree.root())
    with pytest.raises(ProofError):
        verify_inclusion(value, 5, 12, proof, tree.root(12))
    with pytest.raises(ProofError, match="not below the tree size"):
        verify_inclusion(value, 13, 13, proof, tree.root())
    with pytest.raises(ProofError, match="must have"):
        verify_inclusion(value, 5, 13, [*proof, proof[0]], tree.root())
    with pytest.raises(ProofError, match="32 bytes"):
        verify_inclusion(value, 5, 13, [proof[0] + b"\x00", *proof[1:]], tree.root())


def test_every_consistency_proof_verifies_and_a_flipped_bit_fails() -> None:
    tree = InMemoryTree(leaves(MAX_PROOF_SIZE))
    for size2 in range(0, MAX_PROOF_SIZE + 1):
        root2 = tree.root(size2)
        for size1 in range(0, size2 + 1):
            root1 = tree.root(size1)
            proof = tree.consistency_proof(size1, size2)
            verify_consistency(size1, size2, proof, root1, root2)
            if 0 < size1 <= size2:
                # Size 0 is consistent with every tree, so only then may roots vary.
                with pytest.raises(ProofError):
                    verify_consistency(size1, size2, proof, root1, flip_bit(root2, 3))
                with pytest.raises(ProofError):
                    verify_consistency(size1, size2, proof, flip_bit(root1, 9), root2)
            for position in range(len(proof)):
                tampered = [*proof]
                tampered[position] = flip_bit(tampered[position], 100)
                with pytest.raises(ProofError):
                    verify_consistency(size1, size2, tampered, root1, root2)


def test_a_consistency_proof_refuses_a_shrinking_tree_and_stray_hashes() -> None:
    tree = InMemoryTree(leaves(8))
    with pytest.raises(ProofError, match="larger than"):
        verify_consistency(8, 7, [], tree.root(8), tree.root(7))
    with pytest.raises(ProofError, match="must have 0 hashes"):
        verify_consistency(8, 8, [tree.root(8)], tree.root(8), tree.root(8))
    with pytest.raises(ProofError, match="different roots"):
        verify_consistency(8, 8, [], tree.root(7), tree.root(8))
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 8, [], tree.root(8), tree.root(8))


def assert_logarithmic(calls: int, size: int) -> None:
    # Each level of the tree costs at most two lookups: a sibling, plus one
    # perfect piece of the single right-hand sibling that may be imperfect.
    assert calls <= 2 * max(size.bit_length(), 1), (calls, size)


@pytest.mark.parametrize(
    ("name", "make_proof"),
    [
        ("inclusion", lambda index, size, get: inclusion_proof(index, size, get)),
        (
            "consistency",
            lambda index, size, get: consistency_proof(index + 1, size, get),
        ),
    ],
)
def test_proofs_ask_storage_for_o_log_n_perfect_subtrees(
    name: str,
    make_proof: Callable[[int, int, Callable[[int, int], bytes]], list[bytes]],
) -> None:
    tree = InMemoryTree(leaves(300))
    for size in [*range(1, 70), 127, 128, 129, 255, 256, 257, 299, 300]:
        for index in range(size):
            storage = CountingStorage(tree, size)
            make_proof(index, size, storage)
            assert_logarithmic(storage.calls, size)


def test_a_root_from_storage_takes_one_lookup_per_bit_of_the_size() -> None:
    tree = InMemoryTree(leaves(300))
    for size in range(1, 301):
        storage = CountingStorage(tree, size)
        assert tree_root(size, storage) == root_from_leaf_hashes(tree.levels[0][:size])
        assert storage.calls == size.bit_count()


def test_in_memory_storage_refuses_ranges_that_are_not_perfect_subtrees() -> None:
    tree = InMemoryTree(leaves(8))
    for start, end in [(0, 3), (1, 3), (2, 6), (8, 9), (0, 16)]:
        with pytest.raises(ValueError, match="not a complete perfect subtree"):
            tree.subtree_hash(start, end)
