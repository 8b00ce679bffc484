"""Coordinate-wise trimmed mean (Yin et al., 2018): per coordinate, drop the ``k`` largest and ``k`` smallest
values, average the rest. ``k = floor(beta * n)``.

A client's recorded weight is its share of the kept values over all coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qsafe.errors import InvalidInputError
from qsafe.federated.defenses.base import PARTIAL, AggregateResult, ClientDecision, ClientUpdate, Strategy, stack

__all__ = ["TrimmedMean", "trimmed_mean"]


def trimmed_mean(matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinate-wise mean after dropping the ``k`` smallest and ``k`` largest values of each coordinate.

    Args:
        matrix: ``(n, d)`` updates.
        k: values trimmed at each end.

    Returns:
        ``(mean, shares)``: the ``(d,)`` trimmed mean and the ``(n,)`` share of kept values per row (sums to 1).

    Raises:
        InvalidInputError: ``2k >= n``.
    """
    n, d = matrix.shape
    if not 0 <= 2 * k < n:
        raise InvalidInputError(f"cannot trim {k} values at each end of {n}")
    order = np.argsort(matrix, axis=0, kind="stable")
    kept = order[k : n - k, :]
    mean = np.take_along_axis(matrix, kept, axis=0).mean(axis=0)
    shares = np.bincount(kept.ravel(), minlength=n) / ((n - 2 * k) * d)
    return mean, shares


class TrimmedMean(Strategy):
    """Trimmed mean with ``k = floor(beta * n)`` values dropped at each end of every coordinate.

    Args:
        beta: trimmed fraction at each end, in ``[0, 0.5)``.
    """

    name = "trimmed-mean"

    def __init__(self, beta: float = 0.2) -> None:
        if not 0 <= beta < 0.5:
            raise InvalidInputError(f"trimmed-mean beta must be in [0, 0.5), got {beta}")
        self.beta = beta

    def aggregate(self, server_round: int, updates: Sequence[ClientUpdate], rng: np.random.Generator) -> AggregateResult:
        k = int(np.floor(self.beta * len(updates)))
        mean, shares = trimmed_mean(stack(updates), k)
        decisions = tuple(ClientDecision(u.client, PARTIAL, float(s), f"share of kept values (k={k})")
                          for u, s in zip(updates, shares))
        return AggregateResult(mean.astype(np.float32), decisions)
