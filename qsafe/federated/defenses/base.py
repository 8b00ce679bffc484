"""The one interface every defense implements (Flower-style strategy: one algorithm per module).

A strategy receives the round's client updates (flat float32 vectors, numpy only) and returns the aggregate
update plus one :class:`ClientDecision` per client, which the audit trail records: what was done to the client's
update (accepted, clipped, rejected, down-weighted, partly used) and the weight it ended up with.

A strategy that can also run *blind* (the aggregator sums HE-encrypted updates it cannot read) says how in
:meth:`Strategy.blind`; the encrypted simulation and any encrypted deployment ask the strategy, not a list of names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ACCEPTED",
    "BLIND_DEFAULT_BOUND",
    "CLIPPED",
    "DOWN_WEIGHTED",
    "PARTIAL",
    "REJECTED",
    "AggregateResult",
    "BlindAggregation",
    "ClientDecision",
    "ClientUpdate",
    "Strategy",
    "clip_factors",
    "norms",
    "stack",
]

ACCEPTED, CLIPPED, REJECTED, DOWN_WEIGHTED, PARTIAL = "accepted", "clipped", "rejected", "down-weighted", "partial"
# Blind, a norm bound cannot adapt to updates nobody sees: an adaptive strategy is fixed to this published bound.
BLIND_DEFAULT_BOUND = 0.5


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


@dataclass(frozen=True)
class BlindAggregation:
    """How a strategy aggregates updates the aggregator cannot read (HE-encrypted), using only what the protocol
    can compute blind: the encrypted sum and each update's encrypted squared norm (the key authority decrypts that
    one number, never an update).

    Attributes:
        norm_bound: None: a plain encrypted sum. Else clients clip to this bound before encrypting, the aggregator
            computes each update's norm from its ciphertexts and leaves updates above the bound out of the sum.
        noise_multiplier: sigma > 0: the key authority adds Gaussian noise of std ``sigma * norm_bound / n`` (n: the
            round's clients) to the decrypted mean (central DP, the key authority trusted for the noise).
        mean_over_all: divide the sum by every client of the round (DP's fixed sensitivity) rather than by the
            accepted ones.
        fixed_params: the strategy's own keyword parameters that running blind fixes (an adaptive bound becomes
            ``norm_bound``), so that the plaintext bookkeeping and an adaptive attacker see the same strategy.
    """

    norm_bound: float | None = None
    noise_multiplier: float = 0.0
    mean_over_all: bool = False
    fixed_params: dict[str, Any] = field(default_factory=dict)


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

    def blind(self) -> BlindAggregation | None:
        """How this strategy runs on encrypted updates, or None (the default) when it must read each update
        (distances, medians, clustering). ``qsafe fl simulate --encrypt`` runs only strategies that return one."""
        return None


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
