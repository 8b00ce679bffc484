"""Composite ML-DSA + Ed25519 vectors of draft-ietf-lamps-pq-composite-sigs-19 (lamps-wg/draft-composite-sigs)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from _vectors import load
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from qsafe import keys
from qsafe._crypto import composite, der
from qsafe.errors import SignatureError

DATA = load("composite/draft-ietf-lamps-pq-composite-sigs-19.json")
M, CTX = base64.b64decode(DATA["m"]), base64.b64decode(DATA["ctx"])
NAMES = {"id-MLDSA65-Ed25519-SHA512": "ml-dsa-65-ed25519", "id-MLDSA44-Ed25519-SHA512": "ml-dsa-44-ed25519"}
TESTS = DATA["tests"]


def _b(test: dict[str, Any], field: str) -> bytes:
    return base64.b64decode(test[field])


def _public(test: dict[str, Any]) -> keys.PublicKey:
    name = NAMES[test["tcId"]]
    return keys.PublicKey(name, composite.CompositePublicKey(composite.COMPOSITES[name], _b(test, "pk")))


def test_vector_count() -> None:
    assert sorted(t["tcId"] for t in TESTS) == sorted(NAMES)


@pytest.mark.parametrize("test", TESTS, ids=lambda t: t["tcId"])
def test_verify_given_signatures(test: dict[str, Any]) -> None:
    public = _public(test)
    public.verify(_b(test, "s"), M, b"")
    public.verify(_b(test, "sWithContext"), M, CTX)
    with pytest.raises(SignatureError):
        public.verify(_b(test, "s"), M, CTX)  # the context is bound
    with pytest.raises(SignatureError):
        public.verify(_b(test, "sWithContext"), M + b"!", CTX)


@pytest.mark.parametrize("test", TESTS, ids=lambda t: t["tcId"])
def test_private_key_encodings(test: dict[str, Any]) -> None:
    pem = der.pem_encode("PRIVATE KEY", _b(test, "sk_pkcs8"))
    private = keys.private_key_from_pem(pem)
    assert private.algorithm == NAMES[test["tcId"]]
    assert private._key.raw == _b(test, "sk")
    assert der.pem_blocks(private.to_pem()) == [("PRIVATE KEY", _b(test, "sk_pkcs8"))]  # byte-identical DER
    assert private.public_key().to_der() == _public(test).to_der()
    signature = private.sign(M, CTX)  # a fresh signature verifies with the given key
    _public(test).verify(signature, M, CTX)


@pytest.mark.parametrize("test", TESTS, ids=lambda t: t["tcId"])
def test_self_signed_certificate(test: dict[str, Any]) -> None:
    """The x5c certificate's SPKI is ours byte for byte, and its self-signature verifies (ctx empty)."""
    cert_der = _b(test, "x5c")
    cert = x509.load_der_x509_certificate(cert_der)
    public = _public(test)
    assert public.to_der() in cert.tbs_certificate_bytes
    assert cert.signature_algorithm_oid.dotted_string == composite.COMPOSITES[public.algorithm].oid
    assert keys.public_key_from_der(public.to_der()).key_id == public.key_id
    public.verify(cert.signature, cert.tbs_certificate_bytes, b"")


@pytest.mark.parametrize("test", TESTS, ids=lambda t: t["tcId"])
def test_both_halves_required(test: dict[str, Any]) -> None:
    params = composite.COMPOSITES[NAMES[test["tcId"]]]
    public, sig = _public(test), _b(test, "sWithContext")
    mldsa_sig, ed_sig = sig[:params.mldsa_sig_len], sig[params.mldsa_sig_len:]
    assert len(ed_sig) == 64
    for forged in (mldsa_sig, ed_sig, mldsa_sig + bytes(64), bytes(params.mldsa_sig_len) + ed_sig, ed_sig + mldsa_sig):
        with pytest.raises(SignatureError):
            public.verify(forged, M, CTX)
    # The Ed25519 half is a valid Ed25519 signature over M' (as the draft says) ...
    m_prime = params.message_representative(M, CTX)
    ed25519.Ed25519PublicKey.from_public_bytes(_b(test, "pk")[params.mldsa_pk_len:]).verify(ed_sig, m_prime)
    # ... but it is not accepted alone, and the ML-DSA half does not verify as plain ML-DSA over M or M'.
    mldsa_pk = keys.public_key_from_der(der.encode_spki(
        {1312: "2.16.840.1.101.3.4.3.17", 1952: "2.16.840.1.101.3.4.3.18"}[params.mldsa_pk_len],
        _b(test, "pk")[:params.mldsa_pk_len]))
    for message, ctx in ((M, CTX), (M, b""), (m_prime, b"")):
        with pytest.raises(SignatureError):
            mldsa_pk.verify(mldsa_sig, message, ctx)
    mldsa_pk.verify(mldsa_sig, m_prime, params.label)  # only with the composite Label as context
