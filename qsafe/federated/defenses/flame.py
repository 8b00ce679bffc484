"""FLAME (Nguyen et al., USENIX Security 2022): cluster, clip, add noise.

1. Cosine distances between the updates; keep the majority cluster. FLAME runs HDBSCAN with
   ``min_cluster_size = n/2 + 1``, ``min_samples = 1`` and a single allowed cluster. With ``min_samples = 1``
   HDBSCAN's mutual-reachability distance is the plain distance, and the one cluster it labels is the
   single-linkage component that first reaches ``n/2 + 1`` members as the distance threshold grows. That is
   what :func:`majority_cluster` computes (Kruskal with a union-find; numpy only, no hdbscan/scikit-learn).
2. Clip every kept update to the median norm of all updates of the round.
3. Average the kept updates and add Gaussian noise of standard deviation ``noise_lambda * median norm``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qsafe.errors import InvalidInputError
from qsafe.federated.defenses.base import (
    ACCEPTED,
    CLIPPED,
    REJECTED,
    AggregateResult,
    ClientDecision,
    ClientUpdate,
    Strategy,
    clip_factors,
    norms,
    stack,
)

__all__ = ["Flame", "cosine_distances", "majority_cluster"]


def cosine_distances(matrix: np.ndarray) -> np.ndarray:
    """``1 - cosine similarity`` between every pair of rows."""
    unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-300)
    return np.asarray(np.clip(1.0 - unit @ unit.T, 0.0, 2.0))


def majority_cluster(distances: np.ndarray) -> np.ndarray:
    """The first single-linkage component with at least ``n // 2 + 1`` members, as a boolean mask.

    Args:
        distances: ``(n, n)`` symmetric distances.

    Returns:
        ``(n,)`` mask of the kept rows.
    """
    n = distances.shape[0]
    need = n // 2 + 1
    parent = list(range(n))
    size = [1] * n

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    rows, cols = np.triu_indices(n, k=1)
    for edge in np.argsort(distances[rows, cols], kind="stable"):
        a, b = find(int(rows[edge])), find(int(cols[edge]))
        if a == b:
            continue
        parent[b] = a
        size[a] += size[b]
        if size[a] >= need:
            return np.array([find(i) == a for i in range(n)])
    return np.ones(n, dtype=bool)  # n == 1


class Flame(Strategy):
    """FLAME aggregation.

    Args:
        noise_lambda: noise standard deviation as a multiple of the clip bound (FLAME uses 0.001 for NLP).
    """

    name = "flame"

    def __init__(self, noise_lambda: float = 0.001) -> None:
        if noise_lambda < 0:
            raise InvalidInputError(f"FLAME's noise lambda must be >= 0, got {noise_lambda}")
        self.noise_lambda = noise_lambda

    def aggregate(self, server_round: int, updates: Sequence[ClientUpdate], rng: np.random.Generator) -> AggregateResult:
        matrix = stack(updates)
        kept = majority_cluster(cosine_distances(matrix))
        row_norms = norms(matrix)
        bound = float(np.median(row_norms))
        factors = clip_factors(row_norms, bound) * kept
        mean = factors @ matrix / kept.sum()
        mean += rng.normal(0.0, self.noise_lambda * bound, size=mean.shape)
        share = factors / factors.sum()
        decisions = tuple(
            ClientDecision(u.client, REJECTED if not k else CLIPPED if f < 1 else ACCEPTED, float(s),
                           f"norm {nv:.4g} clip {bound:.4g}")
            for u, k, f, s, nv in zip(updates, kept, factors, share, row_norms)
        )
        return AggregateResult(mean.astype(np.float32), decisions)
