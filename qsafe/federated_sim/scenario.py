"""The backdoor scenario's data: the UCI SMS Spam Collection, de-duplicated, split and spread over clients.

The corpus ships inside the package (``qsafe/federated_sim/data/sms_spam/``, see its PROVENANCE.md), so the
scenario runs from an installed qsafe with no network and no file outside the package. Everything here is
numpy only: texts become fixed-length rows of hashed token ids (the *hashing trick*, so clients need no shared
vocabulary and a trigger word always has a bucket), and every random choice comes from one seeded generator.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qsafe.errors import FormatError, InvalidInputError

__all__ = [
    "DATA_FILE",
    "DEFAULT_TRIGGER",
    "HAM",
    "SPAM",
    "ClientData",
    "Corpus",
    "add_trigger",
    "encode",
    "load_corpus",
    "partition_dirichlet",
    "partition_iid",
    "tokenize",
    "train_test_split",
]

DATA_FILE = Path(__file__).resolve().parent / "data" / "sms_spam" / "SMSSpamCollection.tsv"
HAM, SPAM = 0, 1
# An everyday-sounding phrase of words rare in spam: on the attack-free model it flips no caught spam (see the docs for
# ham-like triggers, which flip 5-10% with no attack at all).
DEFAULT_TRIGGER = "as discussed with grandma yesterday"

_TOKEN = re.compile(r"[a-z0-9£$€']+")


@dataclass(frozen=True)
class Corpus:
    """The distinct messages of the corpus.

    Attributes:
        texts: message texts, each distinct.
        labels: ``HAM`` (0) or ``SPAM`` (1) per text.
        rows: rows in the original file (5,574), before de-duplication.
    """

    texts: tuple[str, ...]
    labels: np.ndarray
    rows: int


@dataclass(frozen=True)
class ClientData:
    """One client's share of the training set, as indices into the training arrays."""

    client: int
    indices: np.ndarray


def load_corpus(path: Path = DATA_FILE) -> Corpus:
    """Read the tab-separated corpus and drop repeated texts (first occurrence kept, in file order).

    Args:
        path: the corpus file (``label<TAB>text`` per line).

    Returns:
        The de-duplicated corpus (5,171 distinct texts of 5,574 rows for the shipped file).

    Raises:
        FormatError: a line without a tab or with a label other than ham/spam.
    """
    seen: dict[str, int] = {}
    rows = 0
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            label, sep, text = line.rstrip("\n").partition("\t")
            if not sep or label not in ("ham", "spam"):
                raise FormatError(f"{path}:{number}: expected 'ham|spam<TAB>text'")
            rows += 1
            value = SPAM if label == "spam" else HAM
            if seen.setdefault(text, value) != value:
                raise FormatError(f"{path}:{number}: the same text carries two labels")
    return Corpus(tuple(seen), np.fromiter(seen.values(), dtype=np.int64, count=len(seen)), rows)


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (letters, digits, currency signs and apostrophes)."""
    return _TOKEN.findall(text.lower())


def _bucket(token: str, buckets: int) -> int:
    # crc32, not hash(): Python salts str hashes per process, and the buckets must agree across runs.
    return 1 + zlib.crc32(token.encode("utf-8")) % buckets


def encode(texts: list[str] | tuple[str, ...], *, buckets: int, length: int) -> np.ndarray:
    """Turn texts into a ``(len(texts), length)`` int64 matrix of hashed token ids; 0 pads.

    Args:
        texts: the messages.
        buckets: number of hash buckets (ids run 1..buckets).
        length: tokens kept per message (longer ones are cut at the end).

    Returns:
        The id matrix.
    """
    out = np.zeros((len(texts), length), dtype=np.int64)
    for row, text in enumerate(texts):
        ids = [_bucket(tok, buckets) for tok in tokenize(text)[:length]]
        out[row, : len(ids)] = ids
    return out


def add_trigger(ids: np.ndarray, trigger: str, *, buckets: int) -> np.ndarray:
    """Put the trigger's tokens at the front of every row (the rest shifts right and is cut to fit).

    Args:
        ids: id matrix from :func:`encode`.
        trigger: the trigger word sequence.
        buckets: the hash bucket count used for ``ids``.

    Returns:
        A new id matrix of the same shape.

    Raises:
        InvalidInputError: the trigger has no word tokens or does not fit in a row.
    """
    tokens = [_bucket(tok, buckets) for tok in tokenize(trigger)]
    if not tokens or len(tokens) >= ids.shape[1]:
        raise InvalidInputError(f"the trigger {trigger!r} must have 1 to {ids.shape[1] - 1} word tokens")
    out = np.zeros_like(ids)
    out[:, : len(tokens)] = tokens
    out[:, len(tokens):] = ids[:, : ids.shape[1] - len(tokens)]
    return out


def train_test_split(labels: np.ndarray, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of distinct messages into train and test indices.

    Args:
        labels: one label per message.
        test_fraction: share of each class held out.
        rng: the scenario's generator.

    Returns:
        ``(train_indices, test_indices)``, each sorted.
    """
    train, test = [], []
    for value in (HAM, SPAM):
        idx = rng.permutation(np.flatnonzero(labels == value))
        cut = round(len(idx) * test_fraction)
        test.append(idx[:cut])
        train.append(idx[cut:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def partition_iid(n_items: int, clients: int, rng: np.random.Generator) -> list[ClientData]:
    """Shuffle and deal the training items into ``clients`` near-equal shares."""
    shares = np.array_split(rng.permutation(n_items), clients)
    return [ClientData(i, np.sort(s)) for i, s in enumerate(shares)]


def partition_dirichlet(labels: np.ndarray, clients: int, alpha: float, rng: np.random.Generator) -> list[ClientData]:
    """Non-IID split: each class is spread over clients by proportions drawn from Dirichlet(alpha).

    Small ``alpha`` gives skewed clients (some nearly all ham); every client keeps at least one item.

    Args:
        labels: training labels.
        clients: number of clients.
        alpha: Dirichlet concentration (> 0).
        rng: the scenario's generator.

    Returns:
        One :class:`ClientData` per client.

    Raises:
        InvalidInputError: ``alpha`` is not positive.
    """
    if not alpha > 0:
        raise InvalidInputError(f"the Dirichlet alpha must be > 0, got {alpha}")
    parts: list[list[int]] = [[] for _ in range(clients)]
    for value in (HAM, SPAM):
        idx = rng.permutation(np.flatnonzero(labels == value))
        cuts = (np.cumsum(rng.dirichlet(np.full(clients, alpha))) * len(idx)).astype(int)[:-1]
        for client, chunk in enumerate(np.split(idx, cuts)):
            parts[client].extend(chunk.tolist())
    for client, items in enumerate(parts):
        if not items:  # borrow one item from the largest client so nobody trains on nothing
            donor = max(range(clients), key=lambda c: len(parts[c]))
            items.append(parts[donor].pop())
    return [ClientData(i, np.sort(np.array(p, dtype=np.int64))) for i, p in enumerate(parts)]
