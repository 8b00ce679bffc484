"""Text evasion pieces that need no training: the normaliser, word recognition, features, edits."""

from __future__ import annotations

import numpy as np
import pytest

from qsafe.robustness import text as T

pytest.importorskip("torch")


def test_normalize_undoes_homoglyphs_and_invisibles() -> None:
    spoofed = "FR" + T.HOMOGLYPHS["E"] + "E c" + T.HOMOGLYPHS["a"] + "ll\u200bnow"
    assert T.normalize(spoofed) == "free callnow"


def test_corrector_reads_edited_spam_words_back() -> None:
    corr = T.Corrector(["call now to claim your prize", "see you at home", "claim"], np.array([1, 0, 1]))
    assert corr.word("prie") == "prize"       # deletion
    assert corr.word("cliam") == "claim"      # adjacent swap
    assert corr.word("call") == "call"        # known words are kept
    assert corr.word("zzzzqq") == "zzzzqq"    # nothing one edit away


def test_features_survive_swaps_and_dedupe() -> None:
    a, b = set(T.hardened_features("winner")), set(T.hardened_features("winenr"))
    assert "k:" + "".join(sorted("winner")) in a & b
    assert set(T.hardened_features("free free free")) == set(T.hardened_features("free"))
    deleted = set(T.hardened_features("winer"))
    assert a & deleted  # one deletion keeps a shared key


def test_candidates_are_single_edits() -> None:
    cands = T._candidates("win cash", ["ok"])
    assert "wni cash" in cands and "wn cash" in cands and "win cash ok" in cands and "ok win cash" in cands
    assert any(T.HOMOGLYPHS["a"] in c for c in cands)
    rng = np.random.default_rng(0)
    edited = T.random_edits("claim your prize now", 2, rng, ["ok"])
    assert edited != "claim your prize now"
