"""Merkle tree over rows: RFC 6962 known answers, inclusion proofs, and locating changed rows."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsafe.errors import FormatError, InvalidInputError
from qsafe.fraud import merkle
from tests.conftest import VECTORS

KAT = json.loads((VECTORS / "merkle" / "rfc6962.json").read_text())
LEAVES = [merkle.leaf_hash(bytes.fromhex(h)) for h in KAT["leaves_hex"]]


@pytest.mark.parametrize("size", range(9))
def test_roots_match_rfc6962_vectors(size: int) -> None:
    assert merkle.root(LEAVES[:size]).hex() == KAT["roots"][str(size)]


@pytest.mark.parametrize("case", KAT["inclusion"])
def test_inclusion_proofs_match_vectors_and_verify(case: dict) -> None:  # type: ignore[type-arg]
    proof = merkle.inclusion_proof(LEAVES[: case["size"]], case["index"])
    assert [p.hex() for p in proof] == case["path"]
    merkle.verify_inclusion(LEAVES[case["index"]], case["index"], case["size"], proof, bytes.fromhex(KAT["roots"]["8"]))


def test_inclusion_proof_for_another_row_or_tampered_path_is_refused() -> None:
    root = merkle.root(LEAVES)
    proof = merkle.inclusion_proof(LEAVES, 5)
    with pytest.raises(FormatError, match="not in the signed dataset"):
        merkle.verify_inclusion(LEAVES[4], 5, 8, proof, root)
    with pytest.raises(FormatError):
        merkle.verify_inclusion(LEAVES[5], 5, 8, [proof[0], bytes(32), proof[2]], root)
    with pytest.raises(FormatError):
        merkle.verify_inclusion(LEAVES[5], 8, 8, proof, root)
    with pytest.raises(InvalidInputError):
        merkle.inclusion_proof(LEAVES, 8)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 16, 33, 100])
def test_every_row_has_a_valid_proof(n: int) -> None:
    leaves = [merkle.leaf_hash(b"row %d" % i) for i in range(n)]
    root = merkle.root(leaves)
    for i in range(n):
        merkle.verify_inclusion(leaves[i], i, n, merkle.inclusion_proof(leaves, i), root)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 300), data=st.data())
def test_changed_rows_are_located_exactly(n: int, data: st.DataObject) -> None:
    signed = [merkle.leaf_hash(b"row %d" % i) for i in range(n)]
    changed = sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=min(n, 12))))
    current = list(signed)
    for i in changed:
        current[i] = merkle.leaf_hash(b"changed %d" % i)
    diff = merkle.diff_rows(signed, current)
    assert diff.changed == changed and not diff.inserted and not diff.deleted


def test_inserted_and_deleted_rows_are_located() -> None:
    signed = [merkle.leaf_hash(b"row %d" % i) for i in range(50)]
    inserted = signed[:10] + [merkle.leaf_hash(b"new")] + signed[10:]
    assert merkle.diff_rows(signed, inserted).inserted == [10]
    deleted = signed[:20] + signed[21:]
    diff = merkle.diff_rows(signed, deleted)
    assert diff.deleted == [20] and not diff.changed and not diff.inserted
    assert not merkle.diff_rows(signed, list(signed))
