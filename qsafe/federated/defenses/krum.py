"""Krum and Multi-Krum (Blanchard et al., 2017).

Each update is scored by the sum of squared distances to its ``n - f - 2`` nearest other updates; Krum keeps the
single lowest-scoring update, Multi-Krum averages the ``m`` lowest (default ``n - f``). The assumed number of
Byzantine clients ``f`` must satisfy ``n > 2f + 2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qsafe.errors import InvalidInputError
from qsafe.federated.defenses.base import (
    ACCEPTED,
    REJECTED,
    AggregateResult,
    ClientDecision,
    ClientUpdate,
    Strategy,
    stack,
)

__all__ = ["Krum", "MultiKrum", "krum_scores", "krum_scores_from_distances"]


def krum_scores(matrix: np.ndarray, f: int) -> np.ndarray:
    """Krum score of every row: sum of squared distances to its ``n - f - 2`` closest other rows.

    Args:
        matrix: ``(n, d)`` updates.
        f: assumed number of Byzantine rows.

    Returns:
        ``(n,)`` scores (lower is more central).

    Raises:
        InvalidInputError: ``n <= 2f + 2``.
    """
    n = matrix.shape[0]
    if n <= 2 * f + 2:
        raise InvalidInputError(f"Krum needs n > 2f + 2 clients; got n={n}, f={f}")
    sq = np.einsum("ij,ij->i", matrix, matrix)
    return krum_scores_from_distances(np.maximum(sq[:, None] + sq[None, :] - 2.0 * matrix @ matrix.T, 0.0), f)


def krum_scores_from_distances(squared: np.ndarray, f: int) -> np.ndarray:
    """Krum scores from an ``(n, n)`` matrix of pairwise squared distances (the diagonal is ignored).

    What a blind Krum needs: the distances can be computed under encryption and only they decrypted.

    Raises:
        InvalidInputError: ``n <= 2f + 2``.
    """
    n = squared.shape[0]
    if n <= 2 * f + 2:
        raise InvalidInputError(f"Krum needs n > 2f + 2 clients; got n={n}, f={f}")
    dist = np.array(squared, dtype=np.float64)
    np.fill_diagonal(dist, np.inf)
    closest = np.sort(dist, axis=1)[:, : n - f - 2]
    return np.asarray(closest.sum(axis=1))


class MultiKrum(Strategy):
    """Average (unweighted) the ``m`` updates with the lowest Krum scores.

    Args:
        f: assumed number of Byzantine clients.
        m: how many to keep; ``None`` keeps ``n - f``.
    """

    name = "multi-krum"

    def __init__(self, f: int = 4, m: int | None = None) -> None:
        if f < 0 or (m is not None and m < 1):
            raise InvalidInputError(f"Krum needs f >= 0 and m >= 1; got f={f}, m={m}")
        self.f, self.m = f, m

    def _keep(self, n: int) -> int:
        return min(n, self.m if self.m is not None else n - self.f)

    def aggregate(self, server_round: int, updates: Sequence[ClientUpdate], rng: np.random.Generator) -> AggregateResult:
        matrix = stack(updates)
        scores = krum_scores(matrix, self.f)
        # stable argsort: ties go to the lower index, so a run is reproducible
        chosen = np.argsort(scores, kind="stable")[: self._keep(len(updates))]
        mask = np.zeros(len(updates), dtype=bool)
        mask[chosen] = True
        decisions = tuple(
            ClientDecision(u.client, ACCEPTED if keep else REJECTED, 1.0 / mask.sum() if keep else 0.0,
                           f"krum score {s:.4g}")
            for u, keep, s in zip(updates, mask, scores)
        )
        return AggregateResult(matrix[mask].mean(axis=0).astype(np.float32), decisions)


class Krum(MultiKrum):
    """Keep only the single update with the lowest Krum score."""

    name = "krum"

    def __init__(self, f: int = 4) -> None:
        super().__init__(f=f, m=1)
