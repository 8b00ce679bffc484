"""Text evasion pieces that need no training: the normaliser, word recognition, features, edits."""

from __future__ import annotations

import numpy as np
import pytest

from qsafe.errors import UsageError
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


def test_recognizer_reads_the_spammiest_word_an_edit_could_have_hidden() -> None:
    rec = T.Recognizer(["call now to claim your prize", "see you at home now", "claim bonus prize"],
                       np.array([1, 0, 1]))
    assert rec.word("prie") == "prize"            # a deleted character is put back
    assert rec.word("pirze") == "prize"           # an adjacent swap is undone
    assert rec.word("nnow") == "now"              # a character moved in from the previous word
    assert rec.word("prizen") == "prize"          # ... or from the next one
    assert rec.read("bonusprize") == ("bonus", "prize")          # a deleted separator: both words kept
    assert rec.read("callnowprize") == ("call", "now", "prize")  # up to three parts
    assert rec.read("zzzzqq") == ("zzzzqq",)
    rec2 = T.Recognizer(["price", "prize"], np.array([0, 0]))
    rec2.rescore({"prize": 5.0, "price": 0.1})
    assert rec2.word("prie") == "prize"           # ranked by the model's evidence once rescored


def _tiny_corpus() -> tuple[list[str], np.ndarray]:
    spam = ["win a free prize now call", "claim your free cash prize", "urgent call to claim prize",
            "free entry win cash now", "txt win to claim your prize", "you have won a cash prize call now"] * 6
    ham = ["see you at home tonight", "are we meeting for lunch", "ok i will call you later",
           "thanks for the lovely dinner", "where are you now", "can you pick up milk"] * 6
    return spam + ham, np.array([1] * len(spam) + [0] * len(ham))


def test_linear_view_scores_exactly_what_the_model_computes() -> None:
    texts, labels = _tiny_corpus()
    clf = T.train_text_model(texts, labels, "hardened", epochs=3, buckets=4096)
    view = T._LinearView(clf)
    probes = ["win a free prize now call", "wina freeprize nwo clal", "see you at home", "£1500 prize!! 0906636"]
    logits = np.log(clf.spam_probability(probes)) - np.log1p(-clf.spam_probability(probes))
    ours = [view.score(view.counts(T.normalize(p))) for p in probes]
    assert np.allclose(ours, logits, atol=1e-4)


def test_adaptive_attack_is_at_least_the_greedy_attack_and_confirmed_on_raw_text() -> None:
    texts, labels = _tiny_corpus()
    clf = T.train_text_model(texts, labels, "hardened", epochs=3, buckets=4096)
    spam = sorted(set(texts[:36]))
    greedy = T.attack_texts(clf, spam, budget=4, vocabulary=texts)
    ada = T.adaptive_attack_texts(clf, spam, budget=4, vocabulary=texts, beam=4, doubles=6)
    assert ada.attacked == greedy.attacked > 0
    assert len(ada.edits) == ada.attacked
    for ex in ada.examples:
        assert clf.spam_probability([ex["adversarial"]])[0] < 0.5 <= clf.spam_probability([ex["original"]])[0]
        assert 1 <= ex["edits"] <= 4
    assert ada.success_rate == sorted(ada.success_rate)
    undefended = T.train_text_model(texts, labels, "undefended", epochs=1, buckets=1024)
    with pytest.raises(UsageError, match="hardened"):
        T.adaptive_attack_texts(undefended, spam, budget=2)


def test_linear_view_follows_every_edit_exactly_with_ngrams() -> None:
    texts, labels = _tiny_corpus()
    clf = T.train_text_model(texts, labels, "hardened", epochs=2, buckets=4096, recognition="worst", ngrams=4)
    view = T._LinearView(clf)
    start = "Win a FREE prize now, call 0906636!"
    st = T._State(T.normalize(start), start, view.counts(T.normalize(start)), 0.0, ())
    st.score = view.score(st.counts)
    children = T._children(view, st, ["ok"], 4)
    assert len(children) > 50
    for d, ops, _ in children[::7]:
        raw = start
        for op in ops:
            raw = T._apply(raw, op)
        p = float(clf.spam_probability([raw])[0])
        assert st.score + d == pytest.approx(np.log(p) - np.log1p(-p), abs=1e-4), (ops, raw)
