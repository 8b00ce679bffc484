"""Built-in signature schemes on cryptography: ML-DSA-44/65/87 and ECDSA P-256/384/521 (see :mod:`qsafe.signers`).

Private adapters have ``sign(data, context)``, ``public()``, ``pkcs8_der()``; public adapters have
``verify(signature, data, context)`` (raises ``InvalidSignature``) and ``spki_der()``. :mod:`qsafe.keys` wraps
them in its public ``PrivateKey`` / ``PublicKey``.
"""

from __future__ import annotations

from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa

from qsafe.errors import KeyFileError

MLDSA: dict[str, tuple[Any, Any]] = {
    "ml-dsa-44": (mldsa.MLDSA44PrivateKey, mldsa.MLDSA44PublicKey),
    "ml-dsa-65": (mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey),
    "ml-dsa-87": (mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PublicKey),
}

# ECDSA as model-signing's key signer uses it: the curve fixes the hash (sigstore's rule).
ECDSA: dict[str, tuple[type[ec.EllipticCurve], type[hashes.HashAlgorithm]]] = {
    "ecdsa-p256": (ec.SECP256R1, hashes.SHA256),
    "ecdsa-p384": (ec.SECP384R1, hashes.SHA384),
    "ecdsa-p521": (ec.SECP521R1, hashes.SHA512),
}


class PublicAdapter(Protocol):
    def verify(self, signature: bytes, data: bytes, context: bytes) -> None: ...
    def spki_der(self) -> bytes: ...


class PrivateAdapter(Protocol):
    def sign(self, data: bytes, context: bytes) -> bytes: ...
    def public(self) -> PublicAdapter: ...
    def pkcs8_der(self) -> bytes: ...


class _CryptographyPublic:
    """ML-DSA or ECDSA public key held by cryptography."""

    def __init__(self, key: Any, algorithm: str) -> None:
        self.key, self.algorithm = key, algorithm

    def spki_der(self) -> bytes:
        return bytes(self.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))

    def verify(self, signature: bytes, data: bytes, context: bytes) -> None:
        if self.algorithm in ECDSA:
            # ECDSA has no context string: ``context`` is ignored (documented in docs/keys.md).
            self.key.verify(signature, data, ec.ECDSA(ECDSA[self.algorithm][1]()))
            return
        try:
            self.key.verify(signature, data, context)
        except ValueError as exc:  # e.g. a context over 255 bytes: such a signature cannot be valid
            raise InvalidSignature() from exc


class _CryptographyPrivate:
    """ML-DSA or ECDSA private key held by cryptography."""

    def __init__(self, key: Any, algorithm: str) -> None:
        self.key, self.algorithm = key, algorithm

    def public(self) -> _CryptographyPublic:
        return _CryptographyPublic(self.key.public_key(), self.algorithm)

    def pkcs8_der(self) -> bytes:
        return bytes(self.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))

    def sign(self, data: bytes, context: bytes) -> bytes:
        if self.algorithm in ECDSA:
            return bytes(self.key.sign(data, ec.ECDSA(ECDSA[self.algorithm][1]())))
        return bytes(self.key.sign(data, context))


class CryptographyScheme:
    """An ML-DSA or ECDSA scheme implemented by cryptography (registered in qsafe's ``qsafe.signers`` entries)."""

    def __init__(self, name: str, oid: str, key_details: str, description: str, *, post_quantum: bool,
                 keygen: bool = True) -> None:
        self.name, self.oid, self.key_details, self.description = name, oid, key_details, description
        self.post_quantum, self.keygen = post_quantum, keygen

    def generate(self) -> PrivateAdapter:
        if self.name in MLDSA:
            return _CryptographyPrivate(MLDSA[self.name][0].generate(), self.name)
        return _CryptographyPrivate(ec.generate_private_key(ECDSA[self.name][0]()), self.name)

    def _own(self, name: str, what: str) -> None:
        if name != self.name:
            raise KeyFileError(f"{what} is {name}, not {self.name}")

    def public_from_spki(self, spki: bytes) -> PublicAdapter:
        try:
            key = serialization.load_der_public_key(spki)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyFileError(f"unsupported or malformed public key: {exc}") from exc
        self._own(_name_of(key), "public key")
        adapter = _CryptographyPublic(key, self.name)
        canonical = adapter.spki_der()
        # A key is exactly its bytes: refuse other encodings of the same key (an EC point in the hybrid form,
        # which RFC 5480 forbids, explicit curve parameters); only the shorter compressed EC point is accepted.
        if spki != canonical and len(spki) >= len(canonical):
            raise KeyFileError(f"non-canonical {self.name} public key encoding",
                               hint="re-export the key as a standard SubjectPublicKeyInfo (uncompressed point)")
        return adapter

    def private_from_pkcs8(self, pkcs8: bytes) -> PrivateAdapter:
        try:
            key = serialization.load_der_private_key(pkcs8, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyFileError(f"unsupported or malformed private key: {exc}") from exc
        self._own(_name_of(key), "private key")
        return _CryptographyPrivate(key, self.name)


_ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"


def _mldsa(level: int, oid_arc: int) -> CryptographyScheme:
    return CryptographyScheme(f"ml-dsa-{level}", f"2.16.840.1.101.3.4.3.{oid_arc}", f"ML_DSA_{level}",
                              f"ML-DSA-{level} (FIPS 204, pure, context string)", post_quantum=True)


def _ecdsa(curve: str, digest: str, details: str, *, keygen: bool) -> CryptographyScheme:
    return CryptographyScheme(f"ecdsa-{curve}", _ID_EC_PUBLIC_KEY, details,
                              f"ECDSA-{curve.upper()} with {digest} (classical; context ignored)",
                              post_quantum=False, keygen=keygen)


# The built-in schemes, each named by an entry point of group qsafe.signers in pyproject.toml.
ML_DSA_44 = _mldsa(44, 17)
ML_DSA_65 = _mldsa(65, 18)
ML_DSA_87 = _mldsa(87, 19)
ECDSA_P256 = _ecdsa("p256", "SHA256", "PKIX_ECDSA_P256_SHA_256", keygen=True)
ECDSA_P384 = _ecdsa("p384", "SHA384", "PKIX_ECDSA_P384_SHA_384", keygen=False)   # verify-only (model-signing keys)
ECDSA_P521 = _ecdsa("p521", "SHA512", "PKIX_ECDSA_P521_SHA_512", keygen=False)


def _name_of(key: Any) -> str:
    for name, classes in MLDSA.items():
        if isinstance(key, classes):
            return name
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        for name, (curve, _) in ECDSA.items():
            if isinstance(key.curve, curve):
                return name
        raise KeyFileError(f"unsupported elliptic curve {key.curve.name}")
    raise KeyFileError(f"unsupported key type {type(key).__name__}")


def wrap_cryptography_key(key: Any) -> tuple[str, Any]:
    """(algorithm name, adapter) for a cryptography key object."""
    name = _name_of(key)
    if hasattr(key, "public_key"):
        return name, _CryptographyPrivate(key, name)
    return name, _CryptographyPublic(key, name)


def private_from_sec1(sec1: bytes) -> tuple[str, PrivateAdapter]:
    """Parse an unencrypted DER SEC1 ``ECPrivateKey`` (OpenSSL's traditional EC key form)."""
    try:
        key = serialization.load_der_private_key(sec1, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"malformed EC private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyFileError("an EC PRIVATE KEY block holds a non-EC key")
    name = _name_of(key)
    return name, _CryptographyPrivate(key, name)
