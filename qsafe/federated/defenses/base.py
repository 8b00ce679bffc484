"""The one interface every defense implements (Flower-style strategy: one algorithm per module).

A strategy receives the round's client updates (flat float32 vectors, numpy only) and returns the aggregate
update plus one :class:`ClientDecision` per client, which the audit trail records: what was done to the client's
update (accepted, clipped, rejected, down-weighted, partly used) and the weight it ended up with.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ACCEPTED",
    "CLIPPED",
    "DOWN_WEIGHTED",
    "PARTIAL",
    "REJECTED",
    "AggregateResult",
    "ClientDecision",
    "ClientUpdate",
    "Strategy",
    "clip_factors",
    "norms",
    "stack",
]

ACCEPTED, CLIPPED, REJECTED, DOWN_WEIGHTED, PARTIAL = "accepted", "clipped", "rejected", "down-weighted", "partial"


@dataclass(frozen=True)
class ClientUpdate:
    """One client's contribution to a round.

    Attributes:
        client: the client's index.
        delta: its update (local model minus global model), flat float32.
        num_examples: the training-set size it reports (FedAvg's weight).
    """

    client: int
    delta: np.ndarray
    num_examples: int


@dataclass(frozen=True)
class ClientDecision:
    """What a strategy did with one client's update.

    Attributes:
        client: the client's index.
        decision: one of ``accepted``, ``clipped``, ``rejected``, ``down-weighted``, ``partial``.
        weight: the client's share of the aggregate (the weights of one round sum to 1, or 0 if all rejected).
        note: a short reason (e.g. the clip factor or the Krum score).
    """

    client: int
    decision: str
    weight: float
    note: str = ""


@dataclass(frozen=True)
class AggregateResult:
    """The aggregate update to add to the global model, and the per-client decisions."""

    delta: np.ndarray
    decisions: tuple[ClientDecision, ...]


class Strategy(ABC):
    """A robust-aggregation strategy. Subclasses set ``name`` and implement :meth:`aggregate`.

    ``norm_bound`` is the fixed L2 bound the strategy enforces, if it has one that does not depend on the round's
    updates; an adaptive attacker (``norm`` attack) scales its update just under it.
    """

    name: str = ""
    norm_bound: float | None = None

    @abstractmethod
    def aggregate(self, server_round: int, updates: Sequence[ClientUpdate], rng: np.random.Generator) -> AggregateResult:
        """Combine one round's updates.

        Args:
            server_round: the round number (1-based).
            updates: the clients' updates, all of the same length.
            rng: randomness for strategies that add noise.

        Returns:
            The aggregate update and one decision per update, in input order.
        """


def stack(updates: Sequence[ClientUpdate]) -> np.ndarray:
    """The updates as an ``(n, d)`` float64 matrix (float64 so distances and sums do not lose precision)."""
    return np.stack([u.delta for u in updates]).astype(np.float64)


def norms(matrix: np.ndarray) -> np.ndarray:
    """L2 norm of every row."""
    return np.asarray(np.linalg.norm(matrix, axis=1))


def clip_factors(row_norms: np.ndarray, bound: float) -> np.ndarray:
    """Per-row factor ``min(1, bound / norm)`` that brings every row's norm to at most ``bound``."""
    with np.errstate(divide="ignore"):
        return np.where(row_norms > bound, bound / np.maximum(row_norms, 1e-300), 1.0)
