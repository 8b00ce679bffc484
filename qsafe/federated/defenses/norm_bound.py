"""Norm bounding (Sun et al., 2019, "Can you really backdoor federated learning?").

Every update is scaled down to an L2 norm of at most ``bound``, then FedAvg. A fixed ``bound`` is what the paper
studies (and what an attacker can aim just under); without one, the bound adapts to the median norm of the round,
which an attacker cannot move while it controls fewer than half of the clients.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qsafe.errors import InvalidInputError
from qsafe.federated.defenses.base import (
    ACCEPTED,
    BLIND_DEFAULT_BOUND,
    CLIPPED,
    AggregateResult,
    BlindAggregation,
    ClientDecision,
    ClientUpdate,
    Strategy,
    clip_factors,
    norms,
    stack,
)
from qsafe.federated.defenses.fedavg import weighted_mean

__all__ = ["NormBound"]


class NormBound(Strategy):
    """Clip every update to ``bound`` (or to the round's median norm), then example-weighted mean.

    Args:
        bound: fixed L2 bound, or None for the round's median norm.
    """

    name = "norm-bound"

    def __init__(self, bound: float | None = None) -> None:
        if bound is not None and not bound > 0:
            raise InvalidInputError(f"the norm bound must be > 0, got {bound}")
        self.norm_bound = bound

    def aggregate(self, server_round: int, updates: Sequence[ClientUpdate], rng: np.random.Generator) -> AggregateResult:
        matrix = stack(updates)
        row_norms = norms(matrix)
        bound = self.norm_bound if self.norm_bound is not None else float(np.median(row_norms))
        factors = clip_factors(row_norms, bound)
        mean, weights = weighted_mean(updates, matrix, factors)
        decisions = tuple(
            ClientDecision(u.client, CLIPPED if f < 1 else ACCEPTED, float(w * f / (weights * factors).sum()),
                           f"norm {n:.4g} bound {bound:.4g}")
            for u, w, f, n in zip(updates, weights, factors, row_norms)
        )
        return AggregateResult(mean.astype(np.float32), decisions)

    def blind(self) -> BlindAggregation:
        """Blind: every client is told the bound and clips to it; the aggregator checks each update's encrypted norm
        and leaves those above it out of the sum. A round-median bound needs the updates, so blind the bound is
        fixed (to :data:`BLIND_DEFAULT_BOUND` unless one was given) and published."""
        bound = self.norm_bound if self.norm_bound is not None else BLIND_DEFAULT_BOUND
        return BlindAggregation(norm_bound=bound, fixed_params={"bound": bound})
