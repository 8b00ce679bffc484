"""The Python API end to end: encrypt, aggregate with refusals, decrypt within the documented error bound."""

from __future__ import annotations

import numpy as np
import pytest

from qsafe import keys
from qsafe.errors import HEMismatchError, IntegrityError, InvalidInputError, KeyFileError, UsageError
from qsafe.federated import (
    EncryptedAggregate,
    EncryptedUpdate,
    HEContext,
    aggregate,
    decrypt_aggregate,
    encrypt_update,
)

from .conftest import make_update


def _round_trip(ctx_s: HEContext, ctx_p: HEContext, ks: list[keys.PrivateKey], seed: int) -> None:
    rng = np.random.default_rng(seed)
    plain = [make_update(rng) for _ in ks]
    wire = [encrypt_update(u, ctx_p, k, 3).to_bytes() for u, k in zip(plain, ks)]
    result = aggregate([EncryptedUpdate.from_bytes(w) for w in wire], ctx_p, [k.public_key() for k in ks], 3)
    assert result.refused == [] and len(result.accepted) == len(ks)
    assert result.aggregate is not None
    agg = EncryptedAggregate.from_bytes(result.aggregate.to_bytes())
    sums = decrypt_aggregate(agg, ctx_s, average=False)
    means = decrypt_aggregate(agg, ctx_s)
    bound = ctx_s.params.error_bound(len(ks))
    for name, tensor in plain[0].items():
        expected = sum(p[name].astype(np.float64) for p in plain)
        assert sums[name].dtype == tensor.dtype and sums[name].shape == tensor.shape
        # float16 outputs add their own rounding of the result; the HE sum itself is within `bound`.
        slack = float(np.finfo(tensor.dtype).eps) * np.abs(expected).max() if tensor.dtype != np.float64 else 0.0
        assert np.abs(sums[name].astype(np.float64) - expected).max() <= bound + slack
        assert np.abs(means[name].astype(np.float64) - expected / len(ks)).max() <= bound / len(ks) + slack


def test_two_and_four_clients_match_plaintext_sums(secret_ctx: HEContext, public_ctx: HEContext,
                                                   client_keys: list[keys.PrivateKey]) -> None:
    _round_trip(secret_ctx, public_ctx, client_keys[:2], 1)
    _round_trip(secret_ctx, public_ctx, client_keys, 2)


def test_ckks_option_round_trips_approximately(client_keys: list[keys.PrivateKey]) -> None:
    ctx = HEContext.generate("ckks")
    rng = np.random.default_rng(5)
    plain = [{"w": rng.uniform(-1, 1, 5000)} for _ in range(3)]
    ups = [encrypt_update(p, ctx.public(), k, 0) for p, k in zip(plain, client_keys)]
    result = aggregate(ups, ctx.public(), [k.public_key() for k in client_keys], 0)
    assert result.aggregate is not None
    out = decrypt_aggregate(result.aggregate, ctx)
    assert np.abs(out["w"] - sum(p["w"] for p in plain) / 3).max() < 1e-4


def test_public_context_holds_no_secret(secret_ctx: HEContext, public_ctx: HEContext) -> None:
    assert not public_ctx.has_secret and secret_ctx.has_secret
    assert public_ctx.fingerprint == secret_ctx.fingerprint
    ts_ctx = public_ctx.tenseal_public()
    assert ts_ctx.is_public() and not ts_ctx.has_secret_key() and not ts_ctx.has_galois_keys()
    assert not ts_ctx.has_relin_keys()
    with pytest.raises(KeyFileError):
        public_ctx.secret_bytes()
    with pytest.raises(KeyFileError):
        public_ctx.tenseal_secret()


def test_refusals_are_reported_and_the_rest_aggregate(secret_ctx: HEContext, public_ctx: HEContext,
                                                      client_keys: list[keys.PrivateKey]) -> None:
    rng = np.random.default_rng(9)
    a, b, c, stranger = client_keys[0], client_keys[1], client_keys[2], keys.generate()
    other_ctx = HEContext.generate().public()
    good_a = encrypt_update(make_update(rng), public_ctx, a, 4)
    good_b = encrypt_update(make_update(rng), public_ctx, b, 4)
    wrong_round = encrypt_update(make_update(rng), public_ctx, c, 5)
    wrong_ctx = encrypt_update(make_update(rng), other_ctx, c, 4)
    unknown = encrypt_update(make_update(rng), public_ctx, stranger, 4)
    second_from_a = encrypt_update(make_update(rng), public_ctx, a, 4)
    forged = EncryptedUpdate(good_b.header_bytes, good_b.header, good_b.ciphertexts,
                             bytes([good_b.signature[0] ^ 1]) + good_b.signature[1:])
    swapped = EncryptedUpdate(good_b.header_bytes, good_b.header, good_a.ciphertexts, good_b.signature)
    allow = [k.public_key() for k in (a, b, c)]
    items = [good_a, wrong_round, wrong_ctx, unknown, forged, swapped, good_a, second_from_a, good_b]
    result = aggregate(items, public_ctx, allow, 4)
    reasons = [r.reason for r in result.refused]
    assert [r.error.__class__ for r in result.refused] == [HEMismatchError] * 7
    for expected, got in zip(["wrong round", "wrong context", "unknown client", "bad signature",
                              "does not match its signed digest", "replay: nonce", "replay: client"], reasons):
        assert expected in got
    assert [x["client_key_id"] for x in result.accepted] == [a.public_key().key_id, b.public_key().key_id]
    assert result.aggregate is not None and result.aggregate.count == 2


