"""Central differential privacy as a wrapper around a strategy (Flower's server-side fixed clipping).

Every update is clipped to the fixed L2 norm ``C``, the inner strategy averages them **with equal weights**
(reported example counts are ignored: they would change the sensitivity), and Gaussian noise of standard deviation
``sigma * C / n`` is added to the average, ``n`` the number of clients of the round.

What is guaranteed, and what is not:

- With FedAvg inside, adding or removing one client's update changes the sum by at most ``C`` (the mean by
  ``C / n`` for a fixed ``n``), so each round is the Gaussian mechanism with noise multiplier ``sigma``:
  ``rho = 1 / (2 sigma^2)``-zCDP, and ``T`` rounds compose to ``rho T``. :func:`privacy_spent` converts this to
  ``(epsilon, delta)`` both through zCDP and through Rényi DP and returns the tighter. This is **client-level**
  DP of the sequence of released global models, against anyone who sees them.
- No sampling amplification: every client takes part in every round. No privacy against the aggregator itself,
  which sees the clipped updates before noise (central DP: the server is trusted). Floating-point noise from
  numpy's generator is not a cryptographically sound sampler (Mironov 2012): this is a simulation.
- Another inner strategy (median, Krum, ...) has a different sensitivity; the accounting then does not apply,
  and :attr:`DifferentialPrivacy.accounting_applies` says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qsafe.errors import InvalidInputError
from qsafe.federated.defenses.base import (
    CLIPPED,
    AggregateResult,
    ClientDecision,
    ClientUpdate,
    Strategy,
    clip_factors,
    norms,
    stack,
)
from qsafe.federated.defenses.fedavg import FedAvg

__all__ = ["DifferentialPrivacy", "PrivacySpent", "privacy_spent"]


@dataclass(frozen=True)
class PrivacySpent:
    """``(epsilon, delta)`` after some rounds of the Gaussian mechanism, and how it was obtained."""

    epsilon: float
    delta: float
    rounds: int
    noise_multiplier: float
    rho_zcdp: float
    method: str


def _rdp_epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    # Rényi DP of the Gaussian mechanism: alpha / (2 sigma^2) per round; converted with Canonne-Kamath-Steinke
    # (2020, Prop. 12): eps = rdp + log((a-1)/a) - (log delta + log a) / (a-1), minimised over a grid of orders.
    best = math.inf
    for alpha in [1.0 + x / 10 for x in range(1, 100)] + list(range(11, 257)) + [512.0, 1024.0, 4096.0]:
        rdp = alpha * rounds / (2 * noise_multiplier**2)
        eps = rdp + math.log((alpha - 1) / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)
        best = min(best, eps)
    return max(best, 0.0)


def privacy_spent(noise_multiplier: float, rounds: int, delta: float = 1e-5) -> PrivacySpent:
    """Client-level ``(epsilon, delta)`` of ``rounds`` Gaussian-mechanism rounds with full participation.

    Args:
        noise_multiplier: noise standard deviation divided by the clip norm (sigma).
        rounds: number of released rounds.
        delta: target delta.

    Returns:
        The tighter of the zCDP conversion ``rho + 2 sqrt(rho ln(1/delta))`` and the Rényi-DP conversion.

    Raises:
        InvalidInputError: sigma, rounds or delta out of range.
    """
    if not (noise_multiplier > 0 and rounds >= 1 and 0 < delta < 1):
        raise InvalidInputError("privacy accounting needs sigma > 0, rounds >= 1 and 0 < delta < 1")
    rho = rounds / (2 * noise_multiplier**2)
    zcdp = rho + 2 * math.sqrt(rho * math.log(1 / delta))
    rdp = _rdp_epsilon(noise_multiplier, rounds, delta)
    method = "Rényi DP (CKS20 conversion)" if rdp < zcdp else "zCDP (BS16 conversion)"
    return PrivacySpent(min(rdp, zcdp), delta, rounds, noise_multiplier, rho, method)


class DifferentialPrivacy(Strategy):
    """Clip to ``clip_norm``, aggregate with ``inner`` at equal weights, add Gaussian noise to the result.

    Args:
        inner: the wrapped strategy (FedAvg unless given; the accounting holds for FedAvg only).
        clip_norm: the fixed L2 bound ``C`` (fixed, not adaptive: an adaptive bound would leak).
        noise_multiplier: sigma; the noise standard deviation on the mean is ``sigma * C / n``.
    """

    name = "dp"

    def __init__(self, inner: Strategy | None = None, *, clip_norm: float = 1.0, noise_multiplier: float = 0.1) -> None:
        if not (clip_norm > 0 and noise_multiplier >= 0):
            raise InvalidInputError("dp needs clip_norm > 0 and noise_multiplier >= 0")
        self.inner = inner if inner is not None else FedAvg()
        self.norm_bound = clip_norm
        self.noise_multiplier = noise_multiplier

    @property
    def accounting_applies(self) -> bool:
        """True when the inner strategy is the plain mean the sensitivity argument assumes."""
        return type(self.inner) is FedAvg

    def aggregate(self, server_round: int, updates: Sequence[ClientUpdate], rng: np.random.Generator) -> AggregateResult:
        assert self.norm_bound is not None
        matrix = stack(updates)
        factors = clip_factors(norms(matrix), self.norm_bound)
        clipped = [ClientUpdate(u.client, (row * f).astype(np.float32), 1) for u, row, f in zip(updates, matrix, factors)]
        inner = self.inner.aggregate(server_round, clipped, rng)
        std = self.noise_multiplier * self.norm_bound / len(updates)
        noisy = inner.delta.astype(np.float64) + rng.normal(0.0, std, size=inner.delta.shape)
        decisions = tuple(
            ClientDecision(d.client, CLIPPED if f < 1 else d.decision, d.weight, f"clip factor {f:.4g}; {d.note}".rstrip("; "))
            for d, f in zip(inner.decisions, factors)
        )
        return AggregateResult(noisy.astype(np.float32), decisions)
