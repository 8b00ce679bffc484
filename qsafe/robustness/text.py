"""Text evasion on the SMS-spam classifier: edit a spam message until the classifier calls it ham.

**Attack** (white-box, greedy): each step tries every single edit -- swap two adjacent characters of a word,
delete a character, replace a character by a Unicode homoglyph (Cyrillic/Greek look-alikes), insert one of the
words the model finds most ham-like -- and keeps the edit that lowers the spam probability most. Attack success
rate at budget b = share of the correctly detected test spam turned into "ham" within b edits.

**Models.** ``undefended``: the project's classifier (``qsafe.federated``'s fastText-shaped hashed bag of words +
linear layer), trained centrally. ``hardened``: a normalisation front end (NFKC, homoglyph map to ASCII,
invisible characters removed, lower case), robust word recognition (an out-of-vocabulary word is read as the
vocabulary word one edit away that is most frequent in training spam; after Pruthi et al. 2019), word features
plus order-free keys (the word's sorted letters and those of each one-character deletion), each feature counted
once, and a **nearly monotone** linear model (token weights clamped to >= -0.1: a word can add spam evidence but
remove very little, so inserted words barely lower the score), trained with random-edit augmentation.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qsafe.robustness._torch import seed_all, torch

__all__ = ["HOMOGLYPHS", "TextAttackResult", "attack_texts", "normalize", "run_text_scenario", "train_text_model"]

HOMOGLYPHS = {"a": "а", "c": "с", "e": "е", "i": "і", "j": "ј", "o": "о", "p": "р", "s": "ѕ", "x": "х", "y": "у",
              "A": "Α", "B": "Β", "E": "Ε", "H": "Η", "I": "Ι", "K": "Κ", "M": "Μ", "N": "Ν", "O": "Ο", "P": "Ρ",
              "T": "Τ", "X": "Χ", "Z": "Ζ", "C": "С", "S": "Ѕ", "l": "ӏ", "h": "һ", "d": "ԁ", "q": "ԛ", "w": "ԝ"}
_TO_ASCII = {glyph: ascii_ for ascii_, glyph in HOMOGLYPHS.items()}
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_WORD = re.compile(r"[A-Za-z0-9£$€'\u0370-\u04ff]+")
_TOKEN = re.compile(r"[a-z0-9£$€']+")


def normalize(text: str) -> str:
    """The hardened model's front end: NFKC, invisible characters dropped, homoglyphs to ASCII, lower case."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return "".join(_TO_ASCII.get(ch, ch) for ch in text).lower()


def _bucket(feature: str, buckets: int) -> int:
    return 1 + zlib.crc32(feature.encode("utf-8")) % buckets


@functools.lru_cache(maxsize=200_000)
def _word_features(word: str) -> tuple[str, ...]:
    out = {"w:" + word: None}
    if len(word) >= 3:
        # one namespace for the word's key and its deletions' keys: a deleted letter leaves a shared key
        out["k:" + "".join(sorted(word))] = None
        for i in range(len(word)):
            out["k:" + "".join(sorted(word[:i] + word[i + 1:]))] = None
    digits = sum(ch.isdigit() for ch in word)
    if digits >= 4:  # phone numbers, short codes, amounts: their shape survives a deleted digit
        out[f"n:{min(digits, 11) // 2}"] = None
        out[f"n:{(min(digits, 11) + 1) // 2}"] = None
    return tuple(out)


_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789£$€'"


