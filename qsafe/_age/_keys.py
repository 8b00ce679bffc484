"""age identity and recipient strings: parsing, identity files, and key generation."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import TypeAlias

from cryptography.hazmat.primitives.asymmetric import x25519

from qsafe._age import _bech32
from qsafe._age._recipients import HYBRID_PUBLIC_SIZE, HybridIdentity, HybridRecipient, X25519Identity, X25519Recipient
from qsafe.errors import KeyFileError, UsageError

Recipient: TypeAlias = "X25519Recipient | HybridRecipient"
Identity: TypeAlias = "X25519Identity | HybridIdentity"

RECIPIENT_HRP = "age"
HYBRID_RECIPIENT_HRP = "age1pq"
IDENTITY_HRP = "age-secret-key-"
HYBRID_IDENTITY_HRP = "age-secret-key-pq-"
ALGORITHMS = ("ml-kem-768-x25519", "x25519")


def parse_recipient(text: str) -> Recipient:
    """Parse an ``age1…`` or ``age1pq1…`` recipient string.

    Raises:
        KeyFileError: not a recipient this implementation supports, or a corrupted one.
    """
    text = text.strip()
    if text.startswith("-----BEGIN"):
        raise KeyFileError("a PEM key is not an age recipient (a qsafe signing key's .pub, perhaps?)",
                           hint="encrypt to the age1… / age1pq1… line of `qsafe keygen --alg ml-kem-768-x25519`")
    if text != text.lower():
        raise KeyFileError(f"recipient {text[:16]}… must be lower case")
    try:
        hrp, data = _bech32.decode(text)
    except KeyFileError as err:
        raise KeyFileError(f"invalid age recipient {text[:16]}…: {err}") from None
    if hrp == RECIPIENT_HRP and len(data) == 32:
        return X25519Recipient(data)
    if hrp == HYBRID_RECIPIENT_HRP and len(data) == HYBRID_PUBLIC_SIZE:
        return HybridRecipient(data)
    raise KeyFileError(f"unsupported or malformed age recipient {text[:16]}…",
                       hint="use an age1… (X25519) or age1pq1… (ML-KEM-768+X25519) recipient")


def parse_identity(text: str) -> Identity:
    """Parse an ``AGE-SECRET-KEY-1…`` or ``AGE-SECRET-KEY-PQ-1…`` identity string.

    Raises:
        KeyFileError: not an identity this implementation supports, or a corrupted one.
    """
    text = text.strip()
    if text.startswith(("age1", "AGE1")):
        raise KeyFileError("this is a public key (an age recipient), not an identity",
                           hint="pass the identity: the .key file of `qsafe keygen --alg ml-kem-768-x25519 --out "
                                "PREFIX` (PREFIX.pub is what others encrypt to)")
    if text.startswith("-----BEGIN"):
        raise KeyFileError("a PEM key is not an age identity (a qsafe signing key, perhaps?)",
                           hint="pass the .key file of `qsafe keygen --alg ml-kem-768-x25519 --out PREFIX`")
    if text != text.upper():
        raise KeyFileError("an age identity must be upper case")
    try:
        hrp, data = _bech32.decode(text)
    except KeyFileError as err:
        raise KeyFileError(f"invalid age identity: {err}") from None
    if hrp == IDENTITY_HRP and len(data) == 32:
        return X25519Identity(data)
    if hrp == HYBRID_IDENTITY_HRP and len(data) == 32:
        return HybridIdentity(data)
    raise KeyFileError("unsupported or malformed age identity",
                       hint="use an AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1… identity")


def _key_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def parse_identities(text: str) -> list[Identity]:
    """Parse an identity file: one identity per line, ``#`` comments and blank lines ignored.

    Raises:
        KeyFileError: a line is not an identity, or the file has none.
    """
    identities = [parse_identity(line) for line in _key_lines(text)]
    if not identities:
        raise KeyFileError("the identity file holds no identity")
    return identities


def parse_recipients(text: str) -> list[Recipient]:
    """Parse a recipients file: one recipient per line, ``#`` comments and blank lines ignored."""
    recipients = [parse_recipient(line) for line in _key_lines(text)]
    if not recipients:
        raise KeyFileError("the recipients file holds no recipient")
    return recipients


def encode_identity(identity: Identity) -> str:
    """The identity's string form (upper case)."""
    if isinstance(identity, HybridIdentity):
        return _bech32.encode(HYBRID_IDENTITY_HRP, identity.seed).upper()
    return _bech32.encode(IDENTITY_HRP, identity.secret).upper()


def encode_recipient(recipient: Recipient) -> str:
    """The recipient's string form."""
    hrp = HYBRID_RECIPIENT_HRP if isinstance(recipient, HybridRecipient) else RECIPIENT_HRP
    return _bech32.encode(hrp, recipient.public)


def generate(algorithm: str = "ml-kem-768-x25519") -> Identity:
    """A fresh identity: ``ml-kem-768-x25519`` (32-byte X-Wing seed) or ``x25519``.

    Raises:
        UsageError: unknown algorithm.
    """
    if algorithm == "ml-kem-768-x25519":
        return HybridIdentity(os.urandom(32))
    if algorithm == "x25519":
        return X25519Identity(x25519.X25519PrivateKey.generate().private_bytes_raw())
    raise UsageError(f"unknown encryption algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")


def identity_file_text(identity: str, recipient: str, *, now: datetime | None = None) -> str:
    """The text of an identity file as age-keygen writes it (comments, then the identity line)."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"# created: {stamp}\n# public key: {recipient}\n{identity}\n"
