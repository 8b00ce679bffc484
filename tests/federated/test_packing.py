"""Quantization and two-lane packing: exact sums up to the context's client headroom (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsafe._he import packing
from qsafe._he.params import bfv_packed, params_from_json
from qsafe.errors import FormatError, InvalidInputError, UsageError

PARAMS = bfv_packed()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, PARAMS.max_clients), st.integers(1, 9000), st.integers(0, 2**32 - 1))
def test_packed_sums_unpack_exactly(clients: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Extreme values at the clip bound are the worst case for lane overflow.
    q = rng.choice([-PARAMS.quant_max, PARAMS.quant_max, 0, 1, -1], size=(2, size))
    total_q = q[0] * clients + q[1]  # sum of `clients` copies of row 0, plus row 1 once
    slots = packing.pack(q[0], PARAMS) * clients + packing.pack(q[1], PARAMS)
    assert np.abs(slots).max() < PARAMS.plain_modulus // 2 or clients + 1 > PARAMS.max_clients
    if clients + 1 <= PARAMS.max_clients:
        assert np.array_equal(packing.unpack(slots, PARAMS, size), total_q)


def test_worst_case_headroom_fits_plain_modulus() -> None:
    worst = PARAMS.max_clients * PARAMS.quant_max
    assert worst < 2 ** (PARAMS.lane_bits - 1)
    assert worst * 2**PARAMS.lane_bits + worst < PARAMS.plain_modulus // 2


def test_quantization_error_is_within_half_a_step() -> None:
    x = np.linspace(-1, 1, 100001)
    err = np.abs(packing.dequantize(packing.quantize(x, PARAMS), PARAMS) - x)
    assert err.max() <= PARAMS.error_bound(1) * (1 + 1e-12)
    assert PARAMS.error_bound(1) == pytest.approx(1 / (2 * (2**17 - 1)))


def test_flatten_refuses_nan_inf_and_out_of_clip() -> None:
    specs = packing.layout_of({"w": np.zeros(3, np.float32)})
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(InvalidInputError, match="NaN/Inf"):
            packing.flatten({"w": np.array([0, bad, 0], np.float32)}, specs, 1.0)
    with pytest.raises(InvalidInputError, match="clip bound"):
        packing.flatten({"w": np.array([0, 1.5, 0], np.float32)}, specs, 1.0)


def test_layout_refuses_non_float_and_empty() -> None:
    with pytest.raises(InvalidInputError):
        packing.layout_of({})
    with pytest.raises(InvalidInputError, match="dtype"):
        packing.layout_of({"w": np.zeros(3, np.int32)})


def test_params_refuse_overflowing_headroom_and_altered_json() -> None:
    with pytest.raises(UsageError):
        bfv_packed(max_clients=4096)
    data = PARAMS.to_json()
    assert params_from_json(data) == PARAMS
    for key, value in [("plain_modulus", 1032193), ("lane_bits", 20), ("name", "bgv"), ("poly_modulus_degree", 2048)]:
        with pytest.raises(FormatError):
            params_from_json({**data, key: value})
