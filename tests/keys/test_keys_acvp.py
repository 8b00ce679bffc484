"""NIST ACVP ML-DSA keyGen and sigVer (ACVP-Server v1.1.0.35, internal interface).

How each is checked (cryptography 50 exposes no ``*_internal`` entry points):
- keyGen: ``from_seed_bytes(seed)`` in cryptography must give the expected public key, and our PKCS#8 seed form
  must round-trip it; the expected *expanded* secret key (cryptography never exports it) is checked with
  dilithium-py's ``_keygen_internal(seed)``.
- sigVer: the vectors' ``message`` is M' (already context-formatted), so cryptography checks it through the
  external-mu path: mu = SHAKE256(SHAKE256(pk, 64) || M', 64), then ``verify_mu``. dilithium-py's
  ``_verify_internal`` gives the same verdict (cross-check of the internal layer).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from _vectors import acvp_cases
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa
from dilithium_py.ml_dsa import ML_DSA_44, ML_DSA_65, ML_DSA_87

from qsafe import keys

CRYPTOGRAPHY = {"ML-DSA-44": mldsa.MLDSA44PrivateKey, "ML-DSA-65": mldsa.MLDSA65PrivateKey,
                "ML-DSA-87": mldsa.MLDSA87PrivateKey}
PUBLIC = {"ML-DSA-44": mldsa.MLDSA44PublicKey, "ML-DSA-65": mldsa.MLDSA65PublicKey,
          "ML-DSA-87": mldsa.MLDSA87PublicKey}
DILITHIUM = {"ML-DSA-44": ML_DSA_44, "ML-DSA-65": ML_DSA_65, "ML-DSA-87": ML_DSA_87}

KEYGEN = acvp_cases("acvp/ML-DSA-keyGen-FIPS204.json")
SIGVER = acvp_cases("acvp/ML-DSA-sigVer-FIPS204.json")


def _id(case: tuple[dict[str, Any], dict[str, Any]]) -> str:
    return f"{case[0]['parameterSet']}-tc{case[1]['tcId']}"


def test_vector_counts() -> None:
    assert len(KEYGEN) == 16
    assert len(SIGVER) == 25
    assert len(SIGGEN) == 6 and {g["deterministic"] for g, _ in SIGGEN} == {True, False}
    assert {t["testPassed"] for _, t in SIGVER} == {True, False}  # both verdicts are exercised


@pytest.mark.parametrize("case", KEYGEN, ids=_id)
def test_acvp_keygen(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    group, test = case
    seed, pk, sk = (bytes.fromhex(test[k]) for k in ("seed", "pk", "sk"))
    key = CRYPTOGRAPHY[group["parameterSet"]].from_seed_bytes(seed)
    assert key.public_key().public_bytes_raw() == pk
    # Our key file form keeps exactly the seed and reproduces the same key.
    ours = keys.private_key_from_pem(keys.PrivateKey(group["parameterSet"].lower(), key).to_pem())
    assert ours.public_key().to_der() == keys.PrivateKey(group["parameterSet"].lower(), key).public_key().to_der()
    assert ours.algorithm == group["parameterSet"].lower()
    ref_pk, ref_sk = DILITHIUM[group["parameterSet"]]._keygen_internal(seed)
    assert (ref_pk, ref_sk) == (pk, sk)


def _mu(pk: bytes, m_prime: bytes) -> bytes:
    tr = hashlib.shake_256(pk).digest(64)
    return hashlib.shake_256(tr + m_prime).digest(64)


@pytest.mark.parametrize("case", SIGVER, ids=_id)
def test_acvp_sigver(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    group, test = case
    pk, m_prime, sig = bytes.fromhex(group["pk"]), bytes.fromhex(test["message"]), bytes.fromhex(test["signature"])
    public = PUBLIC[group["parameterSet"]].from_public_bytes(pk)
    try:
        public.verify_mu(sig, _mu(pk, m_prime))
        verdict = True
    except InvalidSignature:
        verdict = False
    assert verdict is test["testPassed"], test["reason"]
    assert DILITHIUM[group["parameterSet"]]._verify_internal(pk, m_prime, sig) is test["testPassed"]


SIGGEN = acvp_cases("acvp/ML-DSA-sigGen-FIPS204.json")


@pytest.mark.parametrize("case", SIGGEN, ids=_id)
def test_acvp_siggen(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """sigGen (internal, M' given): cryptography signs only hedged, with its own randomness, so the expected
    signature is reproduced by dilithium-py's ``_sign_internal(sk, M', rnd)`` (rnd = 0^32 when deterministic), and
    cryptography verifies that expected signature through the external-mu path."""
    group, test = case
    reference = DILITHIUM[group["parameterSet"]]
    sk, m_prime, expected = (bytes.fromhex(test[k]) for k in ("sk", "message", "signature"))
    rnd = bytes(32) if group["deterministic"] else bytes.fromhex(test["rnd"])
    assert reference._sign_internal(sk, m_prime, rnd) == expected
    pk = reference.pk_from_sk(sk)
    PUBLIC[group["parameterSet"]].from_public_bytes(pk).verify_mu(expected, _mu(pk, m_prime))
    with pytest.raises(InvalidSignature):
        PUBLIC[group["parameterSet"]].from_public_bytes(pk).verify_mu(expected, _mu(pk, m_prime + b"\x00"))
