"""Tensor layout, quantization and two-lane packing (pure numpy; no TenSEAL).

Layout: tensors are taken in the listed order, each flattened row-major, concatenated into one float64 vector,
zero-padded to a whole number of ciphertexts. For ``bfv-packed``, ciphertext ``i`` carries values
``[i*2S, (i+1)*2S)`` (S = slots): the first S in the low lane, the next S in the high lane.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from qsafe import _limits
from qsafe._he.params import SchemeParams
from qsafe.errors import FormatError, InvalidInputError

__all__ = [
    "DTYPES",
    "TensorSpec",
    "chunk_count",
    "dequantize",
    "flatten",
    "layout_of",
    "pack",
    "quantize",
    "unflatten",
    "unpack",
]

# safetensors dtype names of the float types an update may hold.
DTYPES: dict[str, str] = {"F16": "float16", "F32": "float32", "F64": "float64"}
_NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
_MAX_TENSORS = _limits.FL_MAX_TENSORS
_MAX_VALUES = _limits.FL_MAX_VALUES


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one tensor of the update, and where its values sit in the flat vector."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    offset: int

    @property
    def count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "offset": self.offset}


def layout_of(tensors: Mapping[str, np.ndarray]) -> list[TensorSpec]:
    """The layout of ``tensors`` in sorted-name order.

    Raises:
        InvalidInputError: no tensors, a non-string name, or a dtype other than F16/F32/F64.
    """
    if not tensors:
        raise InvalidInputError("the update has no tensors")
    specs: list[TensorSpec] = []
    offset = 0
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"tensor name {name!r} is not a non-empty string")
        if array.dtype not in _NAMES:
            raise InvalidInputError(f"tensor {name!r} has dtype {array.dtype}; updates must be float16/32/64")
        spec = TensorSpec(name, tuple(int(d) for d in array.shape), _NAMES[array.dtype], offset)
        specs.append(spec)
        offset += spec.count
    return specs


def layout_from_json(items: Any) -> list[TensorSpec]:
    """Parse a header's tensor list, checking that offsets tile the flat vector.

    Raises:
        FormatError: malformed entries, unknown dtype, or overlapping / gapped offsets.
    """
    if not isinstance(items, list) or not 0 < len(items) <= _MAX_TENSORS:
        raise FormatError("the header's tensor list is missing, empty or too long")
    specs, offset = [], 0
    for item in items:
        if not (isinstance(item, dict) and set(item) == {"name", "shape", "dtype", "offset"}
                and isinstance(item["name"], str) and isinstance(item["dtype"], str) and item["dtype"] in DTYPES
                and isinstance(item["offset"], int) and item["offset"] == offset
                and isinstance(item["shape"], list) and len(item["shape"]) <= 16
                and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < _MAX_VALUES
                        for d in item["shape"])):
            raise FormatError(f"malformed tensor entry in the header: {str(item)[:120]}")
        spec = TensorSpec(item["name"], tuple(item["shape"]), item["dtype"], offset)
        offset += spec.count
        if offset > _MAX_VALUES:
            raise FormatError("the header describes too many values")
        specs.append(spec)
    if len({s.name for s in specs}) != len(specs):
        raise FormatError("the header names a tensor twice")
    return specs


def total_values(specs: list[TensorSpec]) -> int:
    return specs[-1].offset + specs[-1].count


def chunk_count(values: int, params: SchemeParams) -> int:
    """How many ciphertexts carry ``values`` values."""
    per = params.values_per_ciphertext
    return max(1, -(-values // per))


def flatten(tensors: Mapping[str, np.ndarray], specs: list[TensorSpec], clip: float) -> np.ndarray:
    """Concatenate the tensors as float64 after refusing NaN/Inf and values beyond ``clip``.

    Raises:
        InvalidInputError: a tensor holds NaN/Inf or a value with ``|x| > clip`` (named in the message).
    """
    parts = []
    for spec in specs:
        array = np.asarray(tensors[spec.name], dtype=np.float64).reshape(-1)
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise InvalidInputError(f"tensor {spec.name!r} holds {bad} NaN/Inf value(s); refusing to encrypt it",
                                    hint="fix the update at the client: NaN/Inf would poison the aggregate")
        peak = float(np.max(np.abs(array))) if array.size else 0.0
        if peak > clip:
            raise InvalidInputError(
                f"tensor {spec.name!r} has |x| up to {peak:.6g}, beyond the context's clip bound {clip:g}",
                hint="clip or scale the update so every |x| <= clip, or make a context with a larger --clip")
        parts.append(array)
    return np.concatenate(parts)


def unflatten(flat: np.ndarray, specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Split a flat float64 vector back into tensors with their names, shapes and dtypes."""
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        values = flat[spec.offset:spec.offset + spec.count]
        out[spec.name] = values.astype(DTYPES[spec.dtype]).reshape(spec.shape)
    return out


def quantize(flat: np.ndarray, params: SchemeParams) -> np.ndarray:
    """Round ``x / clip * Q`` to the nearest integer (int64); ``|result| <= Q``."""
    q = np.rint(flat * (params.quant_max / params.clip))
    return np.clip(q, -params.quant_max, params.quant_max).astype(np.int64)


def dequantize(q: np.ndarray, params: SchemeParams) -> np.ndarray:
    """Map quantized integers (or exact sums of them) back to floats."""
    return q.astype(np.float64) * (params.clip / params.quant_max)


def pack(q: np.ndarray, params: SchemeParams) -> np.ndarray:
    """Pack quantized values two per slot, zero-padded: shape ``(chunks, slots)`` of int64."""
    slots, per = params.slots, params.values_per_ciphertext
    chunks = chunk_count(q.size, params)
    padded = np.zeros(chunks * per, dtype=np.int64)
    padded[:q.size] = q
    grid = padded.reshape(chunks, 2, slots)
    return grid[:, 0, :] + (grid[:, 1, :] << params.lane_bits)


def unpack(slots: np.ndarray, params: SchemeParams, count: int) -> np.ndarray:
    """Inverse of :func:`pack` for exact sums: split each signed slot into its two signed lanes."""
    lane = params.lane_bits
    half = 1 << (lane - 1)
    slots = slots.reshape(-1, params.slots)
    lo = np.mod(slots + half, 1 << lane) - half
    hi = (slots - lo) >> lane
    return np.stack([lo, hi], axis=1).reshape(-1)[:count]
