"""Composite ML-DSA + SLH-DSA: both halves are required; neither can be stripped, swapped or reused alone."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from qsafe_liboqs.dual import MLDSA65_SLHDSA_SHA2_128S as DUAL

from qsafe import keys
from qsafe.errors import SignatureError

MESSAGE, CONTEXT = b"release statement", b"qsafe/v1 model-bundle dsse"


@pytest.fixture(scope="module")
def pair() -> tuple[keys.PrivateKey, keys.PrivateKey]:
    return keys.generate(DUAL.name), keys.generate(DUAL.name)


def test_both_halves_required(pair: tuple[keys.PrivateKey, keys.PrivateKey]) -> None:
    key, other = pair
    signature = key.sign(MESSAGE, CONTEXT)
    assert len(signature) == DUAL.mldsa_sig_len + DUAL.slh_sig_len
    public = key.public_key()
    public.verify(signature, MESSAGE, CONTEXT)
    ml, slh = signature[:DUAL.mldsa_sig_len], signature[DUAL.mldsa_sig_len:]
    other_sig = other.sign(MESSAGE, CONTEXT)
    for forged in (ml, slh, ml + other_sig[DUAL.mldsa_sig_len:], other_sig[:DUAL.mldsa_sig_len] + slh,
                   ml + bytes(len(slh)), signature[:-1], signature + b"\0"):
        with pytest.raises(SignatureError):
            public.verify(forged, MESSAGE, CONTEXT)
    with pytest.raises(SignatureError):
        public.verify(signature, MESSAGE, b"another use")


def test_a_half_is_not_a_plain_signature(pair: tuple[keys.PrivateKey, keys.PrivateKey]) -> None:
    """The ML-DSA half signs M' under the composite Label: it does not verify as ML-DSA-65 over the message."""
    key, _ = pair
    signature = key.sign(MESSAGE, CONTEXT)
    mldsa_public = key.public_key()._key._mldsa
    with pytest.raises(InvalidSignature):
        mldsa_public.verify(signature[:DUAL.mldsa_sig_len], MESSAGE, CONTEXT)
    mldsa_public.verify(signature[:DUAL.mldsa_sig_len], DUAL.message_representative(MESSAGE, CONTEXT), DUAL.label)
