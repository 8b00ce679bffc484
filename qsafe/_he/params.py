"""HE scheme parameters: the two schemes qsafe offers, their JSON form (part of every header) and validation.

``bfv-packed`` (default): BFV with N=4096. Each value is clipped to ``[-clip, clip]`` and quantized to a signed
``quant_bits``-bit integer; two values share one plaintext coefficient in two ``lane_bits``-bit lanes
(``c = lo + hi * 2**lane_bits``). The lanes leave room for ``max_clients`` summands without carrying into each
other, so sums are exact integers. Two parameter sets exist, told apart by ``params_version`` in the JSON form:

- **v2** (what :func:`bfv_packed` makes): sized to ``max_clients`` = K. The plain modulus t is the smallest prime
  above ``2 K Q (2**lane_bits + 1)`` (Q = ``2**(quant_bits-1) - 1``): the centered range of the lanes of K
  summands at the clip bound, so a sum never wraps. The data primes are the fewest bytes (then the fewest primes)
  whose product q keeps the *worst-case* noise of a K-sum at most half of BFV's decryption threshold
  ``q / (2 t)`` (one bit to spare; :func:`bfv_noise`), and the special prime takes the chain to 101 bits, the HE
  standard's 128-bit **post-quantum** limit for N=4096 (ternary secret; SEAL's ``SEAL_HE_STD_PARMS_128_TQ``; the
  classical row, which SEAL enforces, allows 109; :func:`check_security`). Values are encoded in plaintext
  coefficients (no batching: aggregation only adds, which is coefficient-wise), so t need not be 1 mod 2N.
  Bytes per value on the wire at the default 18-bit quantization: K = 2-4: 7 (one 56-bit prime); 5-11: 8 (one
  60-bit prime); 12-31: 8 (two 32-bit); 32-180: 9; 181-1024: 10 (two 40-bit).
- **v1** (files made before v2; still read, aggregated and decrypted, and still encrypted to): coefficient
  modulus bits [40, 40, 29], a 57-bit batching plain modulus (the largest prime below 2**57 that is 1 mod 8192),
  values in batching slots, 10 bytes per value whatever K. Its JSON form has no ``params_version``.

Traps measured while choosing these (TenSEAL 0.3.18 / SEAL 4.x): TenSEAL refuses a single-prime coefficient
chain (the last prime is SEAL's special prime), and the tutorial plain modulus 1032193 collides with one of SEAL's
primes at N=4096. SEAL compresses what it serializes with zstd; ciphertexts under one data prime of 48-60 bits
hardly compress, which makes serializing them about 6x cheaper than under two 40-bit primes (measured).

``ckks``: TenSEAL's tutorial CKKS (N=8192, [60, 40, 40, 60], scale 2**40), one value per slot, approximate.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any

from qsafe import _limits
from qsafe.errors import FormatError, UsageError

__all__ = ["SCHEMES", "BfvNoise", "SchemeParams", "bfv_noise", "bfv_packed", "check_security", "ckks",
           "params_from_json", "seal_primes"]

BFV_PLAIN_MODULUS = 144115188075814913  # v1: largest prime < 2**57 that is 1 mod 2*4096 (batching)
SCHEMES = ("bfv-packed", "ckks")
_MAX_CLIENTS_LIMIT = _limits.FL_MAX_CLIENTS
BFV_DEGREE = 4096
# The HomomorphicEncryption.org security standard (Albrecht et al., v1.1, 2018), ternary secret, error sigma 3.2:
# the largest total coefficient-modulus bits for 128-bit security at N=4096 (SEAL's util/hestdparms.h).
HE_STD_128_CLASSICAL_BITS = 109  # SEAL_HE_STD_PARMS_128_TC(4096); v1 uses all of it
HE_STD_128_QUANTUM_BITS = 101  # SEAL_HE_STD_PARMS_128_TQ(4096); v2 stays within it
# The classical 128-bit row for every degree qsafe uses (SEAL's CoeffModulus::MaxBitCount(N, tc128)).
_HE_STD_128_CLASSICAL = {4096: HE_STD_128_CLASSICAL_BITS, 8192: 218}
# SEAL's error sampler (centered binomial, sigma 3.2) never draws |e| > 21; a Gaussian one clips at 6 sigma < 21.
SEAL_MAX_ERROR = 21
_MIN_SPECIAL_BITS = 20
_LATEST = 2


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
    params_version: int = 1

    @property
    def slots(self) -> int:
        """Lanes' carriers per ciphertext (BFV: N slots or coefficients; CKKS: N/2)."""
        return self.poly_modulus_degree if self.name == "bfv-packed" else self.poly_modulus_degree // 2

    @property
    def values_per_ciphertext(self) -> int:
        """Parameter values carried by one ciphertext."""
        return self.slots * self.values_per_slot

    @property
    def batching(self) -> bool:
        """True when BFV values sit in batching slots (v1); v2 puts them in plaintext coefficients."""
        return self.name == "bfv-packed" and self.params_version == 1

    @property
    def quant_max(self) -> int:
        """The largest quantized magnitude Q: ``x`` maps to ``round(x / clip * Q)``."""
        return (1 << (self.quant_bits - 1)) - 1

    @property
    def ciphertext_bytes(self) -> int:
        """Bytes of one ciphertext on the wire: 2 polynomials x N coefficients x ceil(bits/8) per data prime
        (SEAL's last prime is the special prime, absent from ciphertexts)."""
        return 2 * self.poly_modulus_degree * sum((b + 7) // 8 for b in self.coeff_mod_bit_sizes[:-1])

    @property
    def bytes_per_value(self) -> float:
        """Wire bytes per parameter value (before the last ciphertext's padding and the header)."""
        return self.ciphertext_bytes / self.values_per_ciphertext

    def error_bound(self, clients: int) -> float:
        """Worst-case absolute error of a decrypted *sum* of ``clients`` updates, per value (BFV only).

        Each client's value is rounded to the nearest multiple of ``clip / Q``: at most ``clip / (2 Q)`` off.
        The homomorphic sum itself is exact, so the sum is off by at most ``clients * clip / (2 Q)`` and the
        average by ``clip / (2 Q)``. CKKS has no such hard bound (its noise is approximate; see docs).
        """
        return clients * self.clip / (2 * self.quant_max)

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (lists, not tuples). v1 parameters have no ``params_version`` (files made
        before it existed are hashed into their fingerprints as they are)."""
        data = asdict(self)
        data["coeff_mod_bit_sizes"] = list(self.coeff_mod_bit_sizes)
        if self.params_version == 1:
            del data["params_version"]
        return data


def _is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin for n < 3.3e24 (the first twelve primes as bases)."""
    bases = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
    if n < 2:
        return False
    for p in bases:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in bases:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


@functools.lru_cache(maxsize=64)
def seal_primes(degree: int, bit_sizes: tuple[int, ...]) -> tuple[int, ...]:
    """The primes SEAL's ``CoeffModulus::Create(degree, bit_sizes)`` picks, in its order (pure Python, so headers
    are checked without TenSEAL): for each size, the largest primes below ``2**bits`` that are 1 mod 2N, the
    smallest of them given to the size's first occurrence. The key authority's TenSEAL context is checked against
    SEAL's own choice (:func:`qsafe._he.cipher.load_context`), and a test compares the two.

    Raises:
        UsageError: a size outside SEAL's 2..60 bits, or too few such primes.
    """
    factor = 2 * degree
    found: dict[int, list[int]] = {}
    for bits in sorted(set(bit_sizes)):
        if not 2 <= bits <= 60:
            raise UsageError(f"SEAL's coefficient primes have 2 to 60 bits, not {bits}")
        count, value = bit_sizes.count(bits), ((1 << bits) - 1) // factor * factor + 1
        out: list[int] = []
        while len(out) < count and value > 1 << (bits - 1):
            if _is_prime(value):
                out.append(value)
            value -= factor
        if len(out) < count:
            raise UsageError(f"there are not {count} primes of {bits} bits that are 1 mod {factor}")
        found[bits] = out
    return tuple(found[bits].pop() for bits in bit_sizes)


@dataclass(frozen=True)
class BfvNoise:
    """The worst-case noise accounting of a BFV parameter set (see :func:`bfv_noise`)."""

    data_modulus_bits: float
    plain_modulus_bits: float
    fresh_noise_bound: float
    clients: int
    budget_bits: float
    total_modulus_bits: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def bfv_noise(params: SchemeParams, clients: int | None = None) -> BfvNoise:
    """The decryption-noise margin of a sum of ``clients`` (default: ``max_clients``) ciphertexts, worst case.

    SEAL encrypts with the public key at the key level (modulus ``q * p``, p the special prime) and divides by p:
    a fresh ciphertext's noise ``v`` (``c0 + c1 s = round(q m / t) + v mod q``) is ``(-e u + e1 + e2 s) / p``
    plus the rounding of that division ``r0 + r1 s`` (``|r_i| <= 1/2``), and the message's own rounding adds
    at most 1/2. With a ternary secret and key-level errors ``|e| <= 21``: ``|v| <= N/2 + 1 + (2N + 1) 21 / p``
    per coefficient, whatever the randomness. A sum of K ciphertexts has at most K times that, and decrypts
    exactly while it stays below ``q / (2 t)``. ``budget_bits`` is ``log2(q / (2 t)) - log2(K * bound)``: the
    bits to spare in the worst case (SEAL's measured "invariant noise budget" of real ciphertexts is higher, as
    the typical noise is far below the worst case).
    """
    k = params.max_clients if clients is None else clients
    primes = seal_primes(params.poly_modulus_degree, params.coeff_mod_bit_sizes)
    q = math.prod(primes[:-1])
    n = params.poly_modulus_degree
    bound = n / 2 + 1 + (2 * n + 1) * SEAL_MAX_ERROR / primes[-1]
    return BfvNoise(math.log2(q), math.log2(params.plain_modulus), bound, k,
                    math.log2(q / (2 * params.plain_modulus)) - math.log2(k * bound),
                    sum(params.coeff_mod_bit_sizes))


def _check_common(clip: float, max_clients: int) -> None:
    if not (isinstance(clip, (int, float)) and math.isfinite(clip) and clip > 0):
        raise UsageError(f"clip must be a finite positive number, not {clip!r}")
    if not (isinstance(max_clients, int) and 2 <= max_clients <= _MAX_CLIENTS_LIMIT):
        raise UsageError(f"max_clients must be between 2 and {_MAX_CLIENTS_LIMIT}, not {max_clients!r}")


def check_security(params: SchemeParams) -> None:
    """Refuse parameters beyond the HE standard's 128-bit bound for their degree (ternary secret): the total
    coefficient-modulus bits, special prime included, at most 109 at N=4096 and 218 at N=8192; v2 BFV sets at
    most 101 (the post-quantum row). SEAL enforces the classical row itself; this check keeps qsafe's own
    parameter sets honest before SEAL is reached (and in tools that never load it).

    Raises:
        UsageError: another degree, or too many modulus bits for 128-bit security.
    """
    limit = _HE_STD_128_CLASSICAL.get(params.poly_modulus_degree)
    if params.name == "bfv-packed" and params.params_version >= 2:
        limit = HE_STD_128_QUANTUM_BITS if params.poly_modulus_degree == BFV_DEGREE else None
    bits = sum(params.coeff_mod_bit_sizes)
    if limit is None or bits > limit:
        raise UsageError(f"{params.name} with N={params.poly_modulus_degree} and a {bits}-bit coefficient modulus "
                         f"is beyond the HE standard's 128-bit security bound ({limit or 'no row'} bits)")


def bfv_packed(*, clip: float = 1.0, max_clients: int = 1024, quant_bits: int = 18,
               params_version: int = _LATEST) -> SchemeParams:
    """The packed, quantized BFV parameters (v2, sized to ``max_clients``, unless ``params_version=1``).

    Args:
        clip: every value must satisfy ``|x| <= clip``.
        max_clients: how many updates one aggregate may hold (sets the lane headroom, and for v2 the moduli).
        quant_bits: signed bits per quantized value (precision ``clip / (2**(quant_bits-1) - 1)``).
        params_version: 2 (sized to ``max_clients``) or 1 (the fixed set of earlier releases).

    Raises:
        UsageError: the lanes would not fit (v1: the 57-bit plain modulus; v2: no chain within the HE standard's
            post-quantum limit keeps the worst-case noise in bounds), or an unknown version.
    """
    _check_common(clip, max_clients)
    if not 4 <= quant_bits <= 24:
        raise UsageError(f"quant_bits must be between 4 and 24, not {quant_bits!r}")
    lane_bits = quant_bits + math.ceil(math.log2(max_clients))
    if params_version == 1:
        if 2 * lane_bits > BFV_PLAIN_MODULUS.bit_length() - 1:
            raise UsageError(
                f"quant_bits={quant_bits} with max_clients={max_clients} needs 2x{lane_bits}-bit lanes; "
                f"the 57-bit plain modulus holds 2x28",
                hint="lower --max-clients or the quantization bits",
            )
        out = SchemeParams("bfv-packed", BFV_DEGREE, (40, 40, 29), float(clip), max_clients,
                           plain_modulus=BFV_PLAIN_MODULUS, quant_bits=quant_bits, lane_bits=lane_bits,
                           values_per_slot=2)
        check_security(out)
        if bfv_noise(out).budget_bits <= 0:  # only reachable with non-default quantization (no file has it)
            raise UsageError(f"quant_bits={quant_bits} with max_clients={max_clients}: the worst-case noise of the "
                             "sum exceeds the v1 parameters' decryption threshold")
        return out
    if params_version != 2:
        raise UsageError(f"unknown bfv-packed parameter version {params_version!r}; qsafe knows 1 and 2")
    plain, chain = _sized(max_clients, quant_bits, lane_bits)
    out = SchemeParams("bfv-packed", BFV_DEGREE, chain, float(clip), max_clients, plain_modulus=plain,
                       quant_bits=quant_bits, lane_bits=lane_bits, values_per_slot=2, params_version=2)
    check_security(out)
    return out


def _data_chains(data_bytes: int) -> list[tuple[int, ...]]:
    """Data-prime bit sizes that take ``data_bytes`` bytes per coefficient on the wire: one prime first (faster
    to encrypt and to serialize), then two of whole bytes."""
    chains: list[tuple[int, ...]] = []
    if data_bytes <= 8:
        chains.append((min(8 * data_bytes, 60),))
    high, low = 8 * -(-data_bytes // 2), 8 * (data_bytes // 2)
    if 16 <= low and high <= 56:
        chains.append((high, low))
    return chains


@functools.lru_cache(maxsize=64)
def _sized(clients: int, quant_bits: int, lane_bits: int) -> tuple[int, tuple[int, ...]]:
    """v2: the plain modulus and coefficient chain for ``clients`` summands (see the module docstring)."""
    quant_max = (1 << (quant_bits - 1)) - 1
    plain = 2 * clients * quant_max * ((1 << lane_bits) + 1) + 1
    while not _is_prime(plain):
        plain += 1
    if plain.bit_length() > 60:
        raise UsageError(f"quant_bits={quant_bits} with max_clients={clients} needs a {plain.bit_length()}-bit "
                         "plain modulus; SEAL allows 60", hint="lower --max-clients or the quantization bits")
    n = BFV_DEGREE
    for data_bytes in range(2, 11):
        for data in _data_chains(data_bytes):
            special = min(60, HE_STD_128_QUANTUM_BITS - sum(data))
            if special < _MIN_SPECIAL_BITS:
                continue
            chain = (*data, special)
            try:
                primes = seal_primes(n, chain)
            except UsageError:  # e.g. only one 16-bit prime is 1 mod 8192
                continue
            if plain in primes:
                continue
            bound = n / 2 + 1 + (2 * n + 1) * SEAL_MAX_ERROR / primes[-1]
            if 4 * plain * clients * bound < math.prod(primes[:-1]):
                return plain, chain
    raise UsageError(f"no BFV parameters at N={n} within the HE standard's 128-bit post-quantum limit "
                     f"({HE_STD_128_QUANTUM_BITS} bits) hold exact sums of {clients} clients at {quant_bits}-bit "
                     "quantization", hint="lower --max-clients (1024 fits at the default quantization)")


def ckks(*, clip: float = 1.0, max_clients: int = 1024, norm_keys: bool = False) -> SchemeParams:
    """TenSEAL's tutorial CKKS parameters (N=8192, [60, 40, 40, 60], scale 2**40).

    Args:
        clip: every value must satisfy ``|x| <= clip``.
        max_clients: how many updates one aggregate may hold.
        norm_keys: put relinearization and Galois keys in the public context, so anyone holding it can compute
            an encrypted squared norm of an update (35 MB public context instead of ~0.3 MB).
    """
    _check_common(clip, max_clients)
    out = SchemeParams("ckks", 8192, (60, 40, 40, 60), float(clip), max_clients, scale_bits=40,
                       norm_keys=bool(norm_keys))
    check_security(out)
    return out


_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "poly_modulus_degree": int, "coeff_mod_bit_sizes": list, "clip": (int, float),
    "max_clients": int, "plain_modulus": int, "quant_bits": int, "lane_bits": int, "values_per_slot": int,
    "scale_bits": int, "norm_keys": bool,
}


def params_from_json(data: Any) -> SchemeParams:
    """Parse and re-derive scheme parameters from a header; only the exact parameter sets qsafe makes pass.

    A header without ``params_version`` is v1 (every file made before v2 existed); ``"params_version": 2`` is
    the set sized to ``max_clients``.

    Raises:
        FormatError: unknown scheme or version, missing or mistyped field, or parameters qsafe would not have made.
    """
    if not isinstance(data, dict) or set(data) - {"params_version"} != set(_TYPES):
        raise FormatError("HE scheme parameters are missing or have unknown fields")
    version = data.get("params_version", 1)
    if "params_version" in data and (type(version) is not int or version != 2):
        raise FormatError(f"unknown HE parameter version {version!r}; qsafe knows 1 (no field) and 2")
    for key, typ in _TYPES.items():
        if not isinstance(data[key], typ) or (typ is int and isinstance(data[key], bool)):
            raise FormatError(f"HE scheme parameter {key!r} has the wrong type")
    try:
        if data["name"] == "bfv-packed":
            expected = bfv_packed(clip=data["clip"], max_clients=data["max_clients"], quant_bits=data["quant_bits"],
                                  params_version=version)
        elif data["name"] == "ckks" and version == 1:
            expected = ckks(clip=data["clip"], max_clients=data["max_clients"], norm_keys=data["norm_keys"])
        else:
            raise FormatError(f"unknown HE scheme {data['name']!r} (version {version}); qsafe knows "
                              f"{', '.join(SCHEMES)}")
    except UsageError as exc:
        raise FormatError(f"invalid HE scheme parameters: {exc}") from exc
    if expected.to_json() != {**data, "clip": float(data["clip"])}:
        raise FormatError("HE scheme parameters differ from the parameter set qsafe defines for this scheme")
    return expected
