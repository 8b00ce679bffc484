"""ML-DSA (FIPS 204) through liboqs: a second implementation to cross-check cryptography's (qsafe's built-in).

Not registered in ``qsafe.signers``: qsafe's built-in ``ml-dsa-*`` own those names and OIDs, and a plugin never
shadows a built-in. The schemes here implement the same :class:`qsafe.signers.SignatureScheme` interface with
the same encodings (RFC 9881 SPKI, seed-form PKCS#8), so a key or signature made by either implementation is
used by the other: ``qsafe.keys.PrivateKey("ml-dsa-65", ML_DSA_65.generate())`` signs with liboqs, and the
plugin's tests check both directions and that one seed gives one key in both.

liboqs has no key generation from a seed, but its ML-DSA key generation draws exactly the 32-byte seed xi from
its random-bytes source; :func:`qsafe_liboqs.liboqs.fixed_randomness` feeds it a given seed for the time of one call (a process-wide
switch, held under a lock, put back to the system source afterwards).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mldsa

from qsafe.errors import InvalidInputError, KeyFileError
from qsafe_liboqs import liboqs
from qsafe_liboqs.liboqs import fixed_randomness

__all__ = ["ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "LiboqsMLDSA"]

@dataclass(frozen=True)
class LiboqsMLDSA:
    """ML-DSA-44/65/87 on liboqs, with cryptography's key encodings."""

    name: str
    oid: str
    key_details: str
    oqs_name: str
    private_cls: Any
    public_cls: Any
    post_quantum: bool = True
    keygen: bool = True

    @property
    def description(self) -> str:
        return f"{self.name.upper()} (FIPS 204, pure, context string; liboqs)"

    def keypair_from_seed(self, seed: bytes) -> tuple[bytes, bytes]:
        """(public key, liboqs expanded secret key) for the 32-byte FIPS 204 seed xi."""
        if len(seed) != 32:
            raise KeyFileError("an ML-DSA seed is 32 bytes")
        liboqs.enabled(self.oqs_name)
        with liboqs.oqs().Signature(self.oqs_name) as sig, fixed_randomness(seed) as drawn:
            public = bytes(sig.generate_keypair())
            secret = bytes(sig.export_secret_key())
        if drawn[0] != 32:
            raise RuntimeError(f"liboqs {self.oqs_name} key generation drew {drawn[0]} random bytes, not 32")
        return public, secret

    def generate(self) -> LiboqsMLDSAPrivateKey:
        return LiboqsMLDSAPrivateKey(self, os.urandom(32))

    def public_from_spki(self, spki: bytes) -> LiboqsMLDSAPublicKey:
        try:
            key = serialization.load_der_public_key(spki)
        except ValueError as exc:
            raise KeyFileError(f"malformed {self.name} public key: {exc}") from exc
        if not isinstance(key, self.public_cls):
            raise KeyFileError(f"public key is not {self.name}")
        return LiboqsMLDSAPublicKey(self, bytes(key.public_bytes_raw()))

    def private_from_pkcs8(self, pkcs8: bytes) -> LiboqsMLDSAPrivateKey:
        try:
            key = serialization.load_der_private_key(pkcs8, password=None)
        except ValueError as exc:
            raise KeyFileError(f"malformed {self.name} private key: {exc}") from exc
        if not isinstance(key, self.private_cls):
            raise KeyFileError(f"private key is not {self.name}")
        return LiboqsMLDSAPrivateKey(self, bytes(key.private_bytes_raw()))


class LiboqsMLDSAPublicKey:
    def __init__(self, scheme: LiboqsMLDSA, raw: bytes) -> None:
        self.scheme, self.raw = scheme, raw

    def spki_der(self) -> bytes:
        key = self.scheme.public_cls.from_public_bytes(self.raw)
        return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))

    def verify(self, signature: bytes, data: bytes, context: bytes) -> None:
        if len(context) > 255:
            raise InvalidSignature()
        liboqs.enabled(self.scheme.oqs_name)
        with liboqs.oqs().Signature(self.scheme.oqs_name) as sig:
            if not sig.verify_with_ctx_str(bytes(data), bytes(signature), bytes(context), self.raw):
                raise InvalidSignature()


class LiboqsMLDSAPrivateKey:
    def __init__(self, scheme: LiboqsMLDSA, seed: bytes) -> None:
        self.scheme, self._seed = scheme, seed
        self._public, self._secret = scheme.keypair_from_seed(seed)

    def pkcs8_der(self) -> bytes:
        key = self.scheme.private_cls.from_seed_bytes(self._seed)  # seed-form PKCS#8, as qsafe writes it
        return bytes(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))

    def public(self) -> LiboqsMLDSAPublicKey:
        return LiboqsMLDSAPublicKey(self.scheme, self._public)

    def sign(self, data: bytes, context: bytes) -> bytes:
        if len(context) > 255:
            raise InvalidInputError("signature context string is longer than 255 bytes")
        with liboqs.oqs().Signature(self.scheme.oqs_name, self._secret) as sig:
            return bytes(sig.sign_with_ctx_str(bytes(data), bytes(context)))


def _mldsa(level: int, arc: int, private_cls: Any, public_cls: Any) -> LiboqsMLDSA:
    return LiboqsMLDSA(f"ml-dsa-{level}", f"2.16.840.1.101.3.4.3.{arc}", f"ML_DSA_{level}", f"ML-DSA-{level}",
                       private_cls, public_cls)


ML_DSA_44 = _mldsa(44, 17, mldsa.MLDSA44PrivateKey, mldsa.MLDSA44PublicKey)
ML_DSA_65 = _mldsa(65, 18, mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey)
ML_DSA_87 = _mldsa(87, 19, mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PublicKey)
