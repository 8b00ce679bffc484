"""A client's encrypted, signed update: the ``qsafe-fl-update/v1`` container.

The header (canonical JSON) names the format version, the scheme and its parameters, the context fingerprint,
the tensors (names, shapes, dtypes, offsets) and packing, the SHA-256 of every ciphertext, the client's key id,
the round and a random 32-byte nonce. The client's ML-DSA signature (context ``MLDSA_CONTEXT_FL_UPDATE``)
covers ``FL_UPDATE_MAGIC || header``, hence every ciphertext through its digest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from qsafe import _limits
from qsafe._files import read_regular
from qsafe._he import cipher, container, packing
from qsafe._he.params import params_from_json
from qsafe._labels import FL_UPDATE_MAGIC, MLDSA_CONTEXT_FL_UPDATE
from qsafe.errors import FormatError, HEMismatchError, InvalidInputError, KeyFileError, SignatureError
from qsafe.federated.context import HEContext
from qsafe.keys import PrivateKey, PublicKey

__all__ = ["EncryptedUpdate", "encrypt_update", "verify_update"]

MAX_UPDATE_BYTES = _limits.FL_UPDATE_MAX_BYTES
_HEADER_KEYS = {"format_version", "kind", "scheme", "context_fingerprint", "tensors", "packing",
                "ciphertext_sha256", "client_key_id", "signature_algorithm", "round", "nonce"}


@dataclass(frozen=True)
class EncryptedUpdate:
    """One client's update: header, ciphertexts and signature. Parse with :meth:`from_bytes`."""

    header_bytes: bytes
    header: dict[str, Any]
    ciphertexts: tuple[bytes, ...]
    signature: bytes

    @property
    def client_key_id(self) -> str:
        return str(self.header["client_key_id"])

    @property
    def round(self) -> int:
        return int(self.header["round"])

    @property
    def nonce(self) -> str:
        return str(self.header["nonce"])

    def to_bytes(self) -> bytes:
        """The ``.qfl`` file content."""
        return container.encode(FL_UPDATE_MAGIC, self.header_bytes, self.ciphertexts, self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> EncryptedUpdate:
        """Parse an update container and check its header's structure (not its signature).

        Raises:
            FormatError: malformed container or header.
        """
        box = container.decode(data, FL_UPDATE_MAGIC, "federated update")
        header = box.header
        check_header(header, [len(b) for b in box.blobs], box.signature)
        return cls(box.header_bytes, header, box.blobs, box.signature)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EncryptedUpdate:
        """Read and parse a ``.qfl`` file.

        Raises:
            FormatError: unreadable or malformed.
        """
        data = read_regular(path, "update", max_bytes=MAX_UPDATE_BYTES)  # never blocks on a FIFO
        return cls.from_bytes(data)


def check_header(header: dict[str, Any], blob_lengths: list[int], signature: bytes) -> None:
    """Check an update header's structure against its ciphertext count and sizes (not the signature's validity).

    Raises:
        FormatError: unknown, missing or inconsistent fields, wrong ciphertext count or size, or no signature.
    """
    if set(header) != _HEADER_KEYS or header["kind"] != "update" or header["format_version"] != 1:
        raise FormatError("not a version-1 federated update header (unknown, missing or extra fields)")
    params = params_from_json(header["scheme"])
    specs = packing.layout_from_json(header["tensors"])
    chunks = packing.chunk_count(packing.total_values(specs), params)
    digests = header["ciphertext_sha256"]
    if not (isinstance(digests, list) and len(digests) == chunks == len(blob_lengths)
            and all(isinstance(d, str) and len(d) == 64 for d in digests)):
        raise FormatError(f"the update should carry {chunks} ciphertexts and digests")
    if header["packing"] != _packing_json(params.values_per_slot, params.slots, packing.total_values(specs)):
        raise FormatError("the update's packing does not match its scheme and tensors")
    if any(n != params.ciphertext_bytes for n in blob_lengths):
        raise FormatError(f"every ciphertext of this scheme has {params.ciphertext_bytes} bytes")
    _check_scalars(header)
    if not signature:
        raise FormatError("the update is not signed")


def _check_scalars(header: dict[str, Any]) -> None:
    if not (isinstance(header["round"], int) and not isinstance(header["round"], bool) and header["round"] >= 0
            and isinstance(header["nonce"], str) and len(header["nonce"]) == 64
            and isinstance(header["client_key_id"], str) and header["client_key_id"].startswith("sha256:")
            and isinstance(header["context_fingerprint"], str)
            and isinstance(header["signature_algorithm"], str)):
        raise FormatError("the update's round, nonce, key id or fingerprint is malformed")


def _packing_json(values_per_slot: int, slots: int, values: int) -> dict[str, Any]:
    return {"ciphertext_encoding": "seal-coefficients-bytepacked/v1",
            "order": "tensors in listed order, row-major, zero-padded", "slots": slots,
            "values": values, "values_per_slot": values_per_slot}


def encrypt_update(tensors: Mapping[str, np.ndarray], context: HEContext, key: PrivateKey, round: int, *,
                   progress: Callable[[int], None] | None = None) -> EncryptedUpdate:
    """Clip-check, quantize, encrypt with the context's public key, and sign one client update.

    Args:
        tensors: name -> float16/32/64 array; every value must be finite with ``|x| <= clip``.
        context: the public (or secret) HE context; only its public key is used.
        key: the client's ML-DSA signing key (its key id goes into the header).
        round: the aggregation round this update is for (>= 0).
        progress: called with the number of values encrypted so far, chunk by chunk.

    Returns:
        The signed update.

    Raises:
        InvalidInputError: no tensors, a non-float dtype, NaN/Inf, a value beyond the clip bound, or bad round.
        KeyFileError: the signing key is not post-quantum.
        MissingDependencyError: TenSEAL is not installed.
    """
    return _encrypt_update_from_parts(tensors, context, key, round, os.urandom(32), progress)


def _encrypt_update_from_parts(tensors: Mapping[str, np.ndarray], context: HEContext, key: PrivateKey, round: int,
                               nonce: bytes, progress: Callable[[int], None] | None) -> EncryptedUpdate:
    if not isinstance(round, int) or isinstance(round, bool) or round < 0:
        raise InvalidInputError(f"the round must be a non-negative integer, not {round!r}")
    if not key.public_key().post_quantum:
        raise KeyFileError(f"{key.algorithm} is not post-quantum: federated updates are signed with ML-DSA",
                           hint="make a client key with qsafe keygen (ML-DSA-65 by default)")
    params = context.params
    specs = packing.layout_of(tensors)
    flat = packing.flatten(tensors, specs, params.clip)
    blobs = cipher.encrypt_values(flat, params, context.tenseal_public(), context.raw_layout(), progress)
    header = {
        "format_version": 1, "kind": "update", "scheme": params.to_json(),
        "context_fingerprint": context.fingerprint, "tensors": [s.to_json() for s in specs],
        "packing": _packing_json(params.values_per_slot, params.slots, flat.size),
        "ciphertext_sha256": [container.sha256_hex(b) for b in blobs],
        "client_key_id": key.public_key().key_id, "signature_algorithm": key.algorithm,
        "round": round, "nonce": nonce.hex(),
    }
    header_bytes = container.canonical_json(header)
    signature = key.sign(FL_UPDATE_MAGIC + header_bytes, MLDSA_CONTEXT_FL_UPDATE)
    return EncryptedUpdate(header_bytes, header, tuple(blobs), signature)


def verify_update(update: EncryptedUpdate, context: HEContext, allowlist: Iterable[PublicKey],
                  round: int) -> PublicKey:
    """Check one update's context, round, client and signature, and its ciphertext digests.

    Args:
        update: the parsed update.
        context: the aggregator's public context.
        allowlist: the client public keys allowed in this round.
        round: the expected round.

    Returns:
        The client's public key.

    Raises:
        HEMismatchError: wrong context fingerprint or scheme, wrong round, unknown client, bad signature or a
            ciphertext that does not match its signed digest.
    """
    header = update.header
    if header["context_fingerprint"] != context.fingerprint or header["scheme"] != context.params.to_json():
        raise HEMismatchError(f"wrong context: update made for {header['context_fingerprint']}, "
                              f"aggregator holds {context.fingerprint}")
    if update.round != round:
        raise HEMismatchError(f"wrong round: update is for round {update.round}, this is round {round}")
    client = next((k for k in allowlist if k.key_id == update.client_key_id), None)
    if client is None:
        raise HEMismatchError(f"unknown client {update.client_key_id}: not in the allowlist")
    if header["signature_algorithm"] != client.algorithm or not client.post_quantum:
        raise HEMismatchError(f"bad signature: algorithm {header['signature_algorithm']!r} is not the key's")
    try:
        client.verify(update.signature, FL_UPDATE_MAGIC + update.header_bytes, MLDSA_CONTEXT_FL_UPDATE)
    except SignatureError as exc:
        raise HEMismatchError(f"bad signature from client {client.key_id}") from exc
    for i, (blob, digest) in enumerate(zip(update.ciphertexts, header["ciphertext_sha256"])):
        if container.sha256_hex(blob) != digest:
            raise HEMismatchError(f"ciphertext {i} does not match its signed digest (modified in transit)")
    return client
