"""A Merkle tree over dataset rows (RFC 9162 section 2.1: the Certificate Transparency tree).

Leaf hash ``SHA-256(0x00 || row)``, node hash ``SHA-256(0x01 || left || right)``; a tree of ``n`` leaves splits at
the largest power of two below ``n``. The prefixes keep a leaf from passing for a node (second pre-images).
Besides the root this gives what a row-level data audit needs: the rows that differ between two versions
(descending only into subtrees whose hashes differ) and inclusion proofs (this row was in the signed data).
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from qsafe.errors import FormatError, InvalidInputError

__all__ = ["RowDiff", "diff_rows", "inclusion_proof", "leaf_hash", "root", "verify_inclusion"]

_LEAF, _NODE = b"\x00", b"\x01"


def leaf_hash(row: bytes) -> bytes:
    """``SHA-256(0x00 || row)``."""
    return hashlib.sha256(_LEAF + row).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class _Tree:
    """Subtree hashes of one leaf list, computed on demand and kept."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves
        self.memo: dict[tuple[int, int], bytes] = {}

    def hash(self, lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return self.leaves[lo]
        got = self.memo.get((lo, hi))
        if got is None:
            k = _split(hi - lo)
            got = self.memo[(lo, hi)] = _node(self.hash(lo, lo + k), self.hash(lo + k, hi))
        return got


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of ``leaves`` (leaf hashes); the empty tree is ``SHA-256("")``."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    return _Tree(leaves).hash(0, len(leaves))


@dataclass
class RowDiff:
    """Rows (0-based indices) that differ between a signed leaf list and a new one."""

    changed: list[int] = field(default_factory=list)   # same position, other bytes (indices in both)
    inserted: list[int] = field(default_factory=list)  # indices in the new list
    deleted: list[int] = field(default_factory=list)   # indices in the signed list

    def __bool__(self) -> bool:
        return bool(self.changed or self.inserted or self.deleted)


def _descend(old: _Tree, new: _Tree, lo: int, hi: int, out: list[int]) -> None:
    if old.hash(lo, hi) == new.hash(lo, hi):
        return
    if hi - lo == 1:
        out.append(lo)
        return
    k = _split(hi - lo)
    _descend(old, new, lo, lo + k, out)
    _descend(old, new, lo + k, hi, out)


def diff_rows(signed: Sequence[bytes], current: Sequence[bytes]) -> RowDiff:
    """Locate the rows that differ.

    Same length: descend from the root into differing subtrees only (changed rows). Other lengths: align the
    two leaf sequences (rows inserted, deleted, or replaced in place).
    """
    out = RowDiff()
    if len(signed) == len(current):
        if signed:
            _descend(_Tree(signed), _Tree(current), 0, len(signed), out.changed)
        return out
    matcher = difflib.SequenceMatcher(a=list(signed), b=list(current), autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "replace":
            common = min(a1 - a0, b1 - b0)
            out.changed.extend(range(b0, b0 + common))
            out.deleted.extend(range(a0 + common, a1))
            out.inserted.extend(range(b0 + common, b1))
        elif tag == "delete":
            out.deleted.extend(range(a0, a1))
        elif tag == "insert":
            out.inserted.extend(range(b0, b1))
    return out


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` (RFC 9162 section 2.1.3.1), leaf side first.

    Raises:
        InvalidInputError: ``index`` outside the tree.
    """
    if not 0 <= index < len(leaves):
        raise InvalidInputError(f"row {index} is outside the dataset (0..{len(leaves) - 1})")
    tree = _Tree(leaves)
    path: list[bytes] = []
    lo, hi = 0, len(leaves)
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(tree.hash(lo + k, hi))
            hi = lo + k
        else:
            path.append(tree.hash(lo, lo + k))
            lo = lo + k
    return path[::-1]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes) -> None:
    """Check an inclusion proof (RFC 9162 section 2.1.3.2).

    Raises:
        FormatError: the proof does not lead from the leaf to ``expected_root``.
    """
    if not 0 <= index < size:
        raise FormatError(f"row {index} is outside a tree of {size} rows")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise FormatError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != expected_root:
        raise FormatError(f"row {index} is not in the signed dataset (the inclusion proof does not reach its root)")
