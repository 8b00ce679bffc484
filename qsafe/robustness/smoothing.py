"""Randomized smoothing (Cohen, Rosenfeld & Kolter 2019): certified L2 robustness of a smoothed classifier.

The smoothed classifier g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c). ``certify`` follows CERTIFY: guess the top
class from ``n0`` noisy samples, count it in ``n`` fresh samples, take the one-sided (1 - alpha) Clopper-Pearson
lower bound pA on its probability; abstain when pA <= 1/2, else certify radius sigma * Phi^-1(pA). ``predict``
follows PREDICT: abstain unless a two-sided binomial test says the top class beats the runner-up at level alpha.

What it certifies: for that input, no L2 perturbation of norm < radius changes g's prediction, with probability
at least 1 - alpha over the sampling. Nothing about L-inf beyond radius / sqrt(d), nothing about the base
classifier f, and nothing when it abstains. Noise is added without clipping to [0, 1], as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from qsafe.errors import UsageError
from qsafe.robustness._torch import torch

__all__ = ["ABSTAIN", "Certificate", "certified_accuracy", "certify", "certify_dataset", "predict"]

ABSTAIN = -1


@dataclass(frozen=True)
class Certificate:
    """CERTIFY's answer for one input: the class (``ABSTAIN`` = -1), the radius and the lower bound pA."""

    label: int
    radius: float
    p_lower: float


def _counts(model: Any, x: Any, sigma: float, num: int, batch: int, gen: Any, classes: int = 10) -> np.ndarray:
    t = torch()
    counts = np.zeros(classes, dtype=np.int64)
    remaining = num
    with t.no_grad():
        while remaining > 0:
            size = min(batch, remaining)
            xs = x.unsqueeze(0).expand(size, *x.shape)
            noisy = xs + sigma * t.randn(xs.shape, generator=gen)
            pred = model(noisy).argmax(1).numpy()
            counts += np.bincount(pred, minlength=classes)
            remaining -= size
    return counts


def _lower_bound(successes: int, trials: int, alpha: float) -> float:
    from scipy.stats import beta

    return 0.0 if successes == 0 else float(beta.ppf(alpha, successes, trials - successes + 1))


def _validate(sigma: float, n: int, alpha: float) -> None:
    if not sigma > 0 or n < 1 or not 0 < alpha < 1:
        raise UsageError("sigma must be > 0, the sample count >= 1 and alpha in (0, 1)")


def certify(model: Any, x: Any, sigma: float, *, n0: int = 100, n: int = 10_000, alpha: float = 0.001,
            batch: int = 1000, gen: Any = None) -> Certificate:
    """CERTIFY for one input ``x`` (shape of one sample).

    Returns:
        The :class:`Certificate` (label ``ABSTAIN`` with radius 0 when pA <= 1/2).
    """
    from scipy.stats import norm

    _validate(sigma, n, alpha)
    guess = int(_counts(model, x, sigma, n0, batch, gen).argmax())
    counts = _counts(model, x, sigma, n, batch, gen)
    p_lower = _lower_bound(int(counts[guess]), n, alpha)
    if p_lower <= 0.5:
        return Certificate(ABSTAIN, 0.0, p_lower)
    return Certificate(guess, float(sigma * norm.ppf(p_lower)), p_lower)


def predict(model: Any, x: Any, sigma: float, *, n: int = 1000, alpha: float = 0.001, batch: int = 1000,
            gen: Any = None) -> int:
    """PREDICT for one input: the smoothed class, or ``ABSTAIN`` when the top two are not separated at alpha."""
    from scipy.stats import binomtest

    _validate(sigma, n, alpha)
    counts = _counts(model, x, sigma, n, batch, gen)
    order = np.argsort(counts)[::-1]
    top, second = int(counts[order[0]]), int(counts[order[1]])
    if binomtest(top, top + second, 0.5).pvalue > alpha:
        return ABSTAIN
    return int(order[0])


def certify_dataset(model: Any, x: np.ndarray, y: np.ndarray, sigma: float, *, n0: int = 100, n: int = 10_000,
                    alpha: float = 0.001, batch: int = 1000, seed: int = 0,
                    progress: Callable[[int, int], None] | None = None) -> list[Certificate]:
    """CERTIFY every input of ``x`` (deterministic under ``seed``)."""
    t = torch()
    gen = t.Generator()
    gen.manual_seed(seed)
    out = []
    xt = t.from_numpy(np.ascontiguousarray(x))
    for i in range(len(xt)):
        out.append(certify(model, xt[i], sigma, n0=n0, n=n, alpha=alpha, batch=batch, gen=gen))
        if progress is not None:
            progress(i + 1, len(xt))
    return out


def certified_accuracy(certs: list[Certificate], y: np.ndarray, radius: float) -> float:
    """Fraction of inputs certified correct at L2 radius >= ``radius`` (abstentions count as wrong)."""
    ok = [c.label == int(label) and c.radius >= radius for c, label in zip(certs, y)]
    return float(np.mean(ok)) if ok else 0.0
