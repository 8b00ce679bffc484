"""Shared HE contexts and client keys (generated once per module: keygen is the slow part)."""

from __future__ import annotations

import numpy as np
import pytest

from qsafe import keys
from qsafe.federated import HEContext


@pytest.fixture(scope="session")
def secret_ctx() -> HEContext:
    return HEContext.generate()


@pytest.fixture(scope="session")
def public_ctx(secret_ctx: HEContext) -> HEContext:
    return HEContext.from_bytes(secret_ctx.public().public_bytes())


@pytest.fixture(scope="session")
def client_keys() -> list[keys.PrivateKey]:
    return [keys.generate() for _ in range(4)]


def make_update(rng: np.random.Generator, clip: float = 1.0) -> dict[str, np.ndarray]:
    """A small two-tensor update with mixed dtypes, every |x| <= clip."""
    return {
        "layer.weight": rng.uniform(-clip, clip, (7, 300)).astype(np.float32),
        "layer.bias": rng.uniform(-clip, clip, 5).astype(np.float64),
        "head": rng.uniform(-clip, clip, (2, 3)).astype(np.float16),
    }
