"""RFC 9162 (Certificate Transparency v2) Merkle trees, section 2.1.

The audit log is a list of leaves (serialised audit events). Its state at size ``n``
is summarised by one hash, the Merkle Tree Hash (MTH) of the first ``n`` leaves; a
signed checkpoint commits to that hash. Two kinds of proof let anyone holding only
checkpoints check the log:

- an *inclusion proof* shows that a leaf is at a given index of the tree of size
  ``n`` (section 2.1.3);
- a *consistency proof* shows that the tree of size ``m`` is a prefix of the tree of
  size ``n``, so nothing logged before ``m`` was changed or removed (section 2.1.4).

Hashing, with SHA-256 (section 2.1.1)::

    leaf hash  = SHA-256(0x00 || leaf bytes)
    node hash  = SHA-256(0x01 || left || right)
    MTH({})    = SHA-256("")
    MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two < n

Storage contract for proof generation
-------------------------------------
Proofs are built from the hashes of *perfect subtrees*: ranges of leaves
``[start, end)`` whose size ``end - start`` is a power of two ``2**k`` and whose
``start`` is a multiple of that size. Those are exactly the nodes of the complete
binary trees that the log grows into, so their hashes never change once all their
leaves exist, and a storage layer can cache them (as rows, tiles, ...).

The generators take a callback ``get_subtree_hash(start, end) -> bytes`` that must
return the 32-byte MTH of the leaves ``[start, end)``. It is only ever called for
perfect subtrees with ``end <= size`` of the tree being proven, and a proof for a tree
of size ``n`` makes O(log n) calls: hashes of ranges that are not perfect are composed
here from perfect ones. ``get_subtree_hash(i, i + 1)`` is the leaf hash of leaf ``i``.
:class:`InMemoryTree` is a reference implementation over a list of leaf hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""MTH of the empty tree (RFC 9162 section 2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

SubtreeHashFn = Callable[[int, int], bytes]
"""``get_subtree_hash(start, end)``: MTH of the perfect subtree ``[start, end)``."""


class ProofError(ValueError):
    """A proof, or the hashes and sizes it is checked against, did not verify."""


def leaf_hash(data: bytes) -> bytes:
    """Hash one leaf; the 0x00 prefix keeps leaves apart from interior nodes."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child hashes into their parent (0x01 prefix, section 2.1.1)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """The split point ``k`` of MTH: the largest power of two strictly less than n."""
    if n < 2:
        raise ValueError(f"a tree of {n} leaves has no split point")
    return 1 << ((n - 1).bit_length() - 1)


def is_perfect_subtree(start: int, end: int) -> bool:
    """Whether ``[start, end)`` is a node of the tree: 2**k leaves, aligned to 2**k."""
    size = end - start
    return start >= 0 and size > 0 and size & (size - 1) == 0 and start % size == 0


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Split ``[start, end)`` into the fewest perfect subtrees, left to right.

    For ``[0, n)`` this is one subtree per bit set in ``n``, largest first: the
    hashes a :class:`TreeBuilder` holds after ``n`` leaves. Bundles covering part of
    the log carry the hashes of these subtrees for the leaves they leave out.
    """
    if not 0 <= start <= end:
        raise ValueError(f"invalid leaf range [{start}, {end})")
    ranges: list[tuple[int, int]] = []
    position = start
    while position < end:
        # The largest size allowed by alignment, then shrunk to fit before ``end``.
        size = position & -position if position else 1 << (end.bit_length() - 1)
        while position + size > end:
            size >>= 1
        ranges.append((position, position + size))
        position += size
    return ranges


def _check_hash(what: str, value: bytes) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {_describe(value)}")


