"""FedAvg (McMahan et al., 2017): the example-weighted mean. The undefended baseline (``--defense none``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qsafe.federated.defenses.base import (
    ACCEPTED,
    AggregateResult,
    BlindAggregation,
    ClientDecision,
    ClientUpdate,
    Strategy,
    stack,
)

__all__ = ["FedAvg", "weighted_mean"]


def weighted_mean(updates: Sequence[ClientUpdate], matrix: np.ndarray, scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Example-weighted mean of ``matrix``'s rows, each row first multiplied by ``scale``.

    Returns:
        ``(mean, weights)``; the weights sum to 1.
    """
    weights = np.array([u.num_examples for u in updates], dtype=np.float64)
    weights /= weights.sum()
    factors = np.ones(len(updates)) if scale is None else scale
    return (weights * factors) @ matrix, weights


class FedAvg(Strategy):
    """Plain federated averaging: every update is accepted with weight ``n_i / sum(n)``."""

    name = "none"

    def aggregate(self, server_round: int, updates: Sequence[ClientUpdate], rng: np.random.Generator) -> AggregateResult:
        mean, weights = weighted_mean(updates, stack(updates))
        decisions = tuple(ClientDecision(u.client, ACCEPTED, float(w)) for u, w in zip(updates, weights))
        return AggregateResult(mean.astype(np.float32), decisions)

    def blind(self) -> BlindAggregation:
        """Blind: an encrypted sum of every update, divided by their count (unweighted: the weights are not
        signed)."""
        return BlindAggregation()
