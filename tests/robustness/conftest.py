"""A small digits CNN trained once per session (seconds), for the default-suite robustness tests."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def digits_split() -> Any:
    from qsafe.robustness.data import split_digits

    return split_digits()


@pytest.fixture(scope="session")
def small_model(digits_split) -> Any:
    from qsafe.robustness.training import TrainConfig, train

    torch.set_num_threads(1)
    tr, _ = digits_split
    return train(tr.x[:500], tr.y[:500], TrainConfig(recipe="standard", epochs=5, batch_size=32, lr=1e-2, seed=0))


@pytest.fixture(scope="session")
def test_batch(digits_split) -> tuple[Any, Any]:
    _, te = digits_split
    return torch.from_numpy(te.x[:80]), torch.from_numpy(te.y[:80])
