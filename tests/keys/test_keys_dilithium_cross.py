"""Cross-checks with dilithium-py (pure-Python FIPS 204 reference) both ways, with context strings.

Keys travel as the 32-byte seed (FIPS 204 KeyGen_internal input), the same form qsafe stores: cryptography and
dilithium-py must expand it to the same public key, then each verifies the other's signatures.
"""

from __future__ import annotations

import pytest
from dilithium_py.ml_dsa import ML_DSA_44, ML_DSA_65, ML_DSA_87

from qsafe import keys
from qsafe._labels import MLDSA_CONTEXT_MODEL_BUNDLE
from qsafe.errors import SignatureError

REFERENCE = {"ml-dsa-44": ML_DSA_44, "ml-dsa-65": ML_DSA_65, "ml-dsa-87": ML_DSA_87}
CONTEXTS = [b"", MLDSA_CONTEXT_MODEL_BUNDLE, bytes(range(255))]
MESSAGE = b"qsafe cross-check: \x00\xff" * 7


def _pair(algorithm: str) -> tuple[keys.PrivateKey, bytes, bytes]:
    private = keys.generate(algorithm)
    seed = private._key.key.private_bytes_raw()
    ref_pk, ref_sk = REFERENCE[algorithm].key_derive(seed)
    assert private.public_key()._key.key.public_bytes_raw() == ref_pk
    return private, ref_pk, ref_sk


@pytest.mark.parametrize("algorithm", sorted(REFERENCE))
@pytest.mark.parametrize("context", CONTEXTS, ids=["empty", "qsafe-label", "255-bytes"])
def test_cryptography_signs_dilithium_verifies(algorithm: str, context: bytes) -> None:
    private, ref_pk, _ = _pair(algorithm)
    signature = private.sign(MESSAGE, context)
    assert REFERENCE[algorithm].verify(ref_pk, MESSAGE, signature, context) is True
    other = context[:-1] if context else b"x"
    assert REFERENCE[algorithm].verify(ref_pk, MESSAGE, signature, other) is False
    assert REFERENCE[algorithm].verify(ref_pk, MESSAGE + b".", signature, context) is False


@pytest.mark.parametrize("algorithm", sorted(REFERENCE))
@pytest.mark.parametrize("context", CONTEXTS, ids=["empty", "qsafe-label", "255-bytes"])
def test_dilithium_signs_qsafe_verifies(algorithm: str, context: bytes) -> None:
    private, _, ref_sk = _pair(algorithm)
    public = private.public_key()
    for deterministic in (True, False):
        signature = REFERENCE[algorithm].sign(ref_sk, MESSAGE, context, deterministic=deterministic)
        public.verify(signature, MESSAGE, context)
        with pytest.raises(SignatureError):
            public.verify(signature, MESSAGE + b".", context)
    with pytest.raises(SignatureError):
        public.verify(signature, MESSAGE, b"other context")
