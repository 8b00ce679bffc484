"""TenSEAL operations: make contexts, encrypt chunks, load and add ciphertexts, decrypt.

Each ciphertext travels as one serialized TenSEAL vector holding exactly one SEAL ciphertext.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Self

import numpy as np

from qsafe._he import packing, raw, sealio
from qsafe._he.backend import tenseal
from qsafe._he.params import SchemeParams
from qsafe.errors import FormatError

__all__ = [
    "add_into",
    "decrypt_all",
    "decrypt_values",
    "encrypt_values",
    "invariant_noise_budget",
    "load_ciphertext",
    "load_context",
    "new_context",
    "public_context_bytes",
    "secret_context_bytes",
    "serialize",
]


def new_context(params: SchemeParams) -> Any:
    """A fresh TenSEAL context holding the secret key (and, for ``norm_keys``, relin + Galois keys)."""
    ts = tenseal()
    if params.name == "bfv-packed":
        ctx = ts.context(ts.SCHEME_TYPE.BFV, poly_modulus_degree=params.poly_modulus_degree,
                         plain_modulus=params.plain_modulus, coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes))
    else:
        ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=params.poly_modulus_degree,
                         coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes))
        ctx.global_scale = float(2 ** params.scale_bits)
        if params.norm_keys:
            ctx.generate_galois_keys()
    return ctx


def public_context_bytes(ctx: Any, params: SchemeParams) -> bytes:
    """Serialize only what the clients and the aggregator need: the public key (plus norm keys if asked)."""
    return bytes(ctx.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=params.norm_keys,
                               save_relin_keys=params.norm_keys))


def secret_context_bytes(ctx: Any) -> bytes:
    """Serialize the secret key only: decryption needs nothing else."""
    return bytes(ctx.serialize(save_public_key=False, save_secret_key=True, save_galois_keys=False,
                               save_relin_keys=False))


def load_context(data: bytes, params: SchemeParams, *, secret: bool) -> Any:
    """Load a TenSEAL context and check that it matches ``params`` and holds (or lacks) the secret key.

    Raises:
        FormatError: TenSEAL cannot parse it, or its kind or parameters are not the declared ones.
    """
    ts = tenseal()
    try:
        ctx = ts.context_from(data)
    except Exception as exc:  # TenSEAL raises bare ValueError/RuntimeError on bad input
        raise FormatError(f"the HE context does not parse: {exc}") from exc
    if ctx.has_secret_key() != secret or (not secret and not ctx.has_public_key()):
        raise FormatError("the HE context is not the kind its file declares (public vs secret)")
    if not secret and params.norm_keys != ctx.has_galois_keys():
        raise FormatError("the public HE context's Galois keys do not match its parameters")
    _check_parameters(ctx, params)
    if params.name == "ckks":
        ctx.global_scale = float(2 ** params.scale_bits)
    return ctx


def _saved_parameters(parms: Any) -> bytes:
    """SEAL's own serialization of EncryptionParameters (scheme, N, every coefficient prime, t): the bindings
    only save to a path."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="qsafe-seal-") as tmp:
        path = os.path.join(tmp, "parms")
        parms.save(path)
        with open(path, "rb") as handle:
            return handle.read()


def _readable(ctx: Any) -> dict[str, Any]:
    """What the bindings show directly, for the message: N, t (BFV: from (t + 1) / 2), total coefficient bits."""
    level = ctx.seal_context().data.key_context_data()
    parms = level.parms()
    scheme = str(parms.scheme()).rsplit(".", 1)[-1]
    return {"scheme": scheme, "poly_modulus_degree": int(parms.poly_modulus_degree()),
            "coeff_modulus_bits": int(level.total_coeff_modulus_bit_count()),
            "plain_modulus": 2 * int(level.plain_upper_half_threshold()) - 1 if scheme == "BFV" else None}


def _check_parameters(ctx: Any, params: SchemeParams) -> None:
    """Refuse a context whose SEAL parameters are not exactly the ones its header declares (a forged public
    context with another t or modulus would make clients encrypt garbage). SEAL serializes the parameters it
    holds; they must equal the serialization of the declared ones, built the way :func:`new_context` builds them
    (coefficient primes are a deterministic function of N and the bit sizes)."""
    cpp = tenseal()._ts_cpp
    try:
        have = _saved_parameters(ctx.seal_context().data.key_context_data().parms())
        if params.name == "bfv-packed":
            want = cpp.bfv_parameters(params.poly_modulus_degree, params.plain_modulus,
                                      list(params.coeff_mod_bit_sizes))
        else:
            want = cpp.ckks_parameters(params.poly_modulus_degree, list(params.coeff_mod_bit_sizes))
        same = have == _saved_parameters(want)
        readable = _readable(ctx)
    except Exception as exc:  # noqa: BLE001 - TenSEAL's bindings raise bare errors
        raise FormatError(f"the HE context's SEAL parameters cannot be read: {exc}") from None
    if not same:
        declared = {"scheme": "BFV" if params.name == "bfv-packed" else "CKKS",
                    "poly_modulus_degree": params.poly_modulus_degree,
                    "coeff_modulus_bits": sum(params.coeff_mod_bit_sizes),
                    "plain_modulus": params.plain_modulus if params.name == "bfv-packed" else None}
        diff = ", ".join(f"{k} {readable[k]} (declared {declared[k]})" for k in declared
                         if readable[k] != declared[k]) or "coefficient primes"
        raise FormatError(f"the HE context's TenSEAL parameters differ from its declared scheme: {diff}",
                          hint="the context file was forged or damaged; get public.ctx from the key authority")