def test_nothing_accepted_gives_no_aggregate(public_ctx: HEContext, client_keys: list[keys.PrivateKey]) -> None:
    up = encrypt_update(make_update(np.random.default_rng(0)), public_ctx, client_keys[0], 1)
    result = aggregate([up], public_ctx, [client_keys[1].public_key()], 1)
    assert result.aggregate is None and len(result.refused) == 1
    with pytest.raises(UsageError):
        aggregate([up], public_ctx, [], 1)


def test_client_refuses_bad_values(public_ctx: HEContext, client_keys: list[keys.PrivateKey]) -> None:
    key = client_keys[0]
    with pytest.raises(InvalidInputError, match="NaN/Inf"):
        encrypt_update({"w": np.array([0.1, np.nan], np.float32)}, public_ctx, key, 0)
    with pytest.raises(InvalidInputError, match="clip bound"):
        encrypt_update({"w": np.array([0.1, -1.01], np.float32)}, public_ctx, key, 0)
    with pytest.raises(InvalidInputError):
        encrypt_update({"w": np.array([0.1], np.float32)}, public_ctx, key, -1)


def test_decrypt_checks_context_count_and_digests(secret_ctx: HEContext, public_ctx: HEContext,
                                                  client_keys: list[keys.PrivateKey]) -> None:
    rng = np.random.default_rng(3)
    ups = [encrypt_update(make_update(rng), public_ctx, k, 2) for k in client_keys[:2]]
    result = aggregate(ups[:1], public_ctx, [k.public_key() for k in client_keys], 2)
    assert result.aggregate is not None
    with pytest.raises(HEMismatchError, match="fewer than the minimum"):
        decrypt_aggregate(result.aggregate, secret_ctx)
    assert decrypt_aggregate(result.aggregate, secret_ctx, min_clients=1)["head"].shape == (2, 3)
    with pytest.raises(HEMismatchError, match="wrong context"):
        decrypt_aggregate(result.aggregate, HEContext.generate(), min_clients=1)
    with pytest.raises(KeyFileError):
        decrypt_aggregate(result.aggregate, public_ctx, min_clients=1)
    agg = result.aggregate
    bad = EncryptedAggregate(agg.header_bytes, agg.header, (agg.ciphertexts[0][:-1] + bytes([agg.ciphertexts[0][-1] ^ 1]),))
    with pytest.raises(IntegrityError):
        decrypt_aggregate(bad, secret_ctx, min_clients=1)


def test_key_authority_recomputes_the_aggregate(secret_ctx: HEContext, public_ctx: HEContext,
                                                client_keys: list[keys.PrivateKey]) -> None:
    from qsafe.federated import verify_aggregate

    rng = np.random.default_rng(21)
    ups = [encrypt_update(make_update(rng), public_ctx, k, 6) for k in client_keys[:3]]
    allow = [k.public_key() for k in client_keys]
    honest = aggregate(ups, public_ctx, allow, 6).aggregate
    assert honest is not None
    verify_aggregate(honest, list(reversed(ups)) + [ups[0]], secret_ctx, allow)  # order and extras do not matter
    with pytest.raises(HEMismatchError, match="were not given"):
        verify_aggregate(honest, ups[:2], secret_ctx, allow)
    # A dishonest aggregator passes one client's ciphertexts off as the sum of three.
    lone = aggregate(ups[:1], public_ctx, allow, 6).aggregate
    assert lone is not None
    forged_header = {**lone.header, "count": 3, "contributors": honest.header["contributors"]}
    forged = EncryptedAggregate(lone.header_bytes, forged_header, lone.ciphertexts)
    with pytest.raises(HEMismatchError, match="not the sum"):
        verify_aggregate(forged, ups, secret_ctx, allow)
    with pytest.raises(HEMismatchError, match="refuses"):
        verify_aggregate(honest, ups, secret_ctx, allow[1:])


def test_the_aggregation_outcome_has_its_own_name() -> None:
    """aggregate() returns an AggregationOutcome; the defenses' Strategy returns an AggregateResult. The old name
    of the former still imports, with a deprecation warning."""
    import qsafe.federated as fed
    from qsafe.federated.defenses import AggregateResult

    assert fed.AggregationOutcome is not AggregateResult
    with pytest.warns(DeprecationWarning, match="AggregationOutcome"):
        assert fed.AggregateResult is fed.AggregationOutcome
