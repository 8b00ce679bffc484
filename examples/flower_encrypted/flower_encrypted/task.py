"""The learning task: spam detection on the UCI SMS Spam Collection (shipped inside qsafe) with a numpy logistic
regression over hashed word counts. Small on purpose: the point of this app is the aggregation around it."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from qsafe.federated_sim import scenario

BUCKETS = 2048


def initial_arrays() -> dict[str, np.ndarray]:
    return {"w": np.zeros(BUCKETS, np.float32), "b": np.zeros(1, np.float32)}


@lru_cache(maxsize=4)
def client_data(partition: int, partitions: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """This client's (x_train, y_train, x_test, y_test): a seeded IID share of the corpus, 80/20 split."""
    corpus = scenario.load_corpus()
    tokens = scenario.encode(corpus.texts, buckets=BUCKETS - 1, length=64)
    x = np.zeros((len(tokens), BUCKETS), np.float32)
    for row, ids in enumerate(tokens):
        np.add.at(x[row], ids[ids > 0], 1.0)
    y = (corpus.labels == scenario.SPAM).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(y))
    share = order[partition::partitions]
    cut = int(len(share) * 0.8)
    return x[share[:cut]], y[share[:cut]], x[share[cut:]], y[share[cut:]]


def _predict(arrays: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ arrays["w"] + arrays["b"][0])))


def train(arrays: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, epochs: int, lr: float = 0.5,
          seed: int = 0) -> dict[str, np.ndarray]:
    """Mini-batch SGD on the logistic loss; returns the new arrays."""
    out = {k: v.astype(np.float64) for k, v in arrays.items()}
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(len(y)), max(1, len(y) // 32)):
            err = _predict(out, x[batch]) - y[batch]
            out["w"] -= lr * x[batch].T @ err / len(batch)
            out["b"] -= lr * np.array([err.mean()])
    return {k: v.astype(np.float32) for k, v in out.items()}


def evaluate(arrays: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(log loss, accuracy)."""
    p = np.clip(_predict({k: v.astype(np.float64) for k, v in arrays.items()}, x), 1e-7, 1 - 1e-7)
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return loss, float(np.mean((p > 0.5) == (y > 0.5)))
