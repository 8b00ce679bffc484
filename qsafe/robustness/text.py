"""Text evasion on the SMS-spam classifier: edit a spam message until the classifier calls it ham.

**Attacks** (white-box). *Greedy* (:func:`attack_texts`): each step tries every single edit -- swap two adjacent
characters of a word, delete a character, replace a character by a Unicode homoglyph (Cyrillic/Greek
look-alikes), insert one of the words the model finds most ham-like -- and keeps the edit that lowers the spam
probability most. *Adaptive* (:func:`adaptive_attack_texts`, hardened models): an attacker who knows the front
end, the word recognition and every weight scores each edit exactly and runs a beam search over edit sequences,
with two-edit rewrites of one word (what worst-case word recognition leaves open) and deletions/swaps of any
character, separators included (words merged or split). Attack success rate at budget b = share of the correctly
detected test spam turned into "ham" within b edits; the scenario reports the worst case per message over both.

**Models.** ``undefended``: the project's classifier (``qsafe.federated_sim``'s fastText-shaped hashed bag of words +
linear layer), trained centrally. ``hardened``: a normalisation front end (NFKC, homoglyph map to ASCII,
invisible characters removed, lower case); worst-case word recognition (:class:`Recognizer`: each word is read as
the spammiest vocabulary word one attacker edit could have hidden, merged words are split back; after Pruthi et
al. 2019, made pessimistic); word features plus order-free keys (sorted letters of the word and of each
one-character deletion); character 4-grams of the words run together (blind to separators); each feature counted
once; a **monotone** linear model (weights >= 0: an inserted word can only add spam evidence), trained with
random-edit augmentation and, each epoch, the most incriminating word of each training spam removed.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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


def _word_counts(texts: Sequence[str], labels: np.ndarray) -> tuple[dict[str, int], dict[str, int]]:
    """For each normalised word: in how many training messages it occurs, and in how many spam messages."""
    count: dict[str, int] = {}
    spam: dict[str, int] = {}
    for text, label in zip(texts, labels):
        for word in set(_TOKEN.findall(normalize(text))):
            count[word] = count.get(word, 0) + 1
            if label == 1:
                spam[word] = spam.get(word, 0) + 1
    return count, spam


class Corrector:
    """Robust word recognition (after Pruthi et al., ACL 2019): a word not in the training vocabulary is replaced by
    the vocabulary word one edit away (insertion, deletion, substitution, adjacent swap) that appears in most
    training **spam** (then most messages) -- pessimistic towards the attacker, who wants spam words to vanish."""

    def __init__(self, texts: Sequence[str], labels: np.ndarray) -> None:
        self.count, self.spam = _word_counts(texts, labels)
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

    def read(self, w: str) -> tuple[str, ...]:
        return (self.word(w),)


class Recognizer:
    """Worst-case word recognition: every word is read as the **spammiest** reading that the attacker's edits could
    have produced it from, ranked by the current model's evidence (:meth:`rescore`; before the first rescore, by
    training spam count). The readings of a word ``w``: ``w`` itself; any vocabulary word ``w`` is one inserted character
    (the attacker deleted it) or one adjacent swap away from; ``w`` without its first or last character (a character
    swapped in across a word boundary; words of 4+ characters); and, for a word outside the vocabulary, a split
    into two or three vocabulary words of 3+ characters (the attacker deleted or swapped away the separators).

    So one deletion or swap never lowers a word's evidence below the unedited word's, and merging words keeps
    both: the attacker needs two edits on one word to remove it. Homoglyphs and invisible characters are undone by
    :func:`normalize` first. Unknown words with no such reading are kept as they are.
    """

    def __init__(self, texts: Sequence[str], labels: np.ndarray) -> None:
        self.count, self.spam = _word_counts(texts, labels)
        self.score: dict[str, float] = {}
        self._near: dict[str, tuple[str, ...]] = {}
        self._cache: dict[tuple[str, int], tuple[str, ...]] = {}

    def neighbours(self, w: str) -> tuple[str, ...]:
        """Vocabulary words that one attacker edit (a deletion, an adjacent swap, or a character moved in from the
        next word) turns into ``w``, and ``w`` itself when known."""
        hit = self._near.get(w)
        if hit is None:
            out = {w[:i] + w[i + 1] + w[i] + w[i + 2:] for i in range(len(w) - 1)}
            out |= {w[:i] + ch + w[i:] for i in range(len(w) + 1) for ch in _ALPHABET}
            if len(w) >= 4:
                out |= {w[1:], w[:-1]}
            out.add(w)
            hit = tuple(sorted(c for c in out if c in self.count))
            self._near[w] = hit
        return hit

    def rescore(self, score: dict[str, float]) -> None:
        """Rank candidate words by ``score`` (the model's evidence for each vocabulary word) from now on."""
        self.score = score
        self._cache.clear()

    def _rank(self, c: str) -> tuple[float, int, int]:
        return (self.score.get(c, 0.0), self.spam.get(c, 0), self.count.get(c, 0))

    def _value(self, words: tuple[str, ...]) -> tuple[float, int, int]:
        ranks = [self._rank(c) for c in words]
        return (sum(r[0] for r in ranks), sum(r[1] for r in ranks), sum(r[2] for r in ranks))

    def read(self, w: str, parts: int = 3) -> tuple[str, ...]:
        """The words ``w`` is read as (one, or up to ``parts`` for a word outside the vocabulary)."""
        key = (w, parts)
        hit = self._cache.get(key)
        if hit is None:
            near = self.neighbours(w)
            hit = (max(near, key=self._rank),) if near else (w,)
            if parts > 1 and w not in self.count and 6 <= len(w) <= 32:
                split = self._segment(w, parts)
                if split is not None and self._value(split) > self._value(hit):
                    hit = split
            self._cache[key] = hit
        return hit

    def _segment(self, w: str, parts: int) -> tuple[str, ...] | None:
        """The spammiest split of ``w`` into 2..``parts`` vocabulary words of 3+ characters, if any."""
        best: tuple[str, ...] | None = None
        for i in range(3, len(w) - 2):
            left, rest = w[:i], w[i:]
            if left not in self.count:
                continue
            options: list[tuple[str, ...]] = [(left, rest)] if rest in self.count else []
            if parts > 2 and len(rest) >= 6:
                sub = self._segment(rest, parts - 1)
                if sub is not None:
                    options.append((left, *sub))
            for cand in options:
                if best is None or self._value(cand) > self._value(best):
                    best = cand
        return best

    def word(self, w: str) -> str:
        """The single word ``w`` is read as (no splitting)."""
        return self.read(w, 1)[0]


def _plain_features(word: str) -> tuple[str, ...]:
    return tuple(f for f in _word_features(word) if not f.startswith("k:"))


def _grams(stream: str, n: int) -> list[str]:
    return ["c:" + stream[i:i + n] for i in range(len(stream) - n + 1)] if n else []


def hardened_features(text: str, corrector: Corrector | Recognizer | None = None, keys: bool = True,
                      ngrams: int = 0) -> list[str]:
    """Word (corrected when a corrector is given), sorted-letter key and the sorted keys of each one-character
    deletion (words of 3+ characters; ``keys``), digit-count shape of numbers; each feature once."""
    out: dict[str, None] = {}
    words = _word_features if keys else _plain_features
    for token in _TOKEN.findall(normalize(text)):
        for word in corrector.read(token) if corrector is not None else (token,):
            out.update(dict.fromkeys(words(word)))
    if ngrams:  # character n-grams of the words run together: blind to the separators between words
        out.update(dict.fromkeys(_grams("".join(_TOKEN.findall(normalize(text))), ngrams)))
    return list(out)


@dataclass
class TextClassifier:
    """A trained spam classifier over raw texts: ``spam_probability(texts)``."""

    kind: str
    net: Any
    buckets: int
    length: int
    corrector: Corrector | Recognizer | None = None
    keys: bool = True
    ngrams: int = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from qsafe.federated_sim.scenario import encode

        if self.kind == "undefended":
            return encode(list(texts), buckets=self.buckets, length=self.length)
        out = np.zeros((len(texts), self.length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [_bucket(f, self.buckets) for f in hardened_features(text, self.corrector, self.keys, self.ngrams)[: self.length]]
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


def _word_score(clf: TextClassifier, words: Sequence[str]) -> dict[str, float]:
    """The hardened model's evidence for each word alone: the sum of its features' weights."""
    weight = clf.net.bag.weight.detach().numpy()[:, 0]
    feats = _word_features if clf.keys else _plain_features
    return {w: float(sum(weight[_bucket(f, clf.buckets)] for f in feats(w))) for w in words}


def _drop_words(clf: TextClassifier, text: str, k: int, score: dict[str, float]) -> str:
    """Adversarial augmentation for the word-level threat: remove the ``k`` words whose removal lowers the spam
    evidence most (each a word that occurs once, as two edits on one word would), greedily."""
    corrector = clf.corrector
    words = _TOKEN.findall(normalize(text))
    for _ in range(k):
        read = [corrector.read(w) if corrector is not None else (w,) for w in words]
        once = [i for i, r in enumerate(read) if read.count(r) == 1]
        if len(once) < 2:
            break
        i = max(once, key=lambda j: sum(score.get(r, 0.0) for r in read[j]))
        del words[i]
    return " ".join(words)


def _token_attack(clf: TextClassifier, text: str, budget: int, weight: np.ndarray, bias: float) -> str:
    """A cheap greedy attack for adversarial training: on the normalised tokens, apply the deletion or adjacent swap
    that lowers the hardened linear model's score most, ``budget`` times (or until it reads ham), scoring each
    candidate incrementally from the word features only (not the character n-grams). Homoglyphs (undone by the
    front end), inserted words (weights >= 0 when the floor is 0) and merged words are left out: it is a cheap
    augmentation, the evaluation uses :func:`attack_texts` and :func:`adaptive_attack_texts`."""
    feats = _word_features if clf.keys else _plain_features
    corrector = clf.corrector
    memo: dict[str, frozenset[int]] = {}

    def ids(tok: str) -> frozenset[int]:
        hit = memo.get(tok)
        if hit is None:
            read = corrector.read(tok) if corrector is not None else (tok,)
            hit = frozenset(_bucket(f, clf.buckets) for word in read for f in feats(word))
            memo[tok] = hit
        return hit

    toks = _TOKEN.findall(normalize(text))
    counts: dict[int, int] = {}
    for tok in toks:
        for b in ids(tok):
            counts[b] = counts.get(b, 0) + 1
    score = bias + float(sum(weight[b] for b in counts))
    for _ in range(budget):
        if score < 0:
            break
        best: tuple[float, int, str] | None = None
        for i, tok in enumerate(toks):
            old = ids(tok)
            lost = float(sum(weight[b] for b in old if counts[b] == 1))
            variants = {tok[:j] + tok[j + 1:] for j in range(len(tok))} if len(tok) > 1 else set()
            variants |= {tok[:j] + tok[j + 1] + tok[j] + tok[j + 2:] for j in range(len(tok) - 1) if tok[j] != tok[j + 1]}
            for new in sorted(variants):
                gained = float(sum(weight[b] for b in ids(new) if counts.get(b, 0) - (b in old) == 0))
                delta = gained - lost
                if best is None or delta < best[0]:
                    best = (delta, i, new)
        if best is None or best[0] >= 0:
            break
        delta, i, new = best
        for b in ids(toks[i]):
            counts[b] -= 1
            if not counts[b]:
                del counts[b]
        for b in ids(new):
            counts[b] = counts.get(b, 0) + 1
        toks[i] = new
        score += delta
    return " ".join(toks)


def train_text_model(texts: Sequence[str], labels: np.ndarray, kind: str, *, seed: int = 0, epochs: int = 10,
                     buckets: int | None = None, length: int = 64, augment: int = 3, floor: float = 0.0,
                     lr: float = 0.05, adversarial: int = 0, recognition: str = "worst", keys: bool = True,
                     ngrams: int = 4, drop: int = 0,
                     fast_adversarial: float = 0.5, adversarial_budget: int = 3,
                     progress: Callable[[int, int], None] | None = None) -> TextClassifier:
    """Train the ``undefended`` (project's) or ``hardened`` classifier on texts.

    ``buckets``: hash buckets (default 8,192 for the undefended model as the project trains it, 262,144 for the
    hardened one). Hardened only: ``recognition`` ``worst`` (:class:`Recognizer`, the default), ``oov``
    (:class:`Corrector`, the previous default) or ``none``; ``keys`` adds sorted-letter keys; ``ngrams`` adds the
    character n-grams of the words run together (0: none); ``floor`` bounds token weights from below (0: fully
    monotone, an inserted word can only add spam evidence); ``augment`` random edits per spam; ``drop`` removes up
    to that many of the most incriminating words of each training spam each epoch (adversarial augmentation for
    the two-edits-remove-a-word threat); ``adversarial`` re-attacks that many training spam per epoch with the
    greedy attack.
    """
    t = torch()
    seed_all(seed)
    rng = np.random.default_rng(seed)
    if kind == "undefended":
        from qsafe.federated_sim.model import ModelSpec, TextModel

        spec = ModelSpec(buckets=buckets or 8192, epochs=epochs)
        model = TextModel(spec, seed)
        clf = TextClassifier(kind, model._net, buckets or 8192, length)
        x = clf.encode(texts)
        model.set(model.get() + model.train_update(model.get(), x, labels.astype(np.int64), seed))
        return clf
    from qsafe.errors import UsageError

    if kind != "hardened":
        raise UsageError(f"text model kind must be 'undefended' or 'hardened', not {kind!r}")
    if recognition not in ("oov", "worst", "none"):
        raise UsageError(f"word recognition must be 'oov', 'worst' or 'none', not {recognition!r}")
    buckets = buckets or 262_144
    net = _Monotone(buckets, floor)
    corrector: Corrector | Recognizer | None = None
    if recognition == "oov":
        corrector = Corrector(texts, labels)
    elif recognition == "worst":
        corrector = Recognizer(texts, labels)
    clf = TextClassifier(kind, net, buckets, length * (16 if ngrams else 8), corrector, keys, ngrams)
    vocabulary = sorted(corrector.count) if corrector is not None else []
    opt = t.optim.Adam(net.parameters(), lr=lr)
    y = t.from_numpy(labels.astype(np.float32))
    spam_idx = [i for i, lab in enumerate(labels) if lab == 1]
    for epoch in range(epochs):
        score = _word_score(clf, vocabulary) if (recognition == "worst" and epoch) or drop else {}
        if isinstance(corrector, Recognizer) and epoch:
            corrector.rescore(score)
        edited = [random_edits(s, int(rng.integers(augment + 1)), rng) if lab == 1 and augment else s
                  for s, lab in zip(texts, labels)]
        if drop and epoch:
            edited = [_drop_words(clf, s, int(rng.integers(drop + 1)), score) if lab == 1 else s
                      for s, lab in zip(edited, labels)]
        if fast_adversarial and epoch:
            weight, bias = net.bag.weight.detach().numpy()[:, 0].copy(), float(net.bias.detach()[0])
            edited = [_token_attack(clf, s, adversarial_budget, weight, bias)
                      if lab == 1 and rng.random() < fast_adversarial else s for s, lab in zip(edited, labels)]
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
    if isinstance(corrector, Recognizer):
        corrector.rescore(_word_score(clf, vocabulary))
    return clf


@dataclass
class TextAttackResult:
    """Per budget 1..B: attack success rate over the detected spam, plus examples."""

    budgets: list[int]
    success_rate: list[float]
    attacked: int
    examples: list[dict[str, Any]]
    edits: list[int] = field(default_factory=list)  # per attacked text: edits used, budget+1 when it failed


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
    return TextAttackResult(list(range(1, budget + 1)), rates, len(detected), examples, used)


class _LinearView:
    """Exact, incremental scoring of a ``hardened`` classifier (a linear model over the set of features of the
    recognised words): the adaptive attacker's white-box view, which knows the front end, the word recognition and
    every weight."""

    def __init__(self, clf: TextClassifier) -> None:
        self.weight = clf.net.bag.weight.detach().numpy()[:, 0].astype(np.float64)
        self.bias = float(clf.net.bias.detach()[0])
        self.feats = _word_features if clf.keys else _plain_features
        self.corrector = clf.corrector
        self.buckets = clf.buckets
        self.ngrams = clf.ngrams
        self._memo: dict[str, tuple[str, ...]] = {}
        self._weights: dict[str, float] = {}

    def features(self, token: str) -> tuple[str, ...]:
        hit = self._memo.get(token)
        if hit is None:
            read = self.corrector.read(token) if self.corrector is not None else (token,)
            hit = tuple(dict.fromkeys(f for word in read for f in self.feats(word)))
            self._memo[token] = hit
        return hit

    def w(self, feature: str) -> float:
        hit = self._weights.get(feature)
        if hit is None:
            hit = self._weights[feature] = float(self.weight[_bucket(feature, self.buckets)])
        return hit

    def evidence(self, token: str) -> float:
        return sum(self.w(f) for f in self.features(token))

    def counts(self, normalized: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for tok in _TOKEN.findall(normalized):
            for f in self.features(tok):
                out[f] = out.get(f, 0) + 1
        for g in _grams("".join(_TOKEN.findall(normalized)), self.ngrams):
            out[g] = out.get(g, 0) + 1
        return out

    def gram_diff(self, old: str, new: str, lo: int, hi_old: int, hi_new: int, diff: dict[str, int]) -> None:
        """Add to ``diff`` the n-gram count change when ``old[lo:hi_old]`` becomes ``new[lo:hi_new]`` (the rest of
        the two normalised texts equal)."""
        if not self.ngrams:
            return
        a, seen = lo, 0
        while a > 0 and seen < self.ngrams - 1:
            a -= 1
            seen += old[a] in _TOKCHARS
        b_old, b_new, seen = hi_old, hi_new, 0
        while b_old < len(old) and seen < self.ngrams - 1:
            seen += old[b_old] in _TOKCHARS
            b_old += 1
            b_new += 1
        for g in _grams("".join(_TOKEN.findall(old[a:b_old])), self.ngrams):
            diff[g] = diff.get(g, 0) - 1
        for g in _grams("".join(_TOKEN.findall(new[a:b_new])), self.ngrams):
            diff[g] = diff.get(g, 0) + 1

    def score(self, counts: dict[str, int]) -> float:
        return self.bias + sum(self.w(f) for f in counts)

    def delta(self, counts: dict[str, int], old: Sequence[str], new: Sequence[str],
              diff: dict[str, int] | None = None) -> tuple[float, dict[str, int]]:
        """Score change when tokens ``old`` are replaced by ``new`` (plus the count changes already in ``diff``),
        and the per-feature count change."""
        diff = {} if diff is None else diff
        for tok in old:
            for f in self.features(tok):
                diff[f] = diff.get(f, 0) - 1
        for tok in new:
            for f in self.features(tok):
                diff[f] = diff.get(f, 0) + 1
        d = 0.0
        for f, k in diff.items():
            before = counts.get(f, 0)
            if before == 0 and before + k > 0:
                d += self.w(f)
            elif before > 0 and before + k == 0:
                d -= self.w(f)
        return d, diff


_TOKCHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789£$€'")


def _apply(text: str, op: tuple[str, int, str]) -> str:
    kind, p, word = op
    if kind == "d":
        return text[:p] + text[p + 1:]
    if kind == "s":
        return text[:p] + text[p + 1] + text[p] + text[p + 2:]
    return f"{word} {text}" if p == 0 else f"{text} {word}"


def _window(n: str, lo: int, hi: int) -> tuple[int, int]:
    while lo > 0 and n[lo - 1] in _TOKCHARS:
        lo -= 1
    while hi < len(n) and n[hi] in _TOKCHARS:
        hi += 1
    return lo, hi


@dataclass
class _State:
    normalized: str
    raw: str
    counts: dict[str, int]
    score: float
    ops: tuple[tuple[str, int, str], ...]


_Child = tuple[float, list[tuple[str, int, str]], dict[str, int]]


def _children(view: _LinearView, st: _State, benign: Sequence[str], doubles: int) -> list[_Child]:
    """Every one-edit child (any character deleted, any two adjacent characters swapped -- words merge or split
    when a separator is involved -- or a benign word put first or last) and, when ``doubles`` > 0, every two-edit
    rewrite of one of the ``doubles`` words carrying most evidence: ``(score change, ops, feature count change)``."""
    n = st.normalized
    out: list[_Child] = []
    for p in range(len(n)):
        for kind in ("d", "s"):
            if kind == "s" and (p + 1 >= len(n) or n[p] == n[p + 1]):
                continue
            if kind == "s" and n[p] not in _TOKCHARS and n[p + 1] not in _TOKCHARS:
                continue
            if kind == "d" and n[p] not in _TOKCHARS and not (
                    0 < p < len(n) - 1 and n[p - 1] in _TOKCHARS and n[p + 1] in _TOKCHARS):
                continue  # deleting a separator matters only where it merges two words
            width = 2 if kind == "s" else 1
            lo, hi = _window(n, p, p + width)
            new = _apply(n, (kind, p, ""))
            old_t = tuple(_TOKEN.findall(n[lo:hi]))
            new_t = tuple(_TOKEN.findall(new[lo:hi - (1 if kind == "d" else 0)]))
            diff: dict[str, int] = {}
            view.gram_diff(n, new, p, p + width, p + width - (1 if kind == "d" else 0), diff)
            if old_t == new_t and not any(diff.values()):
                continue
            d, diff = view.delta(st.counts, old_t, new_t, diff)
            out.append((d, [(kind, p, "")], diff))
    for word in benign:
        toks = tuple(_TOKEN.findall(word))
        for where in (0, 1):
            new = _apply(n, ("i", where, word))
            diff = {}
            if where == 0:
                view.gram_diff(n, new, 0, 0, len(word) + 1, diff)
            else:
                view.gram_diff(n, new, len(n), len(n), len(new), diff)
            d, diff = view.delta(st.counts, (), toks, diff)
            out.append((d, [("i", where, word)], diff))
    if doubles:
        spans = [(m.start(), m.end()) for m in _TOKEN.finditer(n)]
        spans = sorted(spans, key=lambda ab: -view.evidence(n[ab[0]:ab[1]]))[:doubles]
        for a, b in spans:
            tok = n[a:b]
            firsts = [("d", a + i, "") for i in range(len(tok))]
            firsts += [("s", a + i, "") for i in range(len(tok) - 1) if tok[i] != tok[i + 1]]
            seen: set[str] = set()
            for op1 in firsts:
                mid = _apply(n, op1)
                end = b - (1 if op1[0] == "d" else 0)
                m_tok = mid[a:end]
                seconds = [("d", a + i, "") for i in range(len(m_tok))]
                seconds += [("s", a + i, "") for i in range(len(m_tok) - 1) if m_tok[i] != m_tok[i + 1]]
                for op2 in seconds:
                    full = _apply(mid, op2)
                    fin = full[a:end - (1 if op2[0] == "d" else 0)]
                    if fin in seen:
                        continue
                    seen.add(fin)
                    diff = {}
                    view.gram_diff(n, full, a, b, a + len(fin), diff)
                    d, diff = view.delta(st.counts, (tok,), tuple(_TOKEN.findall(fin)), diff)
                    out.append((d, [op1, op2], diff))
    return out


def _beam(clf: TextClassifier, view: _LinearView, text: str, budget: int, benign: Sequence[str], beam: int,
          doubles: int) -> tuple[str, int]:
    """Beam search over edit sequences of cost <= ``budget`` (two-edit word rewrites cost 2); returns (text, edits)
    with edits = budget+1 on failure. A success is confirmed on the raw text by the classifier itself."""
    n = normalize(text)
    counts = view.counts(n)
    levels: list[list[_State]] = [[_State(n, text, counts, view.score(counts), ())]]
    for cost in range(1, budget + 1):
        pool: list[tuple[float, int, int, list[tuple[str, int, str]], dict[str, int]]] = []
        for back, dbl in ((1, 0), (2, doubles)):
            if cost - back < 0:
                continue
            for si, st in enumerate(levels[cost - back]):
                for d, ops, diff in _children(view, st, benign, dbl):
                    if len(ops) == back:
                        pool.append((st.score + d, cost - back, si, ops, diff))
        pool.sort(key=lambda c: c[0])
        nxt: list[_State] = []
        seen: set[str] = set()
        for score, lvl, si, ops, diff in pool:
            st = levels[lvl][si]
            n2, raw2 = st.normalized, st.raw
            for op in ops:
                n2, raw2 = _apply(n2, op), _apply(raw2, op)
            if n2 in seen:
                continue
            seen.add(n2)
            if score < 0 and float(clf.spam_probability([raw2])[0]) < 0.5:
                return raw2, cost
            c2 = dict(st.counts)
            for f, k in diff.items():
                v = c2.get(f, 0) + k
                if v:
                    c2[f] = v
                else:
                    c2.pop(f, None)
            nxt.append(_State(n2, raw2, c2, score, st.ops + tuple(ops)))
            if len(nxt) >= beam:
                break
        levels.append(nxt)
    best = min((st for lv in levels for st in lv), key=lambda st: st.score)
    return best.raw, budget + 1


def adaptive_attack_texts(clf: TextClassifier, texts: Sequence[str], *, budget: int = 5,
                          vocabulary: Sequence[str] = (), benign_count: int = 20, beam: int = 8, doubles: int = 12,
                          progress: Callable[[int, int], None] | None = None) -> TextAttackResult:
    """The adaptive attack on a ``hardened`` classifier: an attacker who knows the front end, the word recognition
    and the weights scores every edit exactly and searches edit sequences with a beam (width ``beam``) instead of
    one greedy edit at a time, including two-edit rewrites of single words (what defeats worst-case word
    recognition) and deletions/swaps of any character (merging or splitting words). Same budgets and success
    definition as :func:`attack_texts`; each success is confirmed on the raw text."""
    if clf.kind != "hardened":
        from qsafe.errors import UsageError

        raise UsageError("the adaptive text attack needs a hardened (linear) classifier")
    view = _LinearView(clf)
    benign: list[str] = []
    if vocabulary:
        vocab = sorted(set(vocabulary))
        scores = clf.token_scores(vocab)
        benign = [vocab[i] for i in np.argsort(scores, kind="stable")[:benign_count]]
    detected = [s for s, p in zip(texts, clf.spam_probability(texts)) if p >= 0.5]
    used: list[int] = []
    examples: list[dict[str, Any]] = []
    for k, text in enumerate(detected):
        current, edits = _beam(clf, view, text, budget, benign, beam, doubles)
        used.append(edits)
        if edits <= budget and len(examples) < 5:
            examples.append({"original": text, "adversarial": current, "edits": edits})
        if progress is not None:
            progress(k + 1, len(detected))
    arr = np.array(used) if used else np.zeros(0)
    rates = [float(np.mean(arr <= b)) if len(arr) else 0.0 for b in range(1, budget + 1)]
    return TextAttackResult(list(range(1, budget + 1)), rates, len(detected), examples, used)


def run_text_scenario(defenses: Sequence[str], *, budget: int = 5, samples: int | None = None, epochs: int = 20,
                      adversarial: int = 0, adaptive: bool = True, beam: int = 8, doubles: int = 12, seed: int = 0,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the undefended and/or hardened classifier on the project's SMS split and attack the test spam.

    The split is :mod:`qsafe.federated_sim.scenario`'s (de-duplicated corpus, stratified 20 % test, seed ``seed``).
    The hardened classifier is also attacked by :func:`adaptive_attack_texts` (unless ``adaptive`` is false); its
    ``success_rate`` is then the worst case per message (a message counts as evaded at budget b if either attack
    evades it within b edits), and ``attacks`` lists each attack's own rates.
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
        attacked = spam[:samples] if samples else spam
        res = attack_texts(clf, attacked, budget=budget, vocabulary=vocabulary, progress=attack_line)
        entry: dict[str, Any] = {"kind": kind, "clean_accuracy": clean, "attacked": res.attacked,
                                 "success_rate": res.success_rate, "examples": res.examples,
                                 "attacks": {"greedy": res.success_rate}}
        if kind == "hardened" and adaptive:
            def adaptive_line(i: int, n: int, kind: str = kind) -> None:
                if i % 25 == 0 or i == n:
                    say(f"{kind}: adaptive attack {i}/{n}")

            ada = adaptive_attack_texts(clf, attacked, budget=budget, vocabulary=vocabulary, beam=beam,
                                        doubles=doubles, progress=adaptive_line)
            worst = np.minimum(np.array(res.edits), np.array(ada.edits)) if res.edits else np.zeros(0)
            entry["attacks"]["adaptive"] = ada.success_rate
            entry["attacks"]["adaptive_search"] = {"beam": beam, "doubles": doubles}
            entry["success_rate"] = [float(np.mean(worst <= b)) if len(worst) else 0.0 for b in res.budgets]
            entry["examples"] = res.examples + ada.examples
        out["models"][name] = entry
    return out
