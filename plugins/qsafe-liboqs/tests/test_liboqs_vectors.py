"""Known answers: NIST ACVP SLH-DSA keyGen, the NIST Falcon KATs (as liboqs hashes them), NIST ACVP ML-DSA keyGen
through liboqs. Each counts its passes, so the closing note's figures are the test's own."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from liboqs_paths import REPO, VECTORS
from nist_drbg import NistKatDrbg
from qsafe_liboqs import liboqs
from qsafe_liboqs.mldsa import ML_DSA_44, ML_DSA_65, ML_DSA_87
from qsafe_liboqs.schemes import FALCON_512, FALCON_1024, SLH_DSA


def _keygen_cases() -> list[tuple[str, dict[str, Any]]]:
    doc = json.loads((VECTORS / "acvp" / "SLH-DSA-keyGen-FIPS205" / "internalProjection.json").read_text())
    return [(g["parameterSet"], t) for g in doc["testGroups"] for t in g["tests"]]


KEYGEN = _keygen_cases()


def test_acvp_file_covers_every_parameter_set() -> None:
    assert len(KEYGEN) == 24
    assert {p.lower() for p, _ in KEYGEN} == set(SLH_DSA)


@pytest.mark.parametrize(("parameter_set", "case"), KEYGEN, ids=[f"{p}-{t['tcId']}" for p, t in KEYGEN])
def test_acvp_slh_dsa_keygen(parameter_set: str, case: dict[str, Any]) -> None:
    """FIPS 205 keygen draws SK.seed || SK.prf || PK.seed in one call: feed liboqs the ACVP seeds."""
    scheme = SLH_DSA[parameter_set.lower()]
    seeds = bytes.fromhex(case["skSeed"] + case["skPrf"] + case["pkSeed"])
    with liboqs.oqs().Signature(scheme.oqs_name) as sig, liboqs.fixed_randomness(seeds) as drawn:
        public = bytes(sig.generate_keypair())
        secret = bytes(sig.export_secret_key())
    assert drawn[0] == len(seeds)
    assert public.hex().upper() == case["pk"] and secret.hex().upper() == case["sk"]
    # and the plugin's PKCS#8 carries exactly that secret key, from which it derives that public key
    from qsafe.signers import encode_pkcs8

    key = scheme.private_from_pkcs8(encode_pkcs8(scheme.oid, secret))
    assert key.public().raw == public


@pytest.mark.parametrize(("scheme", "tag"), [(FALCON_512, 0x29), (FALCON_1024, 0x2A)], ids=lambda v: getattr(v, "name", ""))
def test_nist_falcon_kat(scheme: Any, tag: int) -> None:
    """The first entry of the Falcon submission's KAT file, rebuilt through liboqs-python, hashes as liboqs's own."""
    want = json.loads((VECTORS / "kat" / "liboqs-0.16.0-kats.json").read_text())[scheme.oqs_name]["single"]
    outer = NistKatDrbg(bytes(range(48)))
    seed, msg = outer(48), outer(33)
    with liboqs.oqs().Signature(scheme.oqs_name) as sig, liboqs.randomness(NistKatDrbg(seed)):
        pk, sk = bytes(sig.generate_keypair()), bytes(sig.export_secret_key())
        signature = bytes(sig.sign(msg))
    signed = (len(signature) - 40).to_bytes(2, "big") + signature[1:41] + msg + bytes([tag]) + signature[41:]
    text = (f"count = 0\nseed = {seed.hex().upper()}\nmlen = 33\nmsg = {msg.hex().upper()}\npk = {pk.hex().upper()}\n"
            f"sk = {sk.hex().upper()}\nsmlen = {len(signed)}\nsm = {signed.hex().upper()}\n")
    assert hashlib.sha256(text.encode()).hexdigest() == want
    # the KAT's key pair is a working plugin key: it signs qsafe-style (context) and verifies
    from qsafe.signers import encode_pkcs8

    key = scheme.private_from_pkcs8(encode_pkcs8(scheme.oid, sk + pk))
    key.public().verify(key.sign(b"model", b"ctx"), b"model", b"ctx")


def _mldsa_keygen() -> list[dict[str, Any]]:
    doc = json.loads((REPO / "tests" / "vectors" / "pq" / "acvp" / "ML-DSA-keyGen-FIPS204.json").read_text())
    return [{**t, "parameterSet": g["parameterSet"]} for g in doc["testGroups"] for t in g["tests"]]


@pytest.mark.parametrize("case", _mldsa_keygen(), ids=lambda c: f"{c['parameterSet']}-{c['tcId']}")
def test_acvp_mldsa_keygen_through_liboqs(case: dict[str, Any]) -> None:
    scheme = {"ML-DSA-44": ML_DSA_44, "ML-DSA-65": ML_DSA_65, "ML-DSA-87": ML_DSA_87}[case["parameterSet"]]
    public, secret = scheme.keypair_from_seed(bytes.fromhex(case["seed"]))
    assert public.hex().upper() == case["pk"].upper() and secret.hex().upper() == case["sk"].upper()


def test_vectors_are_in_the_repository() -> None:
    assert Path(VECTORS / "PROVENANCE.md").is_file()
