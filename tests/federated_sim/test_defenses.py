"""Defenses' math against small cases computed by hand (the derivations are in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qsafe.errors import InvalidInputError, UsageError
from qsafe.federated.defenses import (
    DEFENSES,
    ClientUpdate,
    DifferentialPrivacy,
    FedAvg,
    Flame,
    FoolsGold,
    Krum,
    Median,
    MultiKrum,
    NormBound,
    TrimmedMean,
    make_strategy,
    privacy_spent,
)
from qsafe.federated.defenses.flame import majority_cluster
from qsafe.federated.defenses.foolsgold import foolsgold_weights
from qsafe.federated.defenses.krum import krum_scores

RNG = np.random.default_rng(0)


def ups(rows: list[list[float]], sizes: list[int] | None = None) -> list[ClientUpdate]:
    sizes = sizes or [1] * len(rows)
    return [ClientUpdate(i, np.array(r, dtype=np.float32), n) for i, (r, n) in enumerate(zip(rows, sizes))]


# Krum, n=5, f=1: each score sums the n-f-2 = 2 smallest squared distances to the others.
#   p0 (0,0): d^2 to p1..p4 = 1, 4, 2, 200  -> 1+2 = 3
#   p1 (1,0): 1, 5, 1, 181                  -> 1+1 = 2
#   p2 (0,2): 4, 5, 2, 164                  -> 2+4 = 6
#   p3 (1,1): 2, 1, 2, 162                  -> 1+2 = 3
#   p4 (10,10): 200, 181, 164, 162          -> 162+164 = 326
KRUM_POINTS = [[0, 0], [1, 0], [0, 2], [1, 1], [10, 10]]


def test_krum_scores_by_hand() -> None:
    assert krum_scores(np.array(KRUM_POINTS, dtype=float), f=1) == pytest.approx([3, 2, 6, 3, 326])


def test_krum_chooses_the_most_central_update() -> None:
    result = Krum(f=1).aggregate(1, ups(KRUM_POINTS), RNG)
    assert result.delta.tolist() == [1.0, 0.0]
    assert [d.decision for d in result.decisions] == ["rejected", "accepted", "rejected", "rejected", "rejected"]
    assert [d.weight for d in result.decisions] == [0, 1, 0, 0, 0]


def test_multi_krum_averages_the_n_minus_f_best() -> None:
    # keeps p1, p0, p3, p2 (scores 2, 3, 3, 6) and drops p4: mean of (0,0),(1,0),(0,2),(1,1) = (0.5, 0.75)
    result = MultiKrum(f=1).aggregate(1, ups(KRUM_POINTS), RNG)
    assert result.delta.tolist() == [0.5, 0.75]
    assert [d.decision for d in result.decisions][-1] == "rejected"
    assert [d.weight for d in result.decisions] == [0.25, 0.25, 0.25, 0.25, 0.0]


def test_krum_refuses_too_few_clients() -> None:
    with pytest.raises(InvalidInputError, match="n > 2f"):
        Krum(f=2).aggregate(1, ups([[0], [1], [2], [3], [4], [5]]), RNG)


def test_median_odd_and_even() -> None:
    # columns: (1, 2, 10) -> 2 from row 1; (5, -1, 0) -> 0 from row 2
    result = Median().aggregate(1, ups([[1, 5], [2, -1], [10, 0]]), RNG)
    assert result.delta.tolist() == [2.0, 0.0]
    assert [d.weight for d in result.decisions] == [0.0, 0.5, 0.5]
    even = Median().aggregate(1, ups([[1], [2], [3], [100]]), RNG)
    assert even.delta.tolist() == [2.5]
    assert [d.weight for d in even.decisions] == [0.0, 0.5, 0.5, 0.0]


def test_trimmed_mean_drops_both_ends() -> None:
    # beta 0.2 of n=5 -> k=1: drop -50 and 100, mean of 1, 2, 3 = 2
    result = TrimmedMean(beta=0.2).aggregate(1, ups([[1], [2], [3], [100], [-50]]), RNG)
    assert result.delta.tolist() == [2.0]
    assert [round(d.weight, 6) for d in result.decisions] == [round(1 / 3, 6)] * 3 + [0.0, 0.0]
    with pytest.raises(InvalidInputError):
        TrimmedMean(beta=0.5)


def test_norm_bound_clips_then_averages() -> None:
    # (3,4) has norm 5 -> scaled by 2/5 to (1.2, 1.6); (0,1) is under the bound; mean = (0.6, 1.3)
    result = NormBound(bound=2.0).aggregate(1, ups([[3, 4], [0, 1]]), RNG)
    assert result.delta.tolist() == pytest.approx([0.6, 1.3])
    assert [d.decision for d in result.decisions] == ["clipped", "accepted"]
    # adaptive: the bound is the median norm (here 3 of norms 1, 3, 5)
    adaptive = NormBound().aggregate(1, ups([[0, 1], [0, 3], [0, 5]]), RNG)
    assert adaptive.delta.tolist() == pytest.approx([0, (1 + 3 + 3) / 3])


def test_fedavg_weights_by_examples() -> None:
    result = FedAvg().aggregate(1, ups([[0.0], [4.0]], sizes=[3, 1]), RNG)
    assert result.delta.tolist() == [1.0]
    assert [d.weight for d in result.decisions] == [0.75, 0.25]


def test_foolsgold_zeroes_identical_sybils() -> None:
    # unit histories (1,0), (1,0), (0,1), (-1,1)/sqrt2. Max similarities 1, 1, .7071, .7071; pardoning only
    # lowers negative entries of rows 2 and 3. 1 - max: 0, 0, .2929, .2929 -> /max: 0, 0, 1, 1 -> 1 -> .99 ->
    # logit(.99) + .5 = 5.09 -> clipped to 1; logit(0) = -inf -> 0.
    weights = foolsgold_weights(np.array([[1, 0], [1, 0], [0, 1], [-1, 1]], dtype=float))
    assert weights.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_foolsgold_intermediate_weight_by_hand() -> None:
    # histories (1,0), (cos40, sin40), (0,1): cs01 = c, cs12 = s, cs02 = 0; max sims c, c, s with s < c, so
    # row 2 is pardoned: cs21 = s*s/c. 1 - max: 1-c, 1-c, 1 - s^2/c; divide by the largest (the third);
    # w = (1-c) / (1 - s^2/c) and the logit step gives ln(w / (1-w)) + 0.5.
    c, s = math.cos(math.radians(40)), math.sin(math.radians(40))
    w = (1 - c) / (1 - s * s / c)
    expected = math.log(w / (1 - w)) + 0.5
    weights = foolsgold_weights(np.array([[1, 0], [c, s], [0, 1]], dtype=float))
    assert weights.tolist() == pytest.approx([expected, expected, 1.0])
    assert 0.5 < expected < 0.6


def test_foolsgold_keeps_history_across_rounds() -> None:
    fg = FoolsGold()
    fg.aggregate(1, ups([[1, 0], [1, 0], [0, 1]]), RNG)
    second = fg.aggregate(2, ups([[0, 1], [0, 1], [0, 1]]), RNG)
    # histories now (1,1), (1,1), (0,2): the two identical ones are zeroed although round 2 alone looks uniform
    assert [d.weight for d in second.decisions] == [0.0, 0.0, 1.0]


def test_flame_majority_cluster() -> None:
    points = np.array([[1, 0.0], [1, 0.1], [1, -0.1], [0, 1], [-1, 0.2]])
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    assert majority_cluster(1 - unit @ unit.T).tolist() == [True, True, True, False, False]


def test_flame_rejects_outliers_and_clips_to_median() -> None:
    rows = [[1, 0], [2, 0.1], [3, -0.1], [0, 50], [-40, 1]]
    result = Flame(noise_lambda=0).aggregate(1, ups(rows), RNG)
    # median norm is 3.0017 (norms 1, 2.0025, 3.0017, 50, 40.01); the three kept rows are under it
    assert [d.decision for d in result.decisions] == ["accepted"] * 3 + ["rejected"] * 2
    assert result.delta.tolist() == pytest.approx([2, 0], abs=1e-6)


def test_dp_clips_and_adds_calibrated_noise() -> None:
    quiet = DifferentialPrivacy(clip_norm=1.0, noise_multiplier=0.0).aggregate(1, ups([[3, 4], [0, 0.5]], [9, 1]), RNG)
    # equal weights whatever the sizes: ((0.6, 0.8) + (0, 0.5)) / 2
    assert quiet.delta.tolist() == pytest.approx([0.3, 0.65])
    noisy = DifferentialPrivacy(clip_norm=1.0, noise_multiplier=2.0)
    samples = np.stack([noisy.aggregate(1, ups([[0.0] * 2000] * 4), np.random.default_rng(i)).delta for i in range(3)])
    assert samples.std() == pytest.approx(2.0 * 1.0 / 4, rel=0.05)  # sigma * C / n


def test_privacy_accounting() -> None:
    # zCDP: rho = T / (2 sigma^2); eps <= rho + 2 sqrt(rho ln(1/delta))
    one = privacy_spent(1.0, 1, 1e-5)
    assert one.rho_zcdp == 0.5
    assert 3.0 < one.epsilon <= 0.5 + 2 * math.sqrt(0.5 * math.log(1e5)) + 1e-9
    assert privacy_spent(1.0, 30).epsilon > one.epsilon > privacy_spent(4.0, 1).epsilon
    with pytest.raises(InvalidInputError):
        privacy_spent(0.0, 1)


def test_registry_names_every_defense() -> None:
    assert DEFENSES == ("none", "norm-bound", "krum", "multi-krum", "median", "trimmed-mean", "foolsgold", "dp", "flame")
    assert all(make_strategy(name).name == name for name in DEFENSES)
    with pytest.raises(UsageError, match="unknown defense"):
        make_strategy("magic")
    with pytest.raises(UsageError):
        make_strategy("krum", nonsense=1)


def _exact_gaussian_epsilon(sigma: float, rounds: int, delta: float) -> float:
    """The exact epsilon of T Gaussian-mechanism rounds (= one with sigma / sqrt(T); Balle & Wang 2018)."""
    import math

    s = sigma / math.sqrt(rounds)

    def delta_of(eps: float) -> float:
        phi = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))
        return phi(-eps * s + 1 / (2 * s)) - math.exp(eps) * phi(-eps * s - 1 / (2 * s))

    lo, hi = 0.0, 1000.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if delta_of(mid) > delta else (lo, mid)
    return hi


@pytest.mark.parametrize("sigma,rounds", [(1.0, 30), (2.0, 100), (0.8, 5)])
def test_privacy_accounting_by_dp_accounting_is_close_to_the_exact_gaussian_epsilon(sigma: float,
                                                                                    rounds: int) -> None:
    spent = privacy_spent(sigma, rounds, 1e-5)
    exact = _exact_gaussian_epsilon(sigma, rounds, 1e-5)
    assert set(spent.epsilons or {}) == {"rdp", "pld"} and "dp-accounting" in spent.method
    assert exact <= spent.epsilon <= exact * 1.03  # a valid upper bound, and tight (PLD)
    assert spent.epsilons is not None and spent.epsilons["rdp"] >= spent.epsilon


def test_client_sampling_amplifies_privacy() -> None:
    full = privacy_spent(1.0, 100, 1e-5)
    sampled = privacy_spent(1.0, 100, 1e-5, sampling_rate=0.1)
    assert sampled.sampling_rate == 0.1 and sampled.rho_zcdp is None
    assert sampled.epsilon < full.epsilon / 5
    with pytest.raises(InvalidInputError):
        privacy_spent(1.0, 10, sampling_rate=0.0)
