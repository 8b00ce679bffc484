"""Cross-checks both ways with two other implementations: pqcrypto 1.0.0 (Rust, PyPI wheel) and slh-dsa 0.2.5
(pure Python), and ML-DSA between liboqs and cryptography. Keys travel as the plugin's PKCS#8/SPKI."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa
from qsafe_liboqs import liboqs
from qsafe_liboqs.mldsa import ML_DSA_44, ML_DSA_65, ML_DSA_87
from qsafe_liboqs.schemes import SLH_DSA

from qsafe.signers import encode_pkcs8, encode_spki

MESSAGE, CONTEXT = b"PAE(application/vnd.in-toto+json, statement)", b"qsafe/v1 model-bundle dsse"
# 'f' sets sign in a fraction of a second; 's' sets take seconds on a loaded 2-core machine: one in the default
# suite, the rest in make test-slow.
FAST = ["slh-dsa-sha2-128f", "slh-dsa-shake-128f", "slh-dsa-sha2-192f", "slh-dsa-shake-192f", "slh-dsa-sha2-256f",
        "slh-dsa-shake-256f", "slh-dsa-sha2-128s"]
SLOW = sorted(set(SLH_DSA) - set(FAST))
CASES = [*FAST, *(pytest.param(n, marks=pytest.mark.slow) for n in SLOW)]


def _pqcrypto(name: str) -> object:
    import importlib

    return importlib.import_module("pqcrypto.sign." + name.replace("-", "_"))


@pytest.mark.parametrize("name", CASES)
def test_pqcrypto_both_ways(name: str) -> None:
    scheme, other = SLH_DSA[name], _pqcrypto(name)
    # pqcrypto signs, the plugin verifies (key imported from pqcrypto's raw bytes through SPKI/PKCS#8)
    pk, sk = other.keygen()  # type: ignore[attr-defined]
    public = scheme.public_from_spki(encode_spki(scheme.oid, bytes(pk)))
    signature = other.sign(sk, MESSAGE, context=CONTEXT)  # type: ignore[attr-defined]
    public.verify(bytes(signature), MESSAGE, CONTEXT)
    with pytest.raises(InvalidSignature):
        public.verify(bytes(signature), MESSAGE, b"another context")
    assert scheme.private_from_pkcs8(encode_pkcs8(scheme.oid, bytes(sk))).public().raw == bytes(pk)
    # the plugin signs, pqcrypto verifies
    key = scheme.generate()
    signature = key.sign(MESSAGE, CONTEXT)
    other.verify(key.public().raw, MESSAGE, signature, context=CONTEXT)  # type: ignore[attr-defined]
    import pqcrypto

    with pytest.raises(pqcrypto.InvalidSignatureError):
        other.verify(key.public().raw, MESSAGE + b"!", signature, context=CONTEXT)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["slh-dsa-sha2-128f", "slh-dsa-shake-128f"])
def test_deterministic_signatures_match_the_pure_python_implementation(name: str) -> None:
    """FIPS 205's deterministic variant (opt_rand = PK.seed): liboqs and slh-dsa write the same bytes."""
    import slhdsa

    scheme = SLH_DSA[name]
    key = scheme.generate()
    secret = key._secret
    params = getattr(slhdsa, name.removeprefix("slh-dsa-").replace("-", "_"))
    reference = slhdsa.SecretKey.from_digest(secret, params).sign_pure(MESSAGE, randomize=False, ctx=CONTEXT)
    pk_seed = secret[2 * (len(secret) // 4): 3 * (len(secret) // 4)]
    with liboqs.fixed_randomness(pk_seed):
        ours = key.sign(MESSAGE, CONTEXT)
    assert ours == reference
    assert slhdsa.PublicKey.from_digest(key.public().raw, params).verify_pure(MESSAGE, ours, CONTEXT)
    assert not slhdsa.PublicKey.from_digest(key.public().raw, params).verify_pure(MESSAGE, ours, b"other")


@pytest.mark.parametrize("scheme", [ML_DSA_44, ML_DSA_65, ML_DSA_87], ids=lambda s: s.name)
def test_mldsa_liboqs_and_cryptography_both_ways(scheme: object) -> None:
    from qsafe import keys

    seed = os.urandom(32)
    ours = scheme.private_from_pkcs8(_pkcs8(scheme, seed))  # type: ignore[attr-defined]
    theirs = scheme.private_cls.from_seed_bytes(seed)  # type: ignore[attr-defined]
    assert ours.public().raw == bytes(theirs.public_key().public_bytes_raw())  # one seed, one key
    assert ours.pkcs8_der() == _pkcs8(scheme, seed)
    # liboqs signs, cryptography verifies
    theirs.public_key().verify(ours.sign(MESSAGE, CONTEXT), MESSAGE, CONTEXT)
    # cryptography signs, liboqs verifies; a wrong context fails in both
    ours.public().verify(theirs.sign(MESSAGE, CONTEXT), MESSAGE, CONTEXT)
    with pytest.raises(InvalidSignature):
        ours.public().verify(theirs.sign(MESSAGE, CONTEXT), MESSAGE, b"x")
    with pytest.raises(InvalidSignature):
        theirs.public_key().verify(ours.sign(MESSAGE, b"x"), MESSAGE, CONTEXT)
    # and through qsafe's keys: a liboqs-held key signs what qsafe's built-in ML-DSA verifies
    private = keys.PrivateKey(scheme.name, ours)  # type: ignore[attr-defined]
    builtin = keys.public_key_from_der(private.public_key().to_der())
    builtin.verify(private.sign(MESSAGE, CONTEXT), MESSAGE, CONTEXT)


def _pkcs8(scheme: object, seed: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = scheme.private_cls.from_seed_bytes(seed)  # type: ignore[attr-defined]
    return bytes(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def test_mldsa_classes_match() -> None:
    assert ML_DSA_65.private_cls is mldsa.MLDSA65PrivateKey
