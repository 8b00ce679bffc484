"""DP-SGD with Opacus: the certificate's epsilon is what the accountant says; weights round-trip; bad configs."""

from __future__ import annotations

import numpy as np
import pytest

from qsafe.errors import FormatError, InvalidInputError
from qsafe.fraud.training import (
    TrainConfig,
    epsilon_for,
    load_weights,
    predict_proba,
    save_weights,
    train_model,
)


@pytest.fixture(scope="module")
def small(fraud_data):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(fraud_data.labels == c), n, replace=False)
                          for c, n in ((0, 540), (1, 60))])
    return fraud_data.features()[idx], fraud_data.labels[idx]


@pytest.fixture(scope="module")
def dp_model(small):  # type: ignore[no-untyped-def]
    x, y = small
    return train_model(x, y, TrainConfig(target_epsilon=2.0, epochs=4, sample_rate=0.25))


def test_certificate_epsilon_is_the_accountants(dp_model) -> None:  # type: ignore[no-untyped-def]
    c = dp_model.certificate
    assert c is not None and c.steps == 16 and c.sample_rate == 0.25 and c.training_rows == 600
    assert c.epsilon <= 2.0 + 1e-9 and c.epsilon > 1.5  # the smallest sigma within the target's tolerance
    assert c.epsilon == pytest.approx(epsilon_for(c.noise_multiplier, c.sample_rate, c.steps, c.delta, "rdp"))
    prv = epsilon_for(c.noise_multiplier, c.sample_rate, c.steps, c.delta, "prv")
    assert c.epsilon_other["opacus-1.6.0/prv"] == pytest.approx(prv, rel=1e-6)
    assert prv < c.epsilon  # PRV is the tighter accountant
    assert epsilon_for(c.noise_multiplier * 2, c.sample_rate, c.steps, c.delta, "rdp") < c.epsilon
    pred = c.predicate()
    for key in ("epsilon", "delta", "sigma", "q", "steps", "clip", "accountant"):
        assert key in pred
    assert pred["secure_mode"] is False


def test_weights_have_no_opacus_prefix_and_round_trip(dp_model, small) -> None:  # type: ignore[no-untyped-def]
    from safetensors.numpy import load

    assert sorted(dp_model.weights) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    back = load_weights(load(save_weights(dp_model.weights)))
    x, _ = small
    assert np.array_equal(predict_proba(back, x), dp_model.predict_proba(x))
    bad = dict(back)
    bad["fc2.weight"] = np.zeros((2, 16), dtype=np.float32)
    with pytest.raises(FormatError, match="fc2.weight"):
        load_weights(bad)
    with pytest.raises(FormatError, match="missing"):
        load_weights({"fc1.weight": back["fc1.weight"]})


def test_non_dp_training_learns(small) -> None:  # type: ignore[no-untyped-def]
    from sklearn.metrics import average_precision_score

    x, y = small
    model = train_model(x, y, TrainConfig(target_epsilon=None, epochs=20))
    assert model.certificate is None
    assert average_precision_score(y, model.predict_proba(x)) > 0.85


@pytest.mark.parametrize("kwargs", [{"target_epsilon": 0.0}, {"delta": 1.0}, {"sample_rate": 0.0},
                                    {"accountant": "gdp"}, {"hidden": 0}, {"max_grad_norm": -1.0}])
def test_bad_configs_are_refused(kwargs) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError):
        TrainConfig(**kwargs)


def test_bad_training_data_is_refused(small) -> None:  # type: ignore[no-untyped-def]
    x, y = small
    with pytest.raises(InvalidInputError, match="both classes"):
        train_model(x[y == 0], y[y == 0], TrainConfig(target_epsilon=None, epochs=1))
    with pytest.raises(InvalidInputError):
        train_model(x[:, :5], y, TrainConfig(target_epsilon=None, epochs=1))
