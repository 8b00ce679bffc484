"""Signing keys: generate, save, load, sign and verify, for every algorithm qsafe supports.

Private keys are stored as PKCS#8 seed-form PEM; when protected, that PEM is wrapped in an age file with a
scrypt recipient (see :mod:`qsafe._age`). Every public key has a key id: ``sha256:`` + hex SHA-256 of its
DER SubjectPublicKeyInfo (the bytes that name the algorithm and the key).

Verification raises :class:`~qsafe.errors.SignatureError`; it never returns a bool.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mldsa

from qsafe.errors import KeyFileError, SignatureError

__all__ = [
    "SIGNATURE_ALGORITHMS",
    "DEFAULT_SIGNATURE_ALGORITHM",
    "PrivateKey",
    "PublicKey",
    "generate",
    "load_private_key",
    "load_public_key",
    "load_public_keys",
]

DEFAULT_SIGNATURE_ALGORITHM = "ml-dsa-65"

_MLDSA = {
    "ml-dsa-44": (mldsa.MLDSA44PrivateKey, mldsa.MLDSA44PublicKey),
    "ml-dsa-65": (mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey),
    "ml-dsa-87": (mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PublicKey),
}

SIGNATURE_ALGORITHMS: tuple[str, ...] = tuple(_MLDSA)

_POST_QUANTUM = frozenset(_MLDSA)


def _algorithm_of(key: Any) -> str:
    for name, (priv_cls, pub_cls) in _MLDSA.items():
        if isinstance(key, (priv_cls, pub_cls)):
            return name
    raise KeyFileError(f"unsupported key type {type(key).__name__}")


@dataclass(frozen=True)
class PublicKey:
    """A public verification key."""

    algorithm: str
    _key: Any

    @property
    def post_quantum(self) -> bool:
        """True when a forgery needs breaking a post-quantum algorithm."""
        return self.algorithm in _POST_QUANTUM

    @property
    def key_id(self) -> str:
        """``sha256:`` + hex SHA-256 of the DER SubjectPublicKeyInfo."""
        return "sha256:" + hashlib.sha256(self.to_der()).hexdigest()

    def to_der(self) -> bytes:
        return bytes(self._key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))

    def to_pem(self) -> bytes:
        return bytes(self._key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def verify(self, signature: bytes, data: bytes, context: bytes) -> None:
        """Verify ``signature`` over ``data`` under the ML-DSA ``context`` string.

        Raises:
            SignatureError: the signature does not verify with this key.
        """
        try:
            self._key.verify(signature, data, context)
        except InvalidSignature as exc:
            raise SignatureError(f"signature does not verify with key {self.key_id}") from exc


@dataclass(frozen=True)
class PrivateKey:
    """A private signing key."""

    algorithm: str
    _key: Any

    def public_key(self) -> PublicKey:
        return PublicKey(self.algorithm, self._key.public_key())

    def sign(self, data: bytes, context: bytes) -> bytes:
        """Sign ``data`` with the ML-DSA ``context`` string (hedged, FIPS 204 pure mode)."""
        return bytes(self._key.sign(data, context))

    def to_pem(self) -> bytes:
        """Unprotected PKCS#8 seed-form PEM. Protect it before it touches disk."""
        return bytes(
            self._key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


def generate(algorithm: str = DEFAULT_SIGNATURE_ALGORITHM) -> PrivateKey:
    """Generate a fresh signing key.

    Raises:
        KeyFileError: unknown algorithm.
    """
    if algorithm not in _MLDSA:
        raise KeyFileError(f"unknown signature algorithm {algorithm!r}; choose one of {', '.join(SIGNATURE_ALGORITHMS)}")
    return PrivateKey(algorithm, _MLDSA[algorithm][0].generate())


def private_key_from_pem(pem: bytes) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"not a PKCS#8 private key: {exc}") from exc
    return PrivateKey(_algorithm_of(key), key)


def public_key_from_pem(pem: bytes) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"not a PEM public key: {exc}") from exc
    return PublicKey(_algorithm_of(key), key)


def load_private_key(path: str | Path, passphrase: bytes | None = None) -> PrivateKey:
    """Load a private key file (``PREFIX.key``); ``passphrase`` unlocks a protected one."""
    data = Path(path).read_bytes()
    return private_key_from_pem(data)


def load_public_key(path: str | Path) -> PublicKey:
    """Load one public key file (``PREFIX.pub``)."""
    return public_key_from_pem(Path(path).read_bytes())


def load_public_keys(path: str | Path) -> list[PublicKey]:
    """Load every public key in a file of concatenated PEMs, or in every ``*.pub`` file of a directory."""
    p = Path(path)
    files = sorted(p.glob("*.pub")) if p.is_dir() else [p]
    keys: list[PublicKey] = []
    marker = b"-----END PUBLIC KEY-----"
    for f in files:
        for block in f.read_bytes().split(marker):
            if block.strip():
                keys.append(public_key_from_pem(block.strip() + b"\n" + marker + b"\n"))
    return keys