class Corrector:
    """Robust word recognition (after Pruthi et al., ACL 2019): a word not in the training vocabulary is replaced by
    the vocabulary word one edit away (insertion, deletion, substitution, adjacent swap) that appears in most
    training **spam** (then most messages) -- pessimistic towards the attacker, who wants spam words to vanish."""

    def __init__(self, texts: Sequence[str], labels: np.ndarray) -> None:
        self.count: dict[str, int] = {}
        self.spam: dict[str, int] = {}
        for text, label in zip(texts, labels):
            for word in set(_TOKEN.findall(normalize(text))):
                self.count[word] = self.count.get(word, 0) + 1
                if label == 1:
                    self.spam[word] = self.spam.get(word, 0) + 1
        self._cache: dict[str, str] = {}

    def _neighbours(self, w: str) -> set[str]:
        out = {w[:i] + w[i + 1:] for i in range(len(w))}
        out |= {w[:i] + w[i + 1] + w[i] + w[i + 2:] for i in range(len(w) - 1)}
        for i in range(len(w) + 1):
            for ch in _ALPHABET:
                out.add(w[:i] + ch + w[i:])
                if i < len(w):
                    out.add(w[:i] + ch + w[i + 1:])
        return {c for c in out if c in self.count}

    def word(self, w: str) -> str:
        if w in self.count or len(w) < 2:
            return w
        hit = self._cache.get(w)
        if hit is None:
            near = self._neighbours(w)
            hit = max(sorted(near), key=lambda c: (self.spam.get(c, 0), self.count[c])) if near else w
            self._cache[w] = hit
        return hit


def hardened_features(text: str, corrector: Corrector | None = None) -> list[str]:
    """Word (corrected when a corrector is given), sorted-letter key and the sorted keys of each one-character
    deletion (words of 3+ characters), digit-count shape of numbers; each feature once."""
    out: dict[str, None] = {}
    for word in _TOKEN.findall(normalize(text)):
        if corrector is not None:
            word = corrector.word(word)
        out.update(dict.fromkeys(_word_features(word)))
    return list(out)


