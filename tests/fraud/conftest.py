"""Fixtures for the fraud pipeline's tests: the shipped ULB sample (read once) and small keys."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CSV = REPO / "examples" / "fraud_pipeline" / "data" / "creditcard_sample.csv"


@pytest.fixture(scope="session")
def fraud_data():  # type: ignore[no-untyped-def]
    from qsafe.fraud.data import read_csv

    return read_csv(CSV)


@pytest.fixture(scope="session")
def signer():  # type: ignore[no-untyped-def]
    from qsafe import keys

    return keys.generate("ml-dsa-65")


@pytest.fixture(scope="session")
def other_signer():  # type: ignore[no-untyped-def]
    from qsafe import keys

    return keys.generate("ml-dsa-65")


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)
