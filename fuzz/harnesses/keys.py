"""Key files: PKCS#8 / SEC1 private keys and SPKI public keys (ML-DSA, composite ML-DSA+Ed25519/ECDSA, ECDSA,
Ed25519), as PEM and as DER, allowlists of concatenated PEMs, and age identities / recipients.

Passphrase-protected key files are age files: the age harness covers them.
"""

from __future__ import annotations

from fuzz._common import memfile
from qsafe._age._keys import parse_identities, parse_recipients
from qsafe._crypto import algorithms as _alg
from qsafe._crypto import der as _der
from qsafe.errors import QsafeError
from qsafe.keys import (
    load_public_keys,
    private_key_from_der,
    private_key_from_pem,
    public_key_from_der,
    public_key_from_pem,
)


def _each(*calls: object) -> None:
    """Run every call; a QsafeError stops only its own call."""
    for call in calls:
        try:
            call()  # type: ignore[operator]
        except QsafeError:
            pass


def _public(data: bytes) -> None:
    key = public_key_from_pem(data)
    key.key_id, key.to_pem(), key.description, key.key_details, key.model_signing_hint


def _private(data: bytes) -> None:
    key = private_key_from_pem(data)
    key.public_key().to_pem()


def _allowlist(data: bytes) -> None:
    with memfile(data, "keys.pub") as path:
        load_public_keys(path)


def _text(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    _each(lambda: parse_identities(text), lambda: parse_recipients(text))


def test_one_input(data: bytes) -> None:
    _each(lambda: _public(data), lambda: _private(data), lambda: _allowlist(data), lambda: _text(data),
          lambda: public_key_from_der(data), lambda: private_key_from_der(data),
          lambda: _alg.private_from_sec1(data), lambda: _der.algorithm_oid_der(data, private=False),
          lambda: _der.algorithm_oid_der(data, private=True))
