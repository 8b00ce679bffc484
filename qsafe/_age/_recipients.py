"""age recipient types: ``X25519``, ``mlkem768x25519`` (age v1.3 hybrid: HPKE with the X-Wing KEM) and ``scrypt``.

Each recipient wraps the 16-byte file key into a stanza; each identity unwraps the stanzas of its type. A stanza
that is structurally wrong (argument count, lengths, non-canonical base64, all-zero X25519 share) is a
FormatError; a well-formed stanza that does not open with this identity is skipped (None).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from qsafe import _limits
from qsafe._age._format import FILE_KEY_SIZE, Stanza, b64decode, b64encode, hkdf_sha256
from qsafe.errors import FormatError

try:  # see _x25519_private
    from cryptography.hazmat.bindings._rust import openssl as _rust_openssl

    _RUST_X25519 = _rust_openssl.x25519
except (ImportError, AttributeError):  # pragma: no cover - another cryptography layout: the public API below
    _RUST_X25519 = None  # type: ignore[assignment]

Kind = Literal["pq", "classical", "passphrase"]
X25519_LABEL = b"age-encryption.org/v1/X25519"
SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
HYBRID_LABEL = b"age-encryption.org/mlkem768x25519"
HYBRID_ENC_SIZE = 1088 + 32
HYBRID_PUBLIC_SIZE = 1184 + 32
WRAPPED_SIZE = FILE_KEY_SIZE + 16
DEFAULT_WORK_FACTOR = 18
MAX_WORK_FACTOR = _limits.AGE_SCRYPT_MAX_WORK_FACTOR
_ZERO_NONCE = b"\x00" * 12
_WORK_FACTOR = re.compile(r"[1-9][0-9]{0,1}")


def _seal(key: bytes, file_key: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, file_key, None)


def _open(key: bytes, body: bytes) -> bytes | None:
    try:
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def _check_body(stanza: Stanza, what: str) -> None:
    # age checks the wrapped key length before decrypting, so a long file key is a format error, not "no match".
    if len(stanza.body) != WRAPPED_SIZE:
        raise FormatError(f"the {what} stanza body has the wrong length")


def _x25519_private(secret: bytes | None = None) -> x25519.X25519PrivateKey:
    """``X25519PrivateKey.from_private_bytes(secret)``, or ``generate()`` when ``secret`` is None.

    The public class methods import cryptography's whole OpenSSL backend module on first use only to check for
    FIPS mode (measured ~20 ms of every ``qsafe encrypt``/``decrypt``); the Rust functions they end in are
    called directly when this cryptography has them (same objects, same errors for bad input).
    """
    if _RUST_X25519 is None:
        if secret is None:
            return x25519.X25519PrivateKey.generate()
        return x25519.X25519PrivateKey.from_private_bytes(secret)
    return _RUST_X25519.generate_key() if secret is None else _RUST_X25519.from_private_bytes(secret)


def _x25519_public(data: bytes) -> x25519.X25519PublicKey:
    """``X25519PublicKey.from_public_bytes(data)``, without the backend import (see :func:`_x25519_private`)."""
    if _RUST_X25519 is None:
        return x25519.X25519PublicKey.from_public_bytes(data)
    return _RUST_X25519.from_public_bytes(data)


def _x25519_shared(private: x25519.X25519PrivateKey, share: bytes) -> bytes:
    try:
        return private.exchange(_x25519_public(share))
    except ValueError:
        raise FormatError("an X25519 share is a low-order point (all-zero shared secret)") from None


# --- X25519 ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class X25519Recipient:
    """A classical ``age1…`` recipient."""

    public: bytes
    kind: Kind = "classical"

    def wrap(self, file_key: bytes) -> Stanza:
        ephemeral = _x25519_private()
        share = ephemeral.public_key().public_bytes_raw()
        shared = _x25519_shared(ephemeral, self.public)
        key = hkdf_sha256(shared, share + self.public, X25519_LABEL)
        return Stanza(["X25519", b64encode(share)], _seal(key, file_key))


@dataclass(frozen=True)
class X25519Identity:
    """A classical ``AGE-SECRET-KEY-1…`` identity."""

    secret: bytes

    def recipient(self) -> X25519Recipient:
        return X25519Recipient(_x25519_private(self.secret).public_key().public_bytes_raw())

    def unwrap(self, stanza: Stanza) -> bytes | None:
        if stanza.type != "X25519":
            return None
        if len(stanza.args) != 2:
            raise FormatError("the X25519 stanza must have exactly one argument")
        share = b64decode(stanza.args[1], "an X25519 share")
        if len(share) != 32:
            raise FormatError("the X25519 share has the wrong length")
        _check_body(stanza, "X25519")
        private = _x25519_private(self.secret)
        shared = _x25519_shared(private, share)
        public = private.public_key().public_bytes_raw()
        return _open(hkdf_sha256(shared, share + public, X25519_LABEL), stanza.body)


# --- mlkem768x25519 (HPKE X-Wing) ------------------------------------------------------------------------------
def _hpke_suite() -> object:
    from cryptography.hazmat.primitives import hpke

    return hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def xwing_keys(seed: bytes) -> tuple[mlkem.MLKEM768PrivateKey, x25519.X25519PrivateKey]:
    """Expand a 32-byte X-Wing seed: SHAKE-256(seed, 96) = ML-KEM-768 seed (64) || X25519 secret (32)."""
    expanded = hashlib.shake_256(seed).digest(96)
    return mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]), _x25519_private(
        expanded[64:]
    )


@dataclass(frozen=True)
class HybridRecipient:
    """A post-quantum ``age1pq1…`` recipient: ML-KEM-768 public key (1,184 bytes) || X25519 public key (32)."""

    public: bytes
    kind: Kind = "pq"

    def wrap(self, file_key: bytes) -> Stanza:
        from cryptography.hazmat.primitives import hpke

        pub = hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(self.public[:1184]),
            _x25519_public(self.public[1184:]),
        )
        sealed = _hpke_suite().encrypt(file_key, pub, info=HYBRID_LABEL)  # type: ignore[attr-defined]
        enc, body = sealed[:HYBRID_ENC_SIZE], sealed[HYBRID_ENC_SIZE:]
        return Stanza(["mlkem768x25519", b64encode(enc)], body)


@dataclass(frozen=True)
class HybridIdentity:
    """A post-quantum ``AGE-SECRET-KEY-PQ-1…`` identity: a 32-byte X-Wing seed."""

    seed: bytes

    def recipient(self) -> HybridRecipient:
        kem, dh = xwing_keys(self.seed)
        return HybridRecipient(kem.public_key().public_bytes_raw() + dh.public_key().public_bytes_raw())

    def unwrap(self, stanza: Stanza) -> bytes | None:
        if stanza.type != "mlkem768x25519":
            return None
        if len(stanza.args) != 2:
            raise FormatError("the mlkem768x25519 stanza must have exactly one argument")
        enc = b64decode(stanza.args[1], "an mlkem768x25519 enc")
        if len(enc) != HYBRID_ENC_SIZE:
            raise FormatError("the mlkem768x25519 enc has the wrong length")
        _check_body(stanza, "mlkem768x25519")
        from cryptography.hazmat.primitives import hpke

        kem, dh = xwing_keys(self.seed)
        _x25519_shared(dh, enc[1088:])  # age refuses an all-zero X25519 share; X-Wing alone would not
        try:
            return _hpke_suite().decrypt(  # type: ignore[attr-defined,no-any-return]
                enc + stanza.body, hpke.MLKEM768X25519PrivateKey(kem, dh), info=HYBRID_LABEL
            )
        except InvalidTag:
            return None


# --- scrypt ----------------------------------------------------------------------------------------------------
def _scrypt_key(passphrase: bytes, salt: bytes, work_factor: int) -> bytes:
    kdf = Scrypt(salt=SCRYPT_LABEL + salt, length=32, n=1 << work_factor, r=8, p=1)
    return kdf.derive(passphrase)


@dataclass(frozen=True)
class ScryptRecipient:
    """A passphrase recipient; it must be the only stanza of its file."""

    passphrase: bytes
    work_factor: int = DEFAULT_WORK_FACTOR
    kind: Kind = "passphrase"

    def wrap(self, file_key: bytes) -> Stanza:
        salt = os.urandom(16)
        key = _scrypt_key(self.passphrase, salt, self.work_factor)
        return Stanza(["scrypt", b64encode(salt), str(self.work_factor)], _seal(key, file_key))


@dataclass(frozen=True)
class ScryptIdentity:
    """A passphrase identity, with the most work it accepts (a hostile file must not cost hours).

    ``passphrase`` may be a callable: it is asked only when the file really has a well-formed scrypt stanza
    (the CLI prompts only for passphrase-encrypted files).
    """

    passphrase: bytes | Callable[[], bytes]
    max_work_factor: int = MAX_WORK_FACTOR

    def unwrap(self, stanza: Stanza) -> bytes | None:
        if stanza.type != "scrypt":
            return None
        if len(stanza.args) != 3:
            raise FormatError("the scrypt stanza must have exactly two arguments")
        salt = b64decode(stanza.args[1], "the scrypt salt")
        if len(salt) != 16:
            raise FormatError("the scrypt salt has the wrong length")
        if not _WORK_FACTOR.fullmatch(stanza.args[2]):
            raise FormatError("the scrypt work factor is not a canonical decimal number")
        work_factor = int(stanza.args[2])
        if work_factor > self.max_work_factor:
            raise FormatError(f"the scrypt work factor {work_factor} exceeds the maximum {self.max_work_factor}")
        _check_body(stanza, "scrypt")
        passphrase = self.passphrase() if callable(self.passphrase) else self.passphrase
        return _open(_scrypt_key(passphrase, salt, work_factor), stanza.body)