def _describe(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes"
    return type(value).__name__


def _check_size(what: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofError(f"{what} must be a non-negative integer, got {value!r}")


# --- Computing roots ------------------------------------------------------------------


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes, straight from the recursive definition.

    Kept deliberately close to the RFC text so that it can serve as the reference
    against which the incremental :class:`TreeBuilder` and the proofs are tested.
    """
    for index, value in enumerate(hashes):
        if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
            raise ValueError(f"leaf hash {index} must be {HASH_SIZE} bytes")
    if not hashes:
        return EMPTY_ROOT
    return _mth(hashes, 0, len(hashes))


def _mth(hashes: Sequence[bytes], start: int, end: int) -> bytes:
    if end - start == 1:
        return bytes(hashes[start])
    middle = start + largest_power_of_two_below(end - start)
    return node_hash(_mth(hashes, start, middle), _mth(hashes, middle, end))


class TreeBuilder:
    """Streaming MTH: append leaf hashes one by one, ask for the root at any time.

    It keeps the *compact range* of ``[0, size)``: one hash per bit set in ``size``
    (see :func:`perfect_subtrees`), so memory stays O(log n) however many events are
    checked, and :meth:`root` costs O(log n) hashes. Whole perfect subtrees can be
    appended too, which is how a verifier stands in for leaves it was not given.
    """

    def __init__(self) -> None:
        self._size = 0
        # (number of leaves, hash) per perfect subtree, sizes strictly decreasing.
        self._stack: list[tuple[int, bytes]] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Append the hash of the next leaf (use :func:`leaf_hash` on its bytes)."""
        self.append_subtree(leaf_hash, 1)

    def append_subtree(self, subtree_hash: bytes, size: int) -> None:
        """Append the MTH of the perfect subtree ``[self.size, self.size + size)``.

        The subtree must be aligned (``self.size`` a multiple of ``size``): only then
        is it a node of the final tree, and only then can it be merged correctly.
        """
        if not isinstance(subtree_hash, bytes | bytearray) or len(subtree_hash) != HASH_SIZE:
            raise ValueError(f"subtree hash must be {HASH_SIZE} bytes")
        if not is_perfect_subtree(self._size, self._size + size):
            raise ValueError(
                f"[{self._size}, {self._size + size}) is not a perfect subtree: "
                "its size must be a power of two that divides its start"
            )
        self._stack.append((size, bytes(subtree_hash)))
        self._size += size
        while len(self._stack) >= 2 and self._stack[-1][0] == self._stack[-2][0]:
            right_size, right = self._stack.pop()
            _, left = self._stack.pop()
            self._stack.append((2 * right_size, node_hash(left, right)))

    def root(self) -> bytes:
        """MTH of the leaves appended so far (``EMPTY_ROOT`` when there are none)."""
        if not self._stack:
            return EMPTY_ROOT
        result = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            result = node_hash(left, result)
        return result

    def subtrees(self) -> list[tuple[int, int, bytes]]:
        """The compact range: ``(start, end, hash)`` per perfect subtree, left first."""
        result: list[tuple[int, int, bytes]] = []
        start = 0
        for size, value in self._stack:
            result.append((start, start + size, value))
            start += size
        return result


def tree_root(size: int, get_subtree_hash: SubtreeHashFn) -> bytes:
    """MTH of the tree of ``size`` leaves from a storage layer, in O(log n) calls."""
    if size < 0:
        raise ValueError(f"tree size must be non-negative, got {size}")
    return EMPTY_ROOT if size == 0 else _range_hash(0, size, get_subtree_hash)


def _fetch(get_subtree_hash: SubtreeHashFn, start: int, end: int) -> bytes:
    value = get_subtree_hash(start, end)
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ValueError(f"storage returned {_describe(value)} for subtree [{start}, {end})")
    return bytes(value)


def _range_hash(start: int, end: int, get_subtree_hash: SubtreeHashFn) -> bytes:
    """MTH of a node ``[start, end)`` of the tree, which need not be perfect.

    Any node's left child is perfect and aligned, so only the right spine recurses:
    at most one callback per level.
    """
    if is_perfect_subtree(start, end):
        return _fetch(get_subtree_hash, start, end)
    middle = start + largest_power_of_two_below(end - start)
    left = _fetch(get_subtree_hash, start, middle)
    return node_hash(left, _range_hash(middle, end, get_subtree_hash))


# --- Generating proofs ----------------------------------------------------------------


def inclusion_proof(index: int, size: int, get_subtree_hash: SubtreeHashFn) -> list[bytes]:
    """Audit path PATH(index, D[size]) of RFC 9162 section 2.1.3.1, leaf side first.

    Walks from the root towards the leaf, taking the sibling of each node on the
    way; only a sibling to the right of the path can be an imperfect subtree, and
    once the path turns left every node below is perfect, which keeps the number of
    callback calls O(log n).
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    siblings: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + largest_power_of_two_below(end - start)
        if index < middle:
            siblings.append(_range_hash(middle, end, get_subtree_hash))
            end = middle
        else:
            siblings.append(_fetch(get_subtree_hash, start, middle))
            start = middle
    siblings.reverse()
    return siblings


def consistency_proof(size1: int, size2: int, get_subtree_hash: SubtreeHashFn) -> list[bytes]:
    """PROOF(size1, D[size2]) of RFC 9162 section 2.1.4.1, deepest hash first.

    The RFC defines proofs for ``0 < size1 < size2``; for ``size1 == 0`` or
    ``size1 == size2`` the proof is empty, matching :func:`verify_consistency`.
    """
    if not 0 <= size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    if size1 in (0, size2):
        return []
    hashes: list[bytes] = []
    start, end = 0, size2
    # ``whole_old_tree`` is the RFC's flag b: the node is still the old tree itself.
    whole_old_tree = True
    while size1 != end:
        middle = start + largest_power_of_two_below(end - start)
        if size1 <= middle:
            hashes.append(_range_hash(middle, end, get_subtree_hash))
            end = middle
        else:
            hashes.append(_fetch(get_subtree_hash, start, middle))
            start = middle
            whole_old_tree = False
    if not whole_old_tree:
        hashes.append(_range_hash(start, end, get_subtree_hash))
    hashes.reverse()
    return hashes


# --- Verifying proofs -----------------------------------------------------------------


def inclusion_proof_length(index: int, size: int) -> int:
    """Number of hashes proving leaf ``index`` in a tree of ``size`` leaves."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def consistency_proof_length(size1: int, size2: int) -> int:
    """Number of hashes in the consistency proof from ``size1`` to ``size2``."""
    if size1 in (0, size2):
        return 0
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = ((size1 - 1) >> inner).bit_count()
    shift = (size1 & -size1).bit_length() - 1
    # Unless the old tree is itself perfect, the proof starts with the hash of the
    # largest perfect subtree at its right edge.
    seed = 0 if size1 == 1 << shift else 1
    return seed + inner - shift + border


def root_from_inclusion_proof(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an audit path: steps 1 to 4 of RFC 9162 section 2.1.3.2."""
    _check_hash("leaf hash", leaf_hash)
    _check_size("leaf index", index)
    _check_size("tree size", size)
    for position, value in enumerate(proof):
        _check_hash(f"proof hash {position}", value)
    if index >= size:
        raise ProofError(f"leaf index {index} is not below the tree size {size}")
    expected = inclusion_proof_length(index, size)
    if len(proof) != expected:
        raise ProofError(
            f"inclusion proof for leaf {index} of a tree of size {size} must have {expected} hashes, got {len(proof)}"
        )
    fn, sn, result = index, size - 1, bytes(leaf_hash)
    for value in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            result = node_hash(value, result)
            fn, sn = _shift_to_right_child(fn, sn)
        else:
            result = node_hash(result, value)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    return result


def _shift_to_right_child(fn: int, sn: int) -> tuple[int, int]:
    """Skip the levels where the node is a left child with no right sibling.

    RFC 9162: "If LSB(fn) is not set, then right-shift both fn and sn equally until
    either LSB(fn) is set or fn is 0."
    """
    while fn and not fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Returns nothing on success and raises :class:`ProofError` saying what is wrong
    otherwise (RFC 9162 section 2.1.3.2).
    """
    _check_hash("root", root)
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof for leaf {index} leads to root {computed.hex()}, not the expected {bytes(root).hex()}"
        )


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that tree ``size1``/``root1`` is a prefix of tree ``size2``/``root2``.

    Follows RFC 9162 section 2.1.4.2, with the edge cases the RFC leaves out made
    explicit: equal sizes need an empty proof and equal roots; size 0 needs an empty
    proof and ``root1`` equal to :data:`EMPTY_ROOT`. Raises :class:`ProofError`.
    """
    _check_size("old tree size", size1)
    _check_size("new tree size", size2)
    _check_hash("old root", root1)
    _check_hash("new root", root2)
    for position, value in enumerate(proof):
        _check_hash(f"proof hash {position}", value)
    if size1 > size2:
        raise ProofError(f"old tree size {size1} is larger than new tree size {size2}")
    expected = consistency_proof_length(size1, size2)
    if len(proof) != expected:
        raise ProofError(
            f"consistency proof from size {size1} to {size2} must have {expected} hashes, got {len(proof)}"
        )
    if size1 == size2:
        if root1 != root2:
            raise ProofError(f"trees of the same size {size1} have different roots")
        return
    if size1 == 0:
        if root1 != EMPTY_ROOT:
            raise ProofError("the root of the empty tree must be SHA-256 of nothing")
        return
    old_root, new_root = _roots_from_consistency_proof(size1, size2, proof, root1)
    if old_root != root1:
        raise ProofError(f"consistency proof does not lead to the old root at size {size1}")
    if new_root != root2:
        raise ProofError(f"consistency proof does not lead to the new root at size {size2}")


def _roots_from_consistency_proof(size1: int, size2: int, proof: Sequence[bytes], root1: bytes) -> tuple[bytes, bytes]:
    """Steps 1 to 6 of RFC 9162 section 2.1.4.2: the (old, new) roots implied."""
    path = [bytes(value) for value in proof]
    if not path:
        raise ProofError("consistency proof is empty")
    if size1 & (size1 - 1) == 0:
        path.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    old_root = new_root = path[0]
    for value in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            old_root = node_hash(value, old_root)
            new_root = node_hash(value, new_root)
            fn, sn = _shift_to_right_child(fn, sn)
        else:
            new_root = node_hash(new_root, value)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    return old_root, new_root


# --- A reference storage layer --------------------------------------------------------


class InMemoryTree:
    """Leaf hashes in memory, with every complete perfect subtree hash cached.

    ``levels[k][i]`` is the hash of the perfect subtree ``[i * 2**k, (i + 1) * 2**k)``,
    filled in as soon as its last leaf arrives, so :meth:`subtree_hash` is a lookup.
    It is the reference for the storage contract and the fixture of the tests; a
    database-backed log keeps the same hashes in tables.
    """

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for value in leaf_hashes:
            self.append(value)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self.levels[0])

    def append(self, leaf_hash: bytes) -> int:
        """Append a leaf hash, completing parent subtrees; return the leaf's index."""
        if not isinstance(leaf_hash, bytes | bytearray) or len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes")
        index = self.size
        self.levels[0].append(bytes(leaf_hash))
        level = 0
        while len(self.levels[level]) % 2 == 0:
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append(node_hash(*self.levels[level][-2:]))
            level += 1
        return index

    def append_leaf(self, data: bytes) -> int:
        """Hash and append a leaf's bytes; return its index."""
        return self.append(leaf_hash(data))

    def subtree_hash(self, start: int, end: int) -> bytes:
        """The storage callback: MTH of the perfect subtree ``[start, end)``."""
        if not is_perfect_subtree(start, end) or end > self.size:
            raise ValueError(f"[{start}, {end}) is not a complete perfect subtree")
        level = (end - start).bit_length() - 1
        return self.levels[level][start >> level]

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (all of them by default)."""
        return tree_root(self.size if size is None else size, self.subtree_hash)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        return inclusion_proof(index, self.size if size is None else size, self.subtree_hash)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Consistency proof from ``size1`` leaves to ``size2`` leaves."""
        return consistency_proof(size1, self.size if size2 is None else size2, self.subtree_hash)
