"""Randomized smoothing: Clopper-Pearson bound, radius, abstention, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qsafe.errors import UsageError
from qsafe.robustness import smoothing as S

torch = pytest.importorskip("torch")


class Constant(torch.nn.Module):
    """Always class ``k``: pA = 1, so the bound is alpha ** (1/n) exactly."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x):
        out = torch.zeros(len(x), 10)
        out[:, self.k] = 1.0
        return out


class CoinFlip(torch.nn.Module):
    """Class 0 or 1 depending on the sign of the noise in one pixel: a 50/50 smoothed vote."""

    def forward(self, x):
        out = torch.zeros(len(x), 10)
        out[torch.arange(len(x)), (x.flatten(1)[:, 0] > 0).long()] = 1.0
        return out


def test_clopper_pearson_and_radius() -> None:
    cert = S.certify(Constant(3), torch.zeros(1, 8, 8), 0.5, n0=10, n=1000, alpha=0.001)
    from scipy.stats import norm

    assert cert.label == 3
    assert math.isclose(cert.p_lower, 0.001 ** (1 / 1000), rel_tol=1e-9)
    assert math.isclose(cert.radius, 0.5 * norm.ppf(0.001 ** (1 / 1000)), rel_tol=1e-9)
    # a known two-sided case: 80 of 100, one-sided 95% lower bound (beta quantile)
    assert math.isclose(S._lower_bound(80, 100, 0.05), 0.7228, abs_tol=2e-4)


def test_abstains_on_a_coin_flip() -> None:
    g = torch.Generator()
    g.manual_seed(0)
    assert S.certify(CoinFlip(), torch.zeros(1, 8, 8), 0.25, n0=50, n=400, gen=g).label == S.ABSTAIN
    assert S.predict(CoinFlip(), torch.zeros(1, 8, 8), 0.25, n=400, gen=g) == S.ABSTAIN
    assert S.predict(Constant(7), torch.zeros(1, 8, 8), 0.25, n=100, gen=g) == 7


def test_certified_accuracy_counts_abstain_as_wrong() -> None:
    certs = [S.Certificate(1, 0.6, 0.99), S.Certificate(S.ABSTAIN, 0.0, 0.4), S.Certificate(2, 0.3, 0.9)]
    y = np.array([1, 1, 2])
    assert S.certified_accuracy(certs, y, 0.0) == pytest.approx(2 / 3)
    assert S.certified_accuracy(certs, y, 0.5) == pytest.approx(1 / 3)


def test_deterministic_under_seed(small_model, digits_split) -> None:
    _, te = digits_split
    a = S.certify_dataset(small_model, te.x[:5], te.y[:5], 0.25, n0=20, n=200, seed=4)
    b = S.certify_dataset(small_model, te.x[:5], te.y[:5], 0.25, n0=20, n=200, seed=4)
    assert a == b


def test_bad_parameters() -> None:
    with pytest.raises(UsageError):
        S.certify(Constant(0), torch.zeros(1, 8, 8), 0.0)
    with pytest.raises(UsageError):
        S.predict(Constant(0), torch.zeros(1, 8, 8), 0.25, alpha=1.5)
