"""Decrypted sums match plaintext sums within the documented bound, from 2 to 1000 clients."""

from __future__ import annotations

import numpy as np
import pytest

from qsafe import keys
from qsafe._he import packing
from qsafe.federated import HEContext, aggregate, decrypt_aggregate, encrypt_update


def _check(clients: int, size: int, secret: HEContext) -> None:
    public = secret.public()
    rng = np.random.default_rng(clients)
    ks = [keys.generate("ml-dsa-44") for _ in range(clients)]
    clip = secret.params.clip
    # Half the values sit at +-clip (worst case for lane headroom), the rest are random.
    plain = [np.where(rng.random(size) < 0.5, rng.choice([-clip, clip], size), rng.uniform(-clip, clip, size))
             for _ in range(clients)]
    ups = [encrypt_update({"w": p}, public, k, 1) for p, k in zip(plain, ks)]
    result = aggregate(ups, public, [k.public_key() for k in ks], 1)
    assert result.refused == [] and result.aggregate is not None and result.aggregate.count == clients
    got = decrypt_aggregate(result.aggregate, secret, average=False)["w"]
    expected = np.sum(plain, axis=0)
    assert np.abs(got - expected).max() <= secret.params.error_bound(clients)
    # The homomorphic sum is exact: it equals the sum of the quantized values to the last bit.
    exact = packing.dequantize(sum(packing.quantize(p, secret.params) for p in plain), secret.params)
    assert np.array_equal(got, exact)


@pytest.mark.parametrize("clients", [2, 3, 17, 64])
def test_sums_within_bound(clients: int, secret_ctx: HEContext) -> None:
    _check(clients, 9000, secret_ctx)  # 9000 values: two ciphertexts, the second partly padding


def test_clip_scales_the_bound() -> None:
    _check(5, 100, HEContext.generate(clip=0.01, max_clients=8))


@pytest.mark.slow
def test_thousand_clients_within_bound(secret_ctx: HEContext) -> None:
    _check(1000, 64, secret_ctx)
