"""BFV parameter sets: v2 (sized to max_clients) is secure, sums exactly at its limit and refuses beyond it;
v1 files made by earlier releases still parse, verify, aggregate byte for byte and decrypt."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from qsafe import keys
from qsafe._he import cipher, container
from qsafe._he import params as hp
from qsafe._labels import FL_CONTEXT_MAGIC
from qsafe.errors import FormatError, HEMismatchError, UsageError
from qsafe.federated import EncryptedAggregate, EncryptedUpdate, HEContext, aggregate, decrypt_aggregate, encrypt_update

V1 = Path(__file__).parent / "data" / "v1"
FIXTURE_FINGERPRINT = "sha256:1aeb1d9beff352eec9d0819c85b0b237eb8226dde1776a11e87bac3c530727b1"


def _seal() -> object:
    from qsafe._he import sealio

    return sealio.seal_module()


# --- security ----------------------------------------------------------------------------------------------------

def test_every_v2_parameter_set_is_within_the_he_standard_and_cannot_overflow() -> None:
    seal = _seal()
    classical = seal.CoeffModulus.MaxBitCount(4096, seal.SEC_LEVEL_TYPE.TC128)  # type: ignore[attr-defined]
    assert classical == hp.HE_STD_128_CLASSICAL_BITS == 109 and hp.HE_STD_128_QUANTUM_BITS == 101
    chains = set()
    for quant_bits in (8, 12, 18):
        for clients in [*range(2, 40), 64, 100, 179, 180, 181, 182, 500, 1023, 1024]:
            try:
                p = hp.bfv_packed(max_clients=clients, quant_bits=quant_bits)
            except UsageError:
                assert quant_bits != 18  # the default quantization fits every client count up to 1024
                continue
            chains.add(p.coeff_mod_bit_sizes)
            assert p.params_version == 2 and not p.batching
            assert sum(p.coeff_mod_bit_sizes) <= hp.HE_STD_128_QUANTUM_BITS
            # the extreme sum (every client at +clip or -clip in both lanes) is below t/2: no wrap-around
            extreme = clients * p.quant_max * (2**p.lane_bits + 1)
            assert 2 * extreme < p.plain_modulus < 2**60
            assert clients * p.quant_max < 2 ** (p.lane_bits - 1)  # the low lane never carries into the high one
            noise = hp.bfv_noise(p)
            assert noise.budget_bits >= 1.0 and noise.total_modulus_bits == sum(p.coeff_mod_bit_sizes)
    assert len(chains) >= 5
    # the v1 set uses the classical limit exactly
    assert sum(hp.bfv_packed(params_version=1).coeff_mod_bit_sizes) == hp.HE_STD_128_CLASSICAL_BITS


def test_pure_python_primes_are_seals_own() -> None:
    seal = _seal()
    for chain in [(60, 41), (56, 45), (32, 32, 37), (40, 32, 29), (40, 40, 21), (40, 40, 29), (60, 40, 40, 60)]:
        for degree in (4096, 8192):
            want = tuple(int(m.value()) for m in seal.CoeffModulus.Create(degree, list(chain)))  # type: ignore
            assert hp.seal_primes(degree, chain) == want, (degree, chain)


def test_insecure_or_altered_parameters_are_refused() -> None:
    good = hp.bfv_packed(max_clients=10).to_json()
    assert good["params_version"] == 2 and hp.params_from_json(good) == hp.bfv_packed(max_clients=10)
    altered = {
        "coefficient modulus beyond the standard": {**good, "coeff_mod_bit_sizes": [60, 50]},
        "smaller data modulus (noise overflow)": {**good, "coeff_mod_bit_sizes": [56, 45]},
        "larger plain modulus": {**good, "plain_modulus": good["plain_modulus"] * 2 + 1},
        "lanes too narrow": {**good, "lane_bits": good["lane_bits"] - 1},
        "another degree": {**good, "poly_modulus_degree": 2048},
        "unknown version": {**good, "params_version": 3},
        "version as bool": {**good, "params_version": True},
        "version 1 spelled out": {**hp.bfv_packed(params_version=1).to_json(), "params_version": 1},
        "v1 moduli under v2": {**hp.bfv_packed(max_clients=10, params_version=1).to_json(), "params_version": 2},
        "ckks with a version": {**hp.ckks().to_json(), "params_version": 2},
    }
    for name, data in altered.items():
        with pytest.raises(FormatError):
            hp.params_from_json(data)
        assert name
    with pytest.raises(UsageError, match="128-bit"):
        hp.check_security(hp.SchemeParams("bfv-packed", 4096, (60, 50), 1.0, 10, plain_modulus=65537,
                                          quant_bits=18, lane_bits=22, values_per_slot=2, params_version=2))
    with pytest.raises(UsageError, match="128-bit"):
        hp.check_security(hp.SchemeParams("ckks", 2048, (30, 30), 1.0, 10, scale_bits=20))


def test_a_public_context_with_other_moduli_is_refused() -> None:
    """A v2 header over another context's TenSEAL parameters (issue 15 item 10's check, for v2)."""
    small, large = HEContext.generate(max_clients=10), HEContext.generate(max_clients=1000)
    assert small.params.coeff_mod_bit_sizes != large.params.coeff_mod_bit_sizes
    forged = container.encode(FL_CONTEXT_MAGIC, container.decode(small.public_bytes(), FL_CONTEXT_MAGIC, "x")
                              .header_bytes, [container.decode(large.public_bytes(), FL_CONTEXT_MAGIC, "x").blobs[0]])
    with pytest.raises(FormatError, match="differ from its declared scheme"):
        HEContext.from_bytes(forged).tenseal_public()


# --- exact sums at the limit, refusal beyond it -----------------------------------------------------------------

@pytest.mark.parametrize("clients", [4, 11, 31])  # the largest client count of three chains: the least margin
def test_sum_is_exact_at_max_clients_and_one_more_is_refused(clients: int) -> None:
    ctx = HEContext.generate(max_clients=clients)
    public = HEContext.from_bytes(ctx.public().public_bytes())
    size = 2 * ctx.params.values_per_ciphertext  # two ciphertexts: a full one and the padded one
    signs = np.where(np.arange(size - 7) % 3 == 0, -1.0, 1.0)
    ks = [keys.generate("ml-dsa-44") for _ in range(clients + 1)]
    # every client at the clip bound (the lanes' extreme), one value of the first client at -clip
    ups = [encrypt_update({"w": signs * ctx.params.clip}, public, k, 1) for k in ks]
    result = aggregate(ups, public, [k.public_key() for k in ks], 1)
    assert len(result.accepted) == clients and len(result.refused) == 1
    assert isinstance(result.refused[0].error, HEMismatchError) and "too many clients" in result.refused[0].reason
    assert result.aggregate is not None
    agg = EncryptedAggregate.from_bytes(result.aggregate.to_bytes())
    sums = decrypt_aggregate(agg, ctx, average=False)["w"]
    # quantization of +-clip is exact: the decrypted sum is exactly clients * signs * clip
    assert np.array_equal(sums, clients * signs * ctx.params.clip)
    # SEAL's measured noise budget of the sum is at least the worst-case margin the parameters promise
    layout, secret = ctx.raw_layout(), ctx.tenseal_secret()
    worst = hp.bfv_noise(ctx.params, clients).budget_bits
    for blob in agg.ciphertexts:
        assert cipher.invariant_noise_budget(blob, ctx.params, secret, layout) >= math.floor(worst) >= 1


def test_too_many_clients_for_any_secure_chain_is_refused() -> None:
    with pytest.raises(UsageError, match="60"):
        hp.bfv_packed(max_clients=100, quant_bits=24)  # the lanes would need a 62-bit plain modulus
    with pytest.raises(UsageError, match="post-quantum limit"):
        hp.bfv_packed(max_clients=1024, quant_bits=20)  # t fits, but no q within 101 bits holds the noise
    with pytest.raises(UsageError):
        HEContext.generate(max_clients=1025)


def test_upload_size_follows_max_clients() -> None:
    assert hp.bfv_packed(max_clients=4).bytes_per_value == 7.0
    assert hp.bfv_packed(max_clients=10).bytes_per_value == 8.0
    assert hp.bfv_packed(max_clients=31).bytes_per_value == 8.0
    assert hp.bfv_packed(max_clients=100).bytes_per_value == 9.0
    assert hp.bfv_packed(max_clients=1024).bytes_per_value == 10.0
    assert hp.bfv_packed(params_version=1).bytes_per_value == 10.0
    ctx = HEContext.generate(max_clients=10).public()
    update = encrypt_update({"w": np.zeros(3 * 8192)}, ctx, keys.generate("ml-dsa-44"), 0)
    assert {len(b) for b in update.ciphertexts} == {8 * 8192}


# --- v1 files (made by qsafe before v2) ---------------------------------------------------------------------------

def _v1_keys() -> tuple[list[keys.PrivateKey], list[keys.PublicKey]]:
    private = [keys.private_key_from_pem((V1 / f"client-{c}.key").read_bytes()) for c in "ab"]
    public = [keys.public_key_from_pem((V1 / f"client-{c}.pub").read_bytes()) for c in "ab"]
    return private, public


def test_v1_files_still_verify_aggregate_byte_for_byte_and_decrypt() -> None:
    ctx = HEContext.load(V1 / "secret.ctx")
    assert ctx.fingerprint == FIXTURE_FINGERPRINT
    assert ctx.params == hp.bfv_packed(params_version=1) and ctx.params.batching
    assert "params_version" not in ctx.params.to_json()
    public = HEContext.from_bytes(ctx.public().public_bytes())
    _, allow = _v1_keys()
    updates = [EncryptedUpdate.load(V1 / f"update-{c}.qfl") for c in "ab"]
    result = aggregate(updates, public, allow, 3)
    assert result.refused == [] and result.aggregate is not None
    assert result.aggregate.to_bytes() == (V1 / "aggregate.qfl").read_bytes()
    values = json.loads((V1 / "values.json").read_text())
    sums = decrypt_aggregate(EncryptedAggregate.from_bytes((V1 / "aggregate.qfl").read_bytes()), ctx, average=False)
    bound = ctx.params.error_bound(2)
    for name in ("w", "b"):
        assert np.abs(sums[name].astype(np.float64) - np.sum(values[name], axis=0)).max() <= bound + 1e-6


def test_a_v1_public_context_still_encrypts() -> None:
    ctx = HEContext.load(V1 / "secret.ctx")
    public = HEContext.from_bytes(ctx.public().public_bytes())
    private, allow = _v1_keys()
    rng = np.random.default_rng(3)
    plain = [{"w": rng.uniform(-1, 1, 10_000).astype(np.float32)} for _ in private]
    ups = [encrypt_update(p, public, k, 9) for p, k in zip(plain, private)]
    assert {len(b) for u in ups for b in u.ciphertexts} == {10 * 8192}
    result = aggregate(ups, public, allow, 9)
    assert result.aggregate is not None and result.refused == []
    sums = decrypt_aggregate(result.aggregate, ctx, average=False)["w"].astype(np.float64)
    assert np.abs(sums - (plain[0]["w"].astype(np.float64) + plain[1]["w"])).max() <= ctx.params.error_bound(2)


def test_v1_sets_whose_worst_case_noise_could_overflow_are_refused() -> None:
    assert hp.bfv_noise(hp.bfv_packed(params_version=1)).budget_bits > 0  # the default v1 set: 1 bit to spare
    with pytest.raises(UsageError, match="noise"):
        hp.bfv_packed(params_version=1, max_clients=2**14, quant_bits=12)  # lanes fit t, the noise does not fit q
