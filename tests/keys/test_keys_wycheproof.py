"""Wycheproof ML-DSA-65 verify vectors (C2SP/wycheproof, every ctx case), through qsafe's public API."""

from __future__ import annotations

from typing import Any

import pytest
from _vectors import load
from dilithium_py.ml_dsa import ML_DSA_65

from qsafe import keys
from qsafe.errors import SignatureError

DATA = load("wycheproof/mldsa_65_verify_test.json")
CASES = [(group, test) for group in DATA["testGroups"] for test in group["tests"]]


def test_vector_count() -> None:
    assert DATA["algorithm"] == "ML-DSA-65"
    assert len(CASES) == 16
    assert sum("ctx" in t for _, t in CASES) == 8


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"tc{c[1]['tcId']}-{c[1]['result']}")
def test_wycheproof_mldsa65_verify(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    group, test = case
    public = keys.public_key_from_der(bytes.fromhex(group["publicKeyDer"]))
    assert public.algorithm == "ml-dsa-65" and public.post_quantum
    assert public.to_der() == bytes.fromhex(group["publicKeyDer"])
    msg, sig, ctx = bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"]), bytes.fromhex(test.get("ctx", ""))
    if test["result"] == "valid":
        public.verify(sig, msg, ctx)
    else:
        assert test["result"] == "invalid"
        with pytest.raises(SignatureError):
            public.verify(sig, msg, ctx)
    # Independent reference: dilithium-py (rejects a >255-byte context by raising).
    try:
        ref = ML_DSA_65.verify(bytes.fromhex(group["publicKey"]), msg, sig, ctx)
    except ValueError:
        ref = False
    assert ref is (test["result"] == "valid")
