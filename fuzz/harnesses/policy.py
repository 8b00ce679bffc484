"""Attestation policies (``qsafe-attestation-policy/v1`` JSON): the file reader, schema validation, rule operators,
and the appraisal of the recorded H100 and SEV-SNP evidence under the fuzzed policy.
"""

from __future__ import annotations

from functools import cache

from fuzz._common import AT, ROOT, memfile
from qsafe.attestation.appraisal import appraise
from qsafe.attestation.evidence import Evidence, load_evidence
from qsafe.attestation.policy import load_policy

_EVIDENCE = ("hopper-h100.evidence.json", "sev-snp-milan.evidence.json")


@cache
def evidence() -> tuple[Evidence, ...]:
    return tuple(load_evidence(ROOT / "attestations" / "evidence" / name) for name in _EVIDENCE)


def test_one_input(data: bytes) -> None:
    with memfile(data, "policy.json") as path:
        policy = load_policy(path)
    policy.accept, policy.unsafe, policy.require, policy.claims  # noqa: B018
    item = evidence()[len(data) % len(evidence())]  # one appraisal per input (GPU/SNP verification costs ms)
    appraise(item, policy, at=AT, nonce=b"\x02" * 32, model_digest="sha256:" + "1" * 64).predicate()
