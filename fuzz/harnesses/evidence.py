"""Attestation evidence documents (``qsafe-evidence/v1`` JSON): the document, every item's verifier (NVIDIA SPDM
report + PEM chain, SEV-SNP report + certificates, TDX quote + collateral, self-reported claims) and the
appraisal against the shipped policies, at a fixed verification time.
"""

from __future__ import annotations

from functools import cache

from fuzz._common import AT, ROOT, memfile
from qsafe.attestation.appraisal import appraise
from qsafe.attestation.evidence import load_evidence
from qsafe.attestation.policy import Policy, load_policy

# What the shipped policies reach: GPU counts, versions, TEE claims, freshness modes.
_POLICIES = ("nvidia-hopper-cc.json", "amd-sev-snp.json", "intel-tdx.json", "unsafe-development-replay.json")


@cache
def policies() -> tuple[Policy, ...]:
    return tuple(load_policy(ROOT / "attestations" / "policies" / name) for name in _POLICIES)


def test_one_input(data: bytes) -> None:
    with memfile(data, "evidence.json") as path:
        evidence = load_evidence(path)
    evidence.digest()
    policy = policies()[len(data) % len(policies())]  # one policy per input: every item verifies only once
    appraise(evidence, policy, at=AT, nonce=b"\x01" * 32, model_digest="sha256:" + "0" * 64).predicate()
