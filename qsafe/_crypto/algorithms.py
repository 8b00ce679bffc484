"""Signature algorithm adapters: one small class per family behind one shape.

Private adapters have ``sign(data, context)``, ``public()``, ``pkcs8_der()``; public adapters have
``verify(signature, data, context)`` (raises ``InvalidSignature``) and ``spki_der()``. :mod:`qsafe.keys` wraps
them in its public ``PrivateKey`` / ``PublicKey``.
"""

from __future__ import annotations

from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa

from qsafe._crypto import composite, der
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


def generate(algorithm: str) -> PrivateAdapter:
    """A fresh private key of ``algorithm`` (caller checked the name)."""
    if algorithm in MLDSA:
        return _CryptographyPrivate(MLDSA[algorithm][0].generate(), algorithm)
    if algorithm in ECDSA:
        return _CryptographyPrivate(ec.generate_private_key(ECDSA[algorithm][0]()), algorithm)
    return composite.CompositePrivateKey.generate(composite.COMPOSITES[algorithm])


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


def public_from_spki(spki: bytes) -> tuple[str, PublicAdapter]:
    """Parse a DER SubjectPublicKeyInfo into (algorithm name, adapter)."""
    params = composite.OID_DER_TO_PARAMS.get(der.algorithm_oid_der(spki, private=False))
    if params is not None:
        return params.name, composite.CompositePublicKey.from_spki(spki, params)
    try:
        key = serialization.load_der_public_key(spki)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"unsupported or malformed public key: {exc}") from exc
    name = _name_of(key)
    return name, _CryptographyPublic(key, name)


def private_from_pkcs8(pkcs8: bytes) -> tuple[str, PrivateAdapter]:
    """Parse an unencrypted DER PKCS#8 into (algorithm name, adapter)."""
    params = composite.OID_DER_TO_PARAMS.get(der.algorithm_oid_der(pkcs8, private=True))
    if params is not None:
        return params.name, composite.CompositePrivateKey.from_pkcs8(pkcs8, params)
    try:
        key = serialization.load_der_private_key(pkcs8, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"unsupported or malformed private key: {exc}") from exc
    name = _name_of(key)
    return name, _CryptographyPrivate(key, name)


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
