"""Tamper properties: every flipped, truncated or extended byte of an update or aggregate is refused with a
specific error class, and nothing is added to the sum."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsafe import keys
from qsafe.errors import FormatError, HEMismatchError, IntegrityError
from qsafe.federated import EncryptedAggregate, EncryptedUpdate, HEContext, aggregate, decrypt_aggregate, encrypt_update


@functools.lru_cache(maxsize=1)
def _world() -> tuple[HEContext, HEContext, keys.PrivateKey, bytes]:
    secret = HEContext.generate()
    public = secret.public()
    key = keys.generate()
    update = encrypt_update({"w": np.linspace(-1, 1, 3000)}, public, key, 0)
    return secret, public, key, update.to_bytes()


def _regions(data: bytes) -> tuple[int, int, int]:
    """(header end, signature start, end) of an update container."""
    header_len = int.from_bytes(data[19:23], "big")
    sig_len = int.from_bytes(data[-3309 - 4:-3309], "big")
    assert sig_len == 3309  # ML-DSA-65
    return 23 + header_len, len(data) - 3309, len(data)


def _refusal(data: bytes) -> Exception:
    """The error the aggregator reports for ``data`` (parsing is part of aggregation)."""
    _, public, key, _ = _world()
    try:
        update = EncryptedUpdate.from_bytes(data)
    except FormatError as err:
        return err
    result = aggregate([update], public, [key.public_key()], 0)
    assert result.aggregate is None and len(result.refused) == 1
    return result.refused[0].error


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_truncated_or_extended_updates_are_format_errors(data: st.DataObject) -> None:
    wire = _world()[3]
    cut = data.draw(st.integers(0, len(wire) - 1))
    extra = data.draw(st.binary(min_size=1, max_size=8))
    for bad in (wire[:cut], wire + extra):
        with pytest.raises(FormatError):
            EncryptedUpdate.from_bytes(bad)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_flipped_bytes_are_refused_with_the_specific_error(data: st.DataObject) -> None:
    wire = _world()[3]
    header_end, sig_start, end = _regions(wire)
    region = data.draw(st.sampled_from(["header", "ciphertext", "signature"]))
    lo, hi = {"header": (23, header_end), "ciphertext": (header_end + 4 + 8, sig_start - 4),
              "signature": (sig_start, end)}[region]
    pos = data.draw(st.integers(lo, hi - 1))
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(wire)
    bad[pos] ^= 1 << bit
    err = _refusal(bytes(bad))
    if region == "ciphertext":
        assert isinstance(err, HEMismatchError) and "signed digest" in str(err)
    elif region == "signature":
        assert isinstance(err, HEMismatchError) and "bad signature" in str(err)
    else:
        assert isinstance(err, (FormatError, HEMismatchError))


def test_untampered_update_is_accepted() -> None:
    _, public, key, wire = _world()
    result = aggregate([EncryptedUpdate.from_bytes(wire)], public, [key.public_key()], 0)
    assert result.refused == [] and result.aggregate is not None


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_tampered_aggregate_is_refused(data: st.DataObject) -> None:
    secret, public, key, wire = _world()
    agg = aggregate([EncryptedUpdate.from_bytes(wire)], public, [key.public_key()], 0).aggregate
    assert agg is not None
    blob = agg.to_bytes()
    pos = data.draw(st.integers(len(blob) - len(agg.ciphertexts[-1]) - 4, len(blob) - 5))
    bad = bytearray(blob)
    bad[pos] ^= 0x10
    parsed = EncryptedAggregate.from_bytes(bytes(bad))
    with pytest.raises(IntegrityError):
        decrypt_aggregate(parsed, secret, min_clients=1)


def test_signed_ciphertext_with_out_of_range_coefficients_is_refused() -> None:
    """A client signs a ciphertext whose coefficient is not below its prime: refused, the sum is untouched."""
    from qsafe._he import container
    from qsafe._labels import FL_UPDATE_MAGIC, MLDSA_CONTEXT_FL_UPDATE

    _, public, key, wire = _world()
    update = EncryptedUpdate.from_bytes(wire)
    blob = b"\xff" * 5 + update.ciphertexts[0][5:]  # the first 40-bit coefficient = 2**40 - 1 > prime
    header = {**update.header, "ciphertext_sha256": [container.sha256_hex(blob)]}
    header_bytes = container.canonical_json(header)
    forged = EncryptedUpdate(header_bytes, header, (blob,),
                             key.sign(FL_UPDATE_MAGIC + header_bytes, MLDSA_CONTEXT_FL_UPDATE))
    result = aggregate([EncryptedUpdate.from_bytes(forged.to_bytes())], public, [key.public_key()], 0)
    assert result.aggregate is None
    assert isinstance(result.refused[0].error, HEMismatchError) and "outside its modulus" in result.refused[0].reason


@pytest.mark.parametrize("change", [
    {"contributors": [{"client_key_id": 1, "nonce": "x", "update_sha256": "y"}]},
    {"contributors": ["not a dict"]},
    {"count": 2},
    {"ciphertext_sha256": ["00"]},
    {"kind": "update"},
    {"scheme": {"name": "bfv-packed"}},
    {"tensors": []},
])
def test_malformed_aggregate_headers_are_format_errors(change: dict) -> None:
    from qsafe._he import container
    from qsafe._labels import FL_AGGREGATE_MAGIC

    _, public, key, wire = _world()
    agg = aggregate([EncryptedUpdate.from_bytes(wire)], public, [key.public_key()], 0).aggregate
    assert agg is not None
    header = {**agg.header, **change}
    data = container.encode(FL_AGGREGATE_MAGIC, container.canonical_json(header), agg.ciphertexts)
    with pytest.raises(FormatError):
        EncryptedAggregate.from_bytes(data)