def encrypt_values(flat: np.ndarray, params: SchemeParams, ctx: Any, layout: raw.RawLayout,
                   advance: Callable[[int], None] | None = None) -> list[bytes]:
    """Encrypt a flat float64 vector (already clip-checked) into wire-form ciphertexts, one per chunk."""
    ts = tenseal()
    out: list[bytes] = []
    if params.name == "bfv-packed":
        from qsafe._he.fastenc import BatchEncryptor

        encryptor, step = BatchEncryptor(params, ctx, layout), 32 * params.values_per_ciphertext
        try:
            for start in range(0, max(flat.size, 1), step):
                out += encryptor.encrypt(flat[start:start + step])
                if advance:
                    advance(min(step, flat.size - start))
        finally:
            encryptor.close()
        return out
    per = params.values_per_ciphertext
    chunks = packing.chunk_count(flat.size, params)
    padded = np.zeros(chunks * per)
    padded[:flat.size] = flat
    for row in padded.reshape(chunks, per):
        out.append(raw.pack(bytes(ts.ckks_vector(ctx, row.tolist()).serialize()), layout))
        if advance:
            advance(per)
    return out


def load_ciphertext(data: bytes, params: SchemeParams, ctx: Any, layout: raw.RawLayout) -> Any:
    """Load one wire-form ciphertext into TenSEAL and check it is a full-width, single-ciphertext vector.

    Raises:
        FormatError: it does not parse, or TenSEAL refuses it under this context, or its shape is not ours.
    """
    if params.name == "bfv-packed" and not params.batching:
        raise FormatError("parameter set v2 ciphertexts are not TenSEAL vectors (values sit in plaintext "
                          "coefficients); decrypt them with decrypt_values")
    ts = tenseal()
    data = raw.to_tenseal(raw.parse(data, layout), layout)
    try:
        vec = (ts.bfv_vector_from if params.name == "bfv-packed" else ts.ckks_vector_from)(ctx, data)
        size = vec.size()
    except Exception as exc:  # SEAL validates the ciphertext against the context on load
        raise FormatError(f"a ciphertext does not load under this context: {exc}") from exc
    if size != params.slots:
        raise FormatError(f"a ciphertext holds {size} slots, expected {params.slots}")
    return vec


def add_into(total: Any, vec: Any) -> Any:
    """``total += vec`` (in place where TenSEAL allows)."""
    total += vec
    return total


def serialize(vec: Any) -> bytes:
    return bytes(vec.serialize())


def decrypt_values(data: bytes, params: SchemeParams, secret_ctx: Any, layout: raw.RawLayout) -> np.ndarray:
    """Decrypt one serialized ciphertext: BFV gives exact signed slot sums (int64), CKKS approximate floats.

    Raises:
        FormatError: the ciphertext does not load under the secret context.
    """
    return decrypt_all([data], params, secret_ctx, layout)[0]


def decrypt_all(blobs: Sequence[bytes], params: SchemeParams, secret_ctx: Any,
                layout: raw.RawLayout) -> list[np.ndarray]:
    """:func:`decrypt_values` for several ciphertexts (SEAL's decryptor is set up once).

    Raises:
        FormatError: a ciphertext does not load under the secret context.
    """
    if params.name == "bfv-packed" and not params.batching:
        with _CoefficientDecryptor(params, secret_ctx, layout) as dec:
            return [dec.decrypt(b) for b in blobs]
    out = []
    for data in blobs:
        vec = load_ciphertext(data, params, secret_ctx, layout)
        dtype = np.int64 if params.name == "bfv-packed" else np.float64
        out.append(np.asarray(vec.decrypt(), dtype=dtype))
    return out


def invariant_noise_budget(data: bytes, params: SchemeParams, secret_ctx: Any, layout: raw.RawLayout) -> int:
    """SEAL's invariant noise budget (bits) of one BFV ciphertext in wire form (tests, reports)."""
    with _CoefficientDecryptor(params, secret_ctx, layout) as dec:
        return int(dec.decryptor.invariant_noise_budget(dec.load(data)))


class _CoefficientDecryptor:
    """BFV v2: SEAL's decryptor on ciphertexts rebuilt from the wire form; plaintext coefficients centered mod t
    are the signed lane sums."""

    def __init__(self, params: SchemeParams, secret_ctx: Any, layout: raw.RawLayout) -> None:
        seal = sealio.seal_module()
        self.params, self.layout = params, layout
        self.context = secret_ctx.seal_context().data
        self.decryptor = seal.Decryptor(self.context, secret_ctx.secret_key().data)
        self.spool = sealio.Spool()
        self.codec = sealio.PlainCodec(self.context, params.poly_modulus_degree, self.spool)
        self.cipher, self.plain = seal.Ciphertext(self.context), seal.Plaintext()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.spool.close()

    def load(self, data: bytes) -> Any:
        self.spool.load(self.cipher, self.context, raw.to_seal(raw.parse(data, self.layout), self.layout))
        return self.cipher

    def decrypt(self, data: bytes) -> np.ndarray:
        try:
            self.decryptor.decrypt(self.load(data), self.plain)
        except FormatError:
            raise
        except Exception as exc:  # the binding raises bare errors
            raise FormatError(f"a ciphertext does not decrypt under this context: {exc}") from exc
        coeffs = self.codec.read(self.plain).astype(np.int64)
        t = self.params.plain_modulus
        return np.where(coeffs > t // 2, coeffs - t, coeffs)
