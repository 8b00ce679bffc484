"""Coordinate-wise median (Yin et al., 2018): every coordinate of the aggregate is the median of the clients'.

A client's recorded weight is the share of coordinates where its value was (one of) the median: a client whose
values are always extreme gets weight near 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qsafe.federated.defenses.base import PARTIAL, AggregateResult, ClientDecision, ClientUpdate, Strategy, stack

__all__ = ["Median", "coordinate_median"]


def coordinate_median(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinate-wise median and each row's share in it.

    Args:
        matrix: ``(n, d)`` updates.

    Returns:
        ``(median, shares)``: the ``(d,)`` median (mean of the two middle values when n is even) and ``(n,)``
        shares that sum to 1.
    """
    n, d = matrix.shape
    order = np.argsort(matrix, axis=0, kind="stable")
    middle = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
    picked = order[middle, :]  # (1 or 2, d) row indices of the middle values
    median = np.take_along_axis(matrix, picked, axis=0).mean(axis=0)
    shares = np.bincount(picked.ravel(), minlength=n) / (len(middle) * d)
    return median, shares


class Median(Strategy):
    """Coordinate-wise median; example counts are ignored (they could be inflated by an attacker)."""

    name = "median"

    def aggregate(self, server_round: int, updates: Sequence[ClientUpdate], rng: np.random.Generator) -> AggregateResult:
        median, shares = coordinate_median(stack(updates))
        decisions = tuple(ClientDecision(u.client, PARTIAL, float(s), "share of median coordinates")
                          for u, s in zip(updates, shares))
        return AggregateResult(median.astype(np.float32), decisions)