@dataclass
class TextClassifier:
    """A trained spam classifier over raw texts: ``spam_probability(texts)``."""

    kind: str
    net: Any
    buckets: int
    length: int
    corrector: Corrector | None = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from qsafe.federated_sim.scenario import encode

        if self.kind == "undefended":
            return encode(list(texts), buckets=self.buckets, length=self.length)
        out = np.zeros((len(texts), self.length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [_bucket(f, self.buckets) for f in hardened_features(text, self.corrector)[: self.length]]
            out[row, : len(ids)] = ids
        return out

    def spam_probability(self, texts: Sequence[str]) -> np.ndarray:
        t = torch()
        with t.no_grad():
            logits = self.net(t.from_numpy(self.encode(texts)))
        if self.kind == "undefended":
            return np.asarray(t.softmax(logits, 1)[:, 1].numpy())
        return np.asarray(t.sigmoid(logits.squeeze(1)).numpy())

    def token_scores(self, words: Sequence[str]) -> np.ndarray:
        """Spam evidence of each single word (the attacker's white-box view for choosing insertions)."""
        return self.spam_probability(list(words))


class _Monotone(torch().nn.Module):  # type: ignore[misc]
    def __init__(self, buckets: int, floor: float) -> None:
        super().__init__()
        self.floor = floor
        t = torch()
        self.bag = t.nn.EmbeddingBag(buckets + 1, 1, mode="sum", padding_idx=0)
        with t.no_grad():
            self.bag.weight.uniform_(0.0, 0.01)
            self.bag.weight[0].zero_()
        self.bias = t.nn.Parameter(t.tensor([-2.0]))

    def forward(self, ids: Any) -> Any:
        return self.bag(ids) + self.bias

    def clamp(self) -> None:
        with torch().no_grad():
            self.bag.weight.clamp_(min=-self.floor)
            self.bag.weight[0].zero_()


def random_edits(text: str, k: int, rng: np.random.Generator, benign: Sequence[str] = ()) -> str:
    """Apply ``k`` random edits of the attack's kinds (for augmentation)."""
    for _ in range(k):
        words = list(_WORD.finditer(text))
        op = rng.integers(4)
        if op == 3 or not words:
            if benign:
                text = text + " " + benign[int(rng.integers(len(benign)))]
            continue
        m = words[rng.integers(len(words))]
        w = m.group()
        i = int(rng.integers(len(w)))
        if op == 0 and len(w) > 1:
            i = min(i, len(w) - 2)
            w = w[:i] + w[i + 1] + w[i] + w[i + 2:]
        elif op == 1 and len(w) > 1:
            w = w[:i] + w[i + 1:]
        elif op == 2 and w[i] in HOMOGLYPHS:
            w = w[:i] + HOMOGLYPHS[w[i]] + w[i + 1:]
        text = text[: m.start()] + w + text[m.end():]
    return text


def train_text_model(texts: Sequence[str], labels: np.ndarray, kind: str, *, seed: int = 0, epochs: int = 10,
                     buckets: int = 8192, length: int = 64, augment: int = 3, floor: float = 0.1, lr: float = 0.05,
                     adversarial: int = 0, correct: bool = True,
                     progress: Callable[[int, int], None] | None = None) -> TextClassifier:
    """Train the ``undefended`` (project's) or ``hardened`` classifier on texts."""
    t = torch()
    seed_all(seed)
    rng = np.random.default_rng(seed)
    if kind == "undefended":
        from qsafe.federated_sim.model import ModelSpec, TextModel

        spec = ModelSpec(buckets=buckets, epochs=epochs)
        model = TextModel(spec, seed)
        clf = TextClassifier(kind, model._net, buckets, length)
        x = clf.encode(texts)
        model.set(model.get() + model.train_update(model.get(), x, labels.astype(np.int64), seed))
        return clf
    if kind != "hardened":
        from qsafe.errors import UsageError

        raise UsageError(f"text model kind must be 'undefended' or 'hardened', not {kind!r}")
    net = _Monotone(buckets, floor)
    clf = TextClassifier(kind, net, buckets, length * 8, Corrector(texts, labels) if correct else None)
    opt = t.optim.Adam(net.parameters(), lr=lr)
    y = t.from_numpy(labels.astype(np.float32))
    spam_idx = [i for i, lab in enumerate(labels) if lab == 1]
    for epoch in range(epochs):
        edited = [random_edits(s, int(rng.integers(augment + 1)), rng) if lab == 1 and augment else s
                  for s, lab in zip(texts, labels)]
        if adversarial and epoch >= epochs // 3:
            net.eval()
            chosen = rng.choice(spam_idx, size=min(len(spam_idx), adversarial), replace=False)
            for i in chosen:  # greedy attack on the current model: train on its best evasion
                edited[i] = _greedy(clf, texts[i], augment or 3, ())[0]
            net.train()
        x = t.from_numpy(clf.encode(edited))
        order = t.randperm(len(y))
        for b in range(0, len(y), 64):
            idx = order[b:b + 64]
            loss = t.nn.functional.binary_cross_entropy_with_logits(net(x[idx]).squeeze(1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            net.clamp()
        if progress is not None:
            progress(epoch + 1, epochs)
    net.eval()
    return clf


@dataclass
class TextAttackResult:
    """Per budget 1..B: attack success rate over the detected spam, plus examples."""

    budgets: list[int]
    success_rate: list[float]
    attacked: int
    examples: list[dict[str, Any]]


def _candidates(text: str, benign: Sequence[str]) -> list[str]:
    out: list[str] = []
    for m in _WORD.finditer(text):
        w, a, b = m.group(), m.start(), m.end()
        for i in range(len(w)):
            if i + 1 < len(w) and w[i] != w[i + 1]:
                out.append(text[:a] + w[:i] + w[i + 1] + w[i] + w[i + 2:] + text[b:])
            if len(w) > 1:
                out.append(text[:a] + w[:i] + w[i + 1:] + text[b:])
            if w[i] in HOMOGLYPHS:
                out.append(text[:a] + w[:i] + HOMOGLYPHS[w[i]] + w[i + 1:] + text[b:])
    out += [f"{text} {word}" for word in benign] + [f"{word} {text}" for word in benign]
    return out


def _greedy(clf: TextClassifier, text: str, budget: int, benign: Sequence[str]) -> tuple[str, int]:
    """Greedy edits (best single edit each step); returns (text, edits used) with edits = budget+1 on failure."""
    current = text
    for step in range(1, budget + 1):
        cands = _candidates(current, benign)
        if not cands:
            break
        probs = clf.spam_probability(cands)
        best = int(np.argmin(probs))
        current = cands[best]
        if probs[best] < 0.5:
            return current, step
    return current, budget + 1


def attack_texts(clf: TextClassifier, texts: Sequence[str], *, budget: int = 5, vocabulary: Sequence[str] = (),
                 benign_count: int = 20, progress: Callable[[int, int], None] | None = None) -> TextAttackResult:
    """Greedy white-box attack on every text (all spam the model detects); ASR at budgets 1..``budget``.

    ``vocabulary``: words the attacker may insert; the ``benign_count`` most ham-like under ``clf`` are used.
    """
    benign: list[str] = []
    if vocabulary:
        vocab = sorted(set(vocabulary))
        scores = clf.token_scores(vocab)
        benign = [vocab[i] for i in np.argsort(scores, kind="stable")[:benign_count]]
    detected = [s for s, p in zip(texts, clf.spam_probability(texts)) if p >= 0.5]
    used: list[int] = []
    examples: list[dict[str, Any]] = []
    for n, text in enumerate(detected):
        current, edits = _greedy(clf, text, budget, benign)
        used.append(edits)
        if edits <= budget and len(examples) < 5:
            examples.append({"original": text, "adversarial": current, "edits": edits})
        if progress is not None:
            progress(n + 1, len(detected))
    arr = np.array(used) if used else np.zeros(0)
    rates = [float(np.mean(arr <= b)) if len(arr) else 0.0 for b in range(1, budget + 1)]
    return TextAttackResult(list(range(1, budget + 1)), rates, len(detected), examples)


def run_text_scenario(defenses: Sequence[str], *, budget: int = 5, samples: int | None = None, epochs: int = 20,
                      adversarial: int = 0, seed: int = 0,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the undefended and/or hardened classifier on the project's SMS split and attack the test spam.

    The split is :mod:`qsafe.federated_sim.scenario`'s (de-duplicated corpus, stratified 20 % test, seed ``seed``).
    """
    from qsafe.federated_sim import scenario as sc

    say = progress or (lambda _m: None)
    corpus = sc.load_corpus()
    train_idx, test_idx = sc.train_test_split(corpus.labels, 0.2, np.random.default_rng(seed))
    texts = list(corpus.texts)
    tr_texts, te_texts = [texts[i] for i in train_idx], [texts[i] for i in test_idx]
    tr_y, te_y = corpus.labels[train_idx], corpus.labels[test_idx]
    vocabulary = sorted({w for s in tr_texts for w in sc.tokenize(s)})
    spam = [s for s, lab in zip(te_texts, te_y) if lab == sc.SPAM]
    out: dict[str, Any] = {"split": {"train": len(tr_y), "test": len(te_y), "test_spam": len(spam), "seed": seed},
                           "budgets": list(range(1, budget + 1)), "models": {}}
    for name in defenses:
        kind = "undefended" if name == "none" else "hardened"
        say(f"training the {kind} classifier")
        def epoch_line(e: int, n: int, kind: str = kind) -> None:
            say(f"{kind}: epoch {e}/{n}")

        def attack_line(i: int, n: int, kind: str = kind) -> None:
            if i % 25 == 0 or i == n:
                say(f"{kind}: attacked {i}/{n}")

        clf = train_text_model(tr_texts, tr_y, kind, seed=seed, epochs=10 if kind == "undefended" else epochs,
                               adversarial=0 if kind == "undefended" else adversarial, progress=epoch_line)
        clean = float(np.mean((clf.spam_probability(te_texts) >= 0.5) == (te_y == sc.SPAM)))
        say(f"{kind}: clean accuracy {clean:.4f}; attacking the detected test spam")
        res = attack_texts(clf, spam[:samples] if samples else spam, budget=budget, vocabulary=vocabulary,
                           progress=attack_line)
        out["models"][name] = {"kind": kind, "clean_accuracy": clean, "attacked": res.attacked,
                               "success_rate": res.success_rate, "examples": res.examples}
    return out
