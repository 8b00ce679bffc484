"""Membership inference: metrics, the DP bound, and an audit that sees an over-fit model's leak."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qsafe.errors import InvalidInputError
from qsafe.fraud.privacy import attack_metrics, dp_advantage_bound, dp_tpr_bound, membership_audit
from qsafe.fraud.training import TrainConfig


def test_metrics_of_perfect_and_blind_attacks() -> None:
    members = np.array([True] * 500 + [False] * 500)
    perfect = attack_metrics(members.astype(float), members)
    assert perfect.auc == 1.0 and perfect.advantage == 1.0 and perfect.tpr_at_1pct_fpr == 1.0
    rng = np.random.default_rng(0)
    blind = attack_metrics(rng.random(1000), members)
    assert abs(blind.auc - 0.5) < 0.06 and blind.advantage < 0.1
    with pytest.raises(InvalidInputError):
        attack_metrics(np.ones(3), np.ones(3, dtype=bool))


def test_dp_bounds() -> None:
    assert dp_advantage_bound(0.0, 0.0) == 0.0
    assert dp_advantage_bound(1.0, 1e-5) == pytest.approx((math.e - 1 + 2e-5) / (math.e + 1))
    assert dp_advantage_bound(1.0, 0) < dp_advantage_bound(3.0, 0) < dp_advantage_bound(8.0, 0) < 1
    assert dp_tpr_bound(1.0, 0.0, 0.01) == pytest.approx(math.e * 0.01)
    assert dp_tpr_bound(20.0, 0.0, 0.5) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def small(fraud_data):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    idx = np.concatenate([rng.choice(np.flatnonzero(fraud_data.labels == c), n, replace=False)
                          for c, n in ((0, 270), (1, 30))])
    return fraud_data.features()[idx], fraud_data.labels[idx]


def test_the_audit_sees_an_over_fit_model_leak(small) -> None:  # type: ignore[no-untyped-def]
    x, y = small
    overfit = TrainConfig(target_epsilon=None, hidden=64, epochs=300, batch_size=32, adam_lr=0.01)
    audit = membership_audit(x, y, overfit, n_models=4, seed=0)
    assert audit.epsilon is None and audit.bound is None
    # 1,200 trials: a blind attack's advantage stays near 0.05; the over-fit models leak about three times that
    assert audit.attacks["loss"]["all"].advantage > 0.1 and audit.attacks["loss"]["all"].auc > 0.52
    assert audit.attacks["lira"]["frauds"].trials == 4 * 30
    d = audit.as_dict()
    assert d["worst"]["all"]["auc"] == max(d["attacks"][a]["all"]["auc"] for a in ("loss", "lira"))


def test_a_dp_audit_reports_its_epsilon_and_bound(small) -> None:  # type: ignore[no-untyped-def]
    x, y = small
    audit = membership_audit(x, y, TrainConfig(target_epsilon=1.0, epochs=2), n_models=4, seed=0)
    assert audit.epsilon is not None and audit.epsilon <= 1.0
    assert audit.bound is not None and audit.bound["advantage"] == dp_advantage_bound(audit.epsilon, 1e-5)
    with pytest.raises(InvalidInputError):
        membership_audit(x, y, TrainConfig(), n_models=3)
