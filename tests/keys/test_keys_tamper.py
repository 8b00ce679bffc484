"""Property tests: any change to a signature is a SignatureError; any byte string given as a key is a key or a
KeyFileError, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qsafe import keys
from qsafe._crypto import der
from qsafe.errors import KeyFileError, SignatureError

MSG, CTX = b"DSSEv1 payload bytes", b"qsafe/v1 model-bundle dsse"
KEYS = {a: keys.generate(a) for a in ("ml-dsa-44", "ml-dsa-65-ed25519", "ecdsa-p256")}
SIGS = {a: k.sign(MSG, CTX) for a, k in KEYS.items()}
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def _mutation(draw: st.DrawFn, original: bytes) -> bytes:
    kind = draw(st.sampled_from(["flip", "truncate", "append", "swap"]))
    if kind == "flip":
        i = draw(st.integers(0, len(original) - 1))
        bit = 1 << draw(st.integers(0, 7))
        return original[:i] + bytes([original[i] ^ bit]) + original[i + 1:]
    if kind == "truncate":
        return original[:draw(st.integers(0, len(original) - 1))]
    if kind == "append":
        return original + draw(st.binary(min_size=1, max_size=16))
    i = draw(st.integers(1, len(original) - 1))
    swapped = original[i:] + original[:i]
    return swapped if swapped != original else original[:-1]


@pytest.mark.parametrize("algorithm", sorted(KEYS))
@FAST
@given(data=st.data())
def test_tampered_signature_is_rejected(algorithm: str, data: st.DataObject) -> None:
    tampered = data.draw(_mutation(SIGS[algorithm]))
    with pytest.raises(SignatureError):
        KEYS[algorithm].public_key().verify(tampered, MSG, CTX)


@pytest.mark.parametrize("algorithm", sorted(KEYS))
@FAST
@given(data=st.data())
def test_mutated_public_key_der_is_a_key_or_key_file_error(algorithm: str, data: st.DataObject) -> None:
    mutated = data.draw(_mutation(KEYS[algorithm].public_key().to_der()))
    try:
        public = keys.public_key_from_der(mutated)
    except KeyFileError:
        return
    with pytest.raises(SignatureError):  # a different key never accepts the original signature
        public.verify(SIGS[algorithm], MSG, CTX)


@pytest.mark.parametrize("algorithm", sorted(KEYS))
@FAST
@given(data=st.data())
def test_mutated_private_key_is_a_key_or_key_file_error(algorithm: str, data: st.DataObject) -> None:
    (_, pkcs8), = der.pem_blocks(KEYS[algorithm].to_pem())
    mutated = data.draw(_mutation(pkcs8))
    try:
        keys.private_key_from_pem(der.pem_encode("PRIVATE KEY", mutated))
    except KeyFileError:
        pass


@FAST
@given(blob=st.binary(max_size=200))
def test_random_bytes_are_never_a_crash(blob: bytes) -> None:
    for parse in (keys.public_key_from_der,
                  lambda b: keys.public_key_from_pem(der.pem_encode("PUBLIC KEY", b)),
                  lambda b: keys.private_key_from_pem(der.pem_encode("PRIVATE KEY", b))):
        with pytest.raises(KeyFileError):
            parse(blob)
