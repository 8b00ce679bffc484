"""Fixtures for the signing tests: keys (generated once per session) and a small real safetensors model."""

from __future__ import annotations

from pathlib import Path

import pytest

from qsafe import keys

from .helpers import make_model


@pytest.fixture(scope="session")
def mldsa_key() -> keys.PrivateKey:
    return keys.generate("ml-dsa-65")


@pytest.fixture(scope="session")
def other_key() -> keys.PrivateKey:
    return keys.generate("ml-dsa-65")


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    return make_model(tmp_path / "model")
