"""Central differential privacy as a wrapper around a strategy (Flower's server-side fixed clipping).

Every update is clipped to the fixed L2 norm ``C``, the inner strategy averages them **with equal weights**
(reported example counts are ignored: they would change the sensitivity), and Gaussian noise of standard deviation
``sigma * C / n`` is added to the average, ``n`` the number of clients of the round.

What is guaranteed, and what is not:

- With FedAvg inside, adding or removing one client's update changes the sum by at most ``C`` (the mean by
  ``C / n`` for a fixed ``n``), so each round is the Gaussian mechanism with noise multiplier ``sigma``:
  ``rho = 1 / (2 sigma^2)``-zCDP, and ``T`` rounds compose. :func:`privacy_spent` asks Google's ``dp-accounting``
  (Rényi DP and PLD accountants) for ``(epsilon, delta)``, with Poisson sampling of clients when not every client
  takes part in every round. This is **client-level** DP of the sequence of released global models, against anyone
  who sees them.
- The simulation samples no clients (every client, every round: sampling rate 1). No privacy against the aggregator itself,
  which sees the clipped updates before noise (central DP: the server is trusted). Floating-point noise from
  numpy's generator is not a cryptographically sound sampler (Mironov 2012): this is a simulation.
- Another inner strategy (median, Krum, ...) has a different sensitivity; the accounting then does not apply,
  and :attr:`DifferentialPrivacy.accounting_applies` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qsafe.errors import InvalidInputError, MissingDependencyError
from qsafe.federated.defenses.base import (
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
from qsafe.federated.defenses.fedavg import FedAvg

__all__ = ["DifferentialPrivacy", "PrivacySpent", "privacy_spent"]


@dataclass(frozen=True)
class PrivacySpent:
    """``(epsilon, delta)`` after some rounds of the (sub-sampled) Gaussian mechanism, and how it was obtained.

    Attributes:
        epsilon: the smallest epsilon the accountants prove at ``delta``.
        delta: the target delta.
        rounds: released rounds.
        noise_multiplier: sigma.
        sampling_rate: the Poisson sampling rate of clients per round (1.0: every client in every round).
        rho_zcdp: zCDP parameter of the composition without sampling (None with sampling).
        method: which accountant gave ``epsilon`` (Google's ``dp-accounting``: RDP or PLD).
        epsilons: every accountant's epsilon (``rdp``, and ``pld`` where it was run).
    """

    epsilon: float
    delta: float
    rounds: int
    noise_multiplier: float
    rho_zcdp: float | None
    method: str
    sampling_rate: float = 1.0
    epsilons: dict[str, float] | None = None


# PLD accounting is tight but its cost grows as sigma shrinks (22 s at sigma 0.1 here); below this sigma the
# epsilon is in the hundreds anyway and RDP alone is reported.
_PLD_MIN_SIGMA = 0.3


def _event(noise_multiplier: float, rounds: int, sampling_rate: float) -> Any:
    import dp_accounting

    step = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sampling_rate < 1.0:
        step = dp_accounting.PoissonSampledDpEvent(sampling_rate, step)
    return dp_accounting.SelfComposedDpEvent(step, rounds)


def privacy_spent(noise_multiplier: float, rounds: int, delta: float = 1e-5, *,
                  sampling_rate: float = 1.0) -> PrivacySpent:
    """Client-level ``(epsilon, delta)`` of ``rounds`` Gaussian-mechanism rounds, by Google's ``dp-accounting``.

    The Rényi-DP accountant always runs; the privacy-loss-distribution (PLD) accountant too when sigma >= 0.3;
    the smaller epsilon is reported (both are valid upper bounds) and ``method`` names it.

    Args:
        noise_multiplier: noise standard deviation divided by the clip norm (sigma).
        rounds: number of released rounds.
        delta: target delta.
        sampling_rate: probability that a client takes part in a round (Poisson sampling; 1.0 = all, always).
            With sampling, the mean must divide by the expected number of clients for the bound to hold.

    Returns:
        The accounting.

    Raises:
        InvalidInputError: sigma, rounds, delta or the sampling rate out of range.
        MissingDependencyError: ``dp-accounting`` is not installed.
    """
    if not (noise_multiplier > 0 and rounds >= 1 and 0 < delta < 1 and 0 < sampling_rate <= 1):
        raise InvalidInputError("privacy accounting needs sigma > 0, rounds >= 1, 0 < delta < 1 and a sampling "
                                "rate in (0, 1]")
    try:
        import logging

        from dp_accounting.pld import pld_privacy_accountant
        from dp_accounting.rdp import rdp_privacy_accountant
    except ImportError as exc:  # pragma: no cover - part of the dev install
        raise MissingDependencyError("privacy accounting needs dp-accounting", hint="pip install dp-accounting") \
            from exc
    logging.getLogger("absl").setLevel(logging.ERROR)  # its RDP warns about orders it skips, not about results
    event = _event(noise_multiplier, rounds, sampling_rate)
    rdp = rdp_privacy_accountant.RdpAccountant()
    rdp.compose(event)
    epsilons = {"rdp": float(rdp.get_epsilon(delta))}
    if noise_multiplier >= _PLD_MIN_SIGMA:
        pld = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-3)
        pld.compose(event)
        epsilons["pld"] = float(pld.get_epsilon(delta))
    best = min(epsilons, key=lambda k: epsilons[k])
    method = {"rdp": "Rényi DP accountant", "pld": "PLD accountant"}[best] + " (dp-accounting)"
    rho = rounds / (2 * noise_multiplier**2) if sampling_rate == 1.0 else None
    return PrivacySpent(epsilons[best], delta, rounds, noise_multiplier, rho, method, sampling_rate, epsilons)


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

    def blind(self) -> BlindAggregation | None:
        """Blind (around FedAvg only): the encrypted norm check against ``clip_norm``, the sum divided by every
        client, then the key authority adds the Gaussian noise to the decrypted mean."""
        if not self.accounting_applies:
            return None  # another inner strategy: no blind form is defined
        assert self.norm_bound is not None
        return BlindAggregation(norm_bound=self.norm_bound, noise_multiplier=self.noise_multiplier, mean_over_all=True)
