"""The wire form of a ciphertext: its coefficients byte-packed, and fast aggregation on them.

A serialized TenSEAL vector is a protobuf (field 1: slot counts, field 2: SEAL ciphertext bytes, field 3: CKKS
scale). A SEAL ciphertext is a 16-byte SEAL header, then (zstd-compressed) its metadata (parms_id, NTT flag,
size, degree, modulus count, scale, correction factor), an inner DynArray header and the coefficients as u64,
laid out ``[poly][prime][coefficient]``. All that metadata is fixed by the context, so on the wire qsafe sends
only the coefficients, each in ``ceil(bits(prime) / 8)`` little-endian bytes, ordered ``[prime][poly][coeff]``:
exactly ``2 * N * sum(bytes per prime)`` bytes (BFV default: 81920 bytes per 8192 values = 10 B/value, against
11.5 for TenSEAL's zstd output). Parsing is a length check, a numpy reshape and a range check (every coefficient
below its prime, SEAL's own validity rule); adding is adding coefficients modulo each prime; no decompression.
The SEAL metadata is rebuilt from a reference ciphertext the holder of the context makes itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from qsafe._he import sealio
from qsafe._he.backend import tenseal
from qsafe._he.params import SchemeParams
from qsafe.errors import FormatError

__all__ = ["Accumulator", "RawLayout", "pack", "pack_seal", "parse", "reference_layout", "to_seal", "to_tenseal"]

_META = 73  # parms_id 32 + ntt flag 1 + size, degree, modulus count 3x8 + scale 8 + correction factor 8
_INNER = 24  # inner DynArray: SEAL header 16 + element count 8


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(data: bytes) -> list[tuple[int, int, bytes]]:
    """Top-level protobuf fields as (number, wire type, raw value bytes); bounded by ``data``."""
    out, i = [], 0
    while i < len(data):
        tag, i = _read_varint(data, i)
        number, wire = tag >> 3, tag & 7
        if wire == 2:
            length, i = _read_varint(data, i)
            if i + length > len(data):
                raise FormatError("a ciphertext's protobuf is truncated")
            out.append((number, wire, data[i:i + length]))
            i += length
        elif wire == 1:
            out.append((number, wire, data[i:i + 8]))
            i += 8
        else:
            raise FormatError("a ciphertext's protobuf has an unexpected field type")
    return out


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    for _ in range(10):
        if i >= len(data):
            break
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i
    raise FormatError("a ciphertext's protobuf has a malformed varint")


@dataclass(frozen=True)
class RawLayout:
    """What every ciphertext of one context looks like: protobuf fields, SEAL metadata, primes and widths."""

    other_fields: tuple[tuple[int, int, bytes], ...]
    seal_header: bytes
    prefix: bytes
    primes: tuple[int, ...]
    widths: tuple[int, ...]
    degree: int

    @property
    def wire_size(self) -> int:
        """Bytes of one packed ciphertext."""
        return 2 * self.degree * sum(self.widths)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (2, len(self.primes), self.degree)

    @property
    def prime_array(self) -> np.ndarray:
        return np.array(self.primes, dtype=np.uint64).reshape(1, -1, 1)

    @property
    def max_lazy_adds(self) -> int:
        """How many reduced values can be summed in a u64 before a reduction is needed."""
        return int((2**64 - 1) // max(self.primes)) - 1


def reference_layout(params: SchemeParams, ts_ctx: Any) -> RawLayout:
    """Encrypt zeros under the (public) context and record what a valid ciphertext looks like."""
    ts = tenseal()
    if params.name == "bfv-packed" and not params.batching:
        # v2: values live in plaintext coefficients; SEAL's own encryptor, no TenSEAL vector (which batches)
        seal = sealio.seal_module()
        context = ts_ctx.seal_context().data
        cipher = seal.Ciphertext(context)
        seal.Encryptor(context, ts_ctx.public_key().data).encrypt(seal.Plaintext(params.poly_modulus_degree),
                                                                   cipher)
        spool = sealio.Spool()
        try:
            seal_bytes = spool.save(cipher)
        finally:
            spool.close()
        fields: list[tuple[int, int, bytes]] = []
    else:
        if params.name == "bfv-packed":
            vec = ts.bfv_vector(ts_ctx, [0] * params.slots)
        else:
            vec = ts.ckks_vector(ts_ctx, [0.0] * params.slots)
        fields = _fields(bytes(vec.serialize()))
        seal_bytes = next(v for n, _, v in fields if n == 2)
    body = sealio.body(seal_bytes, None)
    size, degree, count = struct.unpack("<QQQ", body[33:57])
    if size != 2 or len(body) != _META + _INNER + 8 * size * count * degree:
        raise FormatError("TenSEAL produced a ciphertext qsafe does not understand")
    seal = sealio.seal_module()
    moduli = seal.CoeffModulus.Create(params.poly_modulus_degree, list(params.coeff_mod_bit_sizes))
    primes = tuple(int(m.value()) for m in moduli[:count])
    widths = tuple((p.bit_length() + 7) // 8 for p in primes)
    return RawLayout(tuple(f for f in fields if f[0] != 2), seal_bytes[:16], body[:_META + _INNER], primes, widths,
                     int(degree))


def _coefficients(tenseal_bytes: bytes, layout: RawLayout) -> np.ndarray:
    fields = _fields(tenseal_bytes)
    cts = [v for n, _, v in fields if n == 2]
    if len(cts) != 1 or tuple(f for f in fields if f[0] != 2) != layout.other_fields:
        raise FormatError("a ciphertext is not a single-ciphertext vector of this context")
    body = sealio.body(cts[0], len(layout.prefix) + 8 * int(np.prod(layout.shape)))
    if body[:len(layout.prefix)] != layout.prefix:
        raise FormatError("a ciphertext's parameters, level or size differ from this context's")
    return np.frombuffer(body, dtype="<u8", offset=len(layout.prefix)).reshape(layout.shape)


def pack(tenseal_bytes: bytes, layout: RawLayout) -> bytes:
    """TenSEAL's serialized vector -> qsafe's wire form (byte-packed coefficients)."""
    return _pack_coefficients(_coefficients(tenseal_bytes, layout), layout)


def pack_seal(seal_bytes: bytes, layout: RawLayout) -> bytes:
    """A SEAL-serialized ciphertext (``Ciphertext.save``) -> qsafe's wire form.

    Raises:
        FormatError: not a ciphertext of this context's shape.
    """
    body = sealio.body(seal_bytes, len(layout.prefix) + 8 * int(np.prod(layout.shape)))
    if body[:len(layout.prefix)] != layout.prefix:
        raise FormatError("a ciphertext's parameters, level or size differ from this context's")
    if layout.widths == (8,):  # one 57-64-bit prime: SEAL's [poly][coefficient] u64 order is the wire form
        return body[len(layout.prefix):]
    coeffs = np.frombuffer(body, dtype="<u8", offset=len(layout.prefix)).reshape(layout.shape)
    return _pack_coefficients(coeffs, layout)


def _pack_coefficients(coeffs: np.ndarray, layout: RawLayout) -> bytes:
    as_bytes = coeffs.view(np.uint8).reshape(2, len(layout.primes), layout.degree, 8)
    return b"".join(as_bytes[:, j, :, :w].tobytes() for j, w in enumerate(layout.widths))


def parse(blob: bytes, layout: RawLayout) -> np.ndarray:
    """Wire form -> coefficients, shape ``(2, primes, N)`` uint64, each checked to lie below its prime.

    Raises:
        FormatError: wrong length, or a coefficient not below its prime.
    """
    if len(blob) != layout.wire_size:
        raise FormatError(f"a ciphertext has {len(blob)} bytes; this context's have {layout.wire_size}")
    # Read each w-byte coefficient as an (unaligned) u64 at a w-byte stride, then mask off the next one's bytes.
    padded = blob + bytes(8)
    out = np.empty(layout.shape, dtype=np.uint64)
    pos = 0
    for j, w in enumerate(layout.widths):
        count = 2 * layout.degree
        view = np.ndarray((count,), dtype="<u8", buffer=padded, offset=pos, strides=(w,))
        out[:, j, :] = (view & np.uint64((1 << (8 * w)) - 1)).reshape(2, layout.degree)
        pos += count * w
    if np.any(out >= layout.prime_array):
        raise FormatError("a ciphertext has a coefficient outside its modulus")
    return out


def to_seal(coeffs: np.ndarray, layout: RawLayout) -> bytes:
    """Coefficients (reduced) -> an uncompressed SEAL ciphertext (for ``Ciphertext.load``)."""
    return sealio.seal_bytes(layout.seal_header, layout.prefix + np.ascontiguousarray(coeffs, dtype="<u8").tobytes())


def to_tenseal(coeffs: np.ndarray, layout: RawLayout) -> bytes:
    """Coefficients (reduced) -> a serialized TenSEAL vector (uncompressed SEAL ciphertext) for decryption."""
    seal = to_seal(coeffs, layout)
    out = bytearray()
    for number, wire, value in sorted((*layout.other_fields, (2, 2, seal))):
        out += _varint(number << 3 | wire)
        out += _varint(len(value)) + value if wire == 2 else value
    return bytes(out)


class Accumulator:
    """A running sum of ciphertexts in u64, reduced modulo each prime only when it could overflow."""

    def __init__(self, layout: RawLayout, chunks: int) -> None:
        self.layout = layout
        self.total = np.zeros((chunks, *layout.shape), dtype=np.uint64)
        self.pending = 0

    def add(self, coeffs: list[np.ndarray]) -> None:
        """Add one update's ciphertexts (already parsed and range-checked)."""
        if self.pending + 1 > self.layout.max_lazy_adds:
            self.reduce()
        for total, c in zip(self.total, coeffs):
            np.add(total, c, out=total)
        self.pending += 1

    def reduce(self) -> None:
        np.remainder(self.total, self.layout.prime_array, out=self.total)
        self.pending = 1

    def blobs(self) -> list[bytes]:
        """The reduced sums in wire form."""
        self.reduce()
        as_bytes = self.total.view(np.uint8).reshape(len(self.total), 2, len(self.layout.primes),
                                                     self.layout.degree, 8)
        return [b"".join(chunk[:, j, :, :w].tobytes() for j, w in enumerate(self.layout.widths))
                for chunk in as_bytes]
