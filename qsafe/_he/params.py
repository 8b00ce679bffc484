"""HE scheme parameters: the two schemes qsafe offers, their JSON form (part of every header) and validation.

``bfv-packed`` (default): BFV, N=4096, coefficient modulus bits [40, 40, 29], a 57-bit batching plain modulus.
Each value is clipped to ``[-clip, clip]`` and quantized to a signed ``quant_bits``-bit integer; two values share
one slot in two ``lane_bits``-bit lanes (``slot = lo + hi * 2**lane_bits``). The lanes leave room for
``max_clients`` summands without carrying into each other, so sums are exact integers.

Traps measured while choosing these (TenSEAL 0.3.18 / SEAL 4.x): TenSEAL refuses a single-prime coefficient
chain (the last prime is SEAL's special prime), and the tutorial plain modulus 1032193 collides with one of SEAL's
primes at N=4096. The 57-bit plain modulus below is the largest prime ``p < 2**57`` with ``p = 1 (mod 8192)``.

``ckks``: TenSEAL's tutorial CKKS (N=8192, [60, 40, 40, 60], scale 2**40), one value per slot, approximate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from qsafe import _limits
from qsafe.errors import FormatError, UsageError

__all__ = ["SCHEMES", "SchemeParams", "bfv_packed", "ckks", "params_from_json"]

BFV_PLAIN_MODULUS = 144115188075814913  # largest prime < 2**57 that is 1 mod 2*4096 (batching)
SCHEMES = ("bfv-packed", "ckks")
_MAX_CLIENTS_LIMIT = _limits.FL_MAX_CLIENTS


@dataclass(frozen=True)
class SchemeParams:
    """Everything a client, the aggregator and the key authority must agree on (hashed into the fingerprint)."""

    name: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    clip: float
    max_clients: int
    plain_modulus: int = 0
    quant_bits: int = 0
    lane_bits: int = 0
    values_per_slot: int = 1
    scale_bits: int = 0
    norm_keys: bool = False

    @property
    def slots(self) -> int:
        """Slots per ciphertext (BFV batching: N; CKKS: N/2)."""
        return self.poly_modulus_degree if self.name == "bfv-packed" else self.poly_modulus_degree // 2

    @property
    def values_per_ciphertext(self) -> int:
        """Parameter values carried by one ciphertext."""
        return self.slots * self.values_per_slot

    @property
    def quant_max(self) -> int:
        """The largest quantized magnitude Q: ``x`` maps to ``round(x / clip * Q)``."""
        return (1 << (self.quant_bits - 1)) - 1

    @property
    def ciphertext_bytes(self) -> int:
        """Bytes of one ciphertext on the wire: 2 polynomials x N coefficients x ceil(bits/8) per data prime
        (SEAL's last prime is the special prime, absent from ciphertexts)."""
        return 2 * self.poly_modulus_degree * sum((b + 7) // 8 for b in self.coeff_mod_bit_sizes[:-1])

    def error_bound(self, clients: int) -> float:
        """Worst-case absolute error of a decrypted *sum* of ``clients`` updates, per value (BFV only).

        Each client's value is rounded to the nearest multiple of ``clip / Q``: at most ``clip / (2 Q)`` off.
        The homomorphic sum itself is exact, so the sum is off by at most ``clients * clip / (2 Q)`` and the
        average by ``clip / (2 Q)``. CKKS has no such hard bound (its noise is approximate; see docs).
        """
        return clients * self.clip / (2 * self.quant_max)

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (lists, not tuples)."""
        data = asdict(self)
        data["coeff_mod_bit_sizes"] = list(self.coeff_mod_bit_sizes)
        return data


def _check_common(clip: float, max_clients: int) -> None:
    if not (isinstance(clip, (int, float)) and math.isfinite(clip) and clip > 0):
        raise UsageError(f"clip must be a finite positive number, not {clip!r}")
    if not (isinstance(max_clients, int) and 2 <= max_clients <= _MAX_CLIENTS_LIMIT):
        raise UsageError(f"max_clients must be between 2 and {_MAX_CLIENTS_LIMIT}, not {max_clients!r}")


def bfv_packed(*, clip: float = 1.0, max_clients: int = 1024, quant_bits: int = 18) -> SchemeParams:
    """The default packed, quantized BFV parameters.

    Args:
        clip: every value must satisfy ``|x| <= clip``.
        max_clients: how many updates one aggregate may hold (sets the lane headroom).
        quant_bits: signed bits per quantized value (precision ``clip / (2**(quant_bits-1) - 1)``).

    Raises:
        UsageError: the two lanes would not fit in the 57-bit plain modulus.
    """
    _check_common(clip, max_clients)
    lane_bits = quant_bits + math.ceil(math.log2(max_clients))
    if not 4 <= quant_bits <= 24 or 2 * lane_bits > BFV_PLAIN_MODULUS.bit_length() - 1:
        raise UsageError(
            f"quant_bits={quant_bits} with max_clients={max_clients} needs 2x{lane_bits}-bit lanes; "
            f"the 57-bit plain modulus holds 2x28",
            hint="lower --max-clients or the quantization bits",
        )
    return SchemeParams("bfv-packed", 4096, (40, 40, 29), float(clip), max_clients, plain_modulus=BFV_PLAIN_MODULUS,
                        quant_bits=quant_bits, lane_bits=lane_bits, values_per_slot=2)


def ckks(*, clip: float = 1.0, max_clients: int = 1024, norm_keys: bool = False) -> SchemeParams:
    """TenSEAL's tutorial CKKS parameters (N=8192, [60, 40, 40, 60], scale 2**40).

    Args:
        clip: every value must satisfy ``|x| <= clip``.
        max_clients: how many updates one aggregate may hold.
        norm_keys: put relinearization and Galois keys in the public context, so anyone holding it can compute
            an encrypted squared norm of an update (35 MB public context instead of ~0.3 MB).
    """
    _check_common(clip, max_clients)
    return SchemeParams("ckks", 8192, (60, 40, 40, 60), float(clip), max_clients, scale_bits=40,
                        norm_keys=bool(norm_keys))


_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "poly_modulus_degree": int, "coeff_mod_bit_sizes": list, "clip": (int, float),
    "max_clients": int, "plain_modulus": int, "quant_bits": int, "lane_bits": int, "values_per_slot": int,
    "scale_bits": int, "norm_keys": bool,
}


def params_from_json(data: Any) -> SchemeParams:
    """Parse and re-derive scheme parameters from a header; only the exact parameter sets qsafe makes pass.

    Raises:
        FormatError: unknown scheme, missing or mistyped field, or parameters qsafe would not have made.
    """
    if not isinstance(data, dict) or set(data) != set(_TYPES):
        raise FormatError("HE scheme parameters are missing or have unknown fields")
    for key, typ in _TYPES.items():
        if not isinstance(data[key], typ) or (typ is int and isinstance(data[key], bool)):
            raise FormatError(f"HE scheme parameter {key!r} has the wrong type")
    try:
        if data["name"] == "bfv-packed":
            expected = bfv_packed(clip=data["clip"], max_clients=data["max_clients"], quant_bits=data["quant_bits"])
        elif data["name"] == "ckks":
            expected = ckks(clip=data["clip"], max_clients=data["max_clients"], norm_keys=data["norm_keys"])
        else:
            raise FormatError(f"unknown HE scheme {data['name']!r}; qsafe knows {', '.join(SCHEMES)}")
    except UsageError as exc:
        raise FormatError(f"invalid HE scheme parameters: {exc}") from exc
    if expected.to_json() != {**data, "clip": float(data["clip"])}:
        raise FormatError("HE scheme parameters differ from the parameter set qsafe defines for this scheme")
    return expected
