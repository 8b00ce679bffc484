"""Encrypted squared norms of updates: the aggregator computes them from public material, the key authority
decrypts only the norms (never an update).

Needs a ``ckks`` context made with ``norm_keys=True``: squaring a ciphertext needs relinearization keys and
summing its slots needs Galois (rotation) keys, both published in the public context (35 MB). The packed BFV
scheme cannot do this: a slot holds two values (``lo + hi * 2**28``), so its square mixes them, and its noise
budget (80-bit ciphertext modulus, 57-bit plaintext modulus) leaves no room for a multiplication.

The result ciphertext holds the total in every slot (rotate-and-add over all slots), so decrypting it reveals
the squared norm and nothing else about the update (up to CKKS's approximation noise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qsafe._he import cipher, container
from qsafe._he.backend import tenseal
from qsafe._labels import FL_NORM_MAGIC
from qsafe.errors import FormatError, HEMismatchError, IntegrityError, UsageError
from qsafe.federated.context import HEContext
from qsafe.federated.update import EncryptedUpdate

__all__ = ["EncryptedNorm", "decrypt_squared_distance", "decrypt_squared_norm", "encrypted_squared_norm"]

_KEYS = {"format_version", "kind", "context_fingerprint", "client_key_id", "round", "nonce", "update_sha256",
         "ciphertext_sha256"}


@dataclass(frozen=True)
class EncryptedNorm:
    """The encrypted squared L2 norm of one update, bound to that update by its header digest."""

    header_bytes: bytes
    header: dict[str, Any]
    ciphertext: bytes

    def to_bytes(self) -> bytes:
        return container.encode(FL_NORM_MAGIC, self.header_bytes, [self.ciphertext])

    @classmethod
    def from_bytes(cls, data: bytes) -> EncryptedNorm:
        """Parse an encrypted norm.

        Raises:
            FormatError: malformed container or header.
        """
        box = container.decode(data, FL_NORM_MAGIC, "encrypted norm")
        if set(box.header) != _KEYS or box.header["kind"] != "squared-norm" or len(box.blobs) != 1:
            raise FormatError("not a version-1 encrypted norm")
        return cls(box.header_bytes, box.header, box.blobs[0])


def encrypted_squared_norm(update: EncryptedUpdate, context: HEContext) -> EncryptedNorm:
    """Compute ``Enc(sum x_i**2)`` of an update homomorphically (no secret needed).

    Verify the update first (:func:`qsafe.federated.verify_update`): this function does not check signatures.

    Args:
        update: a parsed update made under ``context``.
        context: a public (or secret) ``ckks`` context with norm keys.

    Returns:
        The encrypted squared norm.

    Raises:
        UsageError: the context is not ckks with norm keys.
        HEMismatchError: the update was made under another context.
        FormatError: a ciphertext does not load.
    """
    params = context.params
    if params.name != "ckks" or not params.norm_keys:
        raise UsageError("encrypted norms need a ckks context made with norm keys (qsafe fl init --scheme ckks "
                         "--norm-keys)")
    if update.header["context_fingerprint"] != context.fingerprint:
        raise HEMismatchError("wrong context: the update was made under another HE context")
    ts_ctx = context.tenseal_public()
    total = None
    for blob in update.ciphertexts:
        vec = cipher.load_ciphertext(blob, params, ts_ctx, context.raw_layout())
        square = vec.dot(vec)
        total = square if total is None else total + square
    data = cipher.serialize(total)
    header = {"format_version": 1, "kind": "squared-norm", "context_fingerprint": context.fingerprint,
              "client_key_id": update.client_key_id, "round": update.round, "nonce": update.nonce,
              "update_sha256": container.sha256_hex(update.header_bytes), "ciphertext_sha256": container.sha256_hex(data)}
    return EncryptedNorm(container.canonical_json(header), header, data)


def decrypt_squared_norm(norm: EncryptedNorm, context: HEContext) -> float:
    """Decrypt an encrypted squared norm (key authority).

    The value carries CKKS approximation noise. Exact CKKS decryptions handed back to whoever chose the
    ciphertexts can leak the secret key (Li & Micciancio 2021, IND-CPA^D): release only a coarsened value (rounded
    well above the noise, or noise-flooded), or only the accept/reject verdict.

    Raises:
        KeyFileError: ``context`` is public.
        HEMismatchError: the norm was computed under another context.
        IntegrityError: the ciphertext does not match its digest.
    """
    if norm.header["context_fingerprint"] != context.fingerprint:
        raise HEMismatchError("wrong context: the norm was computed under another HE context")
    if container.sha256_hex(norm.ciphertext) != norm.header["ciphertext_sha256"]:
        raise IntegrityError("the encrypted norm does not match its digest")
    ts = tenseal()
    try:
        vec = ts.ckks_vector_from(context.tenseal_secret(), norm.ciphertext)
    except Exception as exc:  # TenSEAL raises bare errors on malformed input
        raise FormatError(f"the encrypted norm does not load: {exc}") from exc
    return float(vec.decrypt()[0])


def decrypt_squared_distance(a: EncryptedUpdate, b: EncryptedUpdate, context: HEContext) -> float:
    """Key authority: ``||a - b||**2`` computed on the ciphertexts, only that number decrypted (blind Krum).

    Verify both updates first. The difference and its squared norm are computed homomorphically; neither update
    is decrypted. The value carries CKKS noise (see :func:`decrypt_squared_norm` on releasing it).

    Raises:
        UsageError: the context is not ckks with norm keys.
        HEMismatchError: an update was made under another context, or the two have different layouts.
        KeyFileError: ``context`` is public.
    """
    params = context.params
    if params.name != "ckks" or not params.norm_keys:
        raise UsageError("encrypted distances need a ckks context made with norm keys")
    for update in (a, b):
        if update.header["context_fingerprint"] != context.fingerprint:
            raise HEMismatchError("wrong context: an update was made under another HE context")
    if a.header["tensors"] != b.header["tensors"]:
        raise HEMismatchError("layout mismatch: the two updates hold different tensors")
    ts_ctx, layout = context.tenseal_public(), context.raw_layout()
    total = None
    for blob_a, blob_b in zip(a.ciphertexts, b.ciphertexts):
        diff = cipher.load_ciphertext(blob_a, params, ts_ctx, layout) - cipher.load_ciphertext(blob_b, params, ts_ctx,
                                                                                                layout)
        square = diff.dot(diff)
        total = square if total is None else total + square
    ts = tenseal()
    vec = ts.ckks_vector_from(context.tenseal_secret(), cipher.serialize(total))
    return float(vec.decrypt()[0])
