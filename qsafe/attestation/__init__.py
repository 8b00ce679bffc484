"""Attest the environment: collect evidence, verify it offline, appraise it against a policy, sign the result.

Typical use::

    from qsafe import attestation as att
    policy = att.load_policy("nvidia-hopper-cc")      # a shipped policy by name, or a path
    nonce = att.new_nonce()
    evidence = att.collect(["nvidia-gpu", "software"], nonce=nonce, policy=policy)
    result = att.verify_evidence(evidence, policy, nonce=nonce)   # raises AttestationError on deny
"""

from __future__ import annotations

from qsafe.attestation.appraisal import (
    AppraisalResult,
    NonceRegistry,
    appraise,
    binding_hash,
    new_nonce,
    verify_evidence,
)
from qsafe.attestation.collect import collect
from qsafe.attestation.collectors import (
    Collector,
    NvidiaGpuCollector,
    ReplayCollector,
    SoftwareCollector,
    TsmCollector,
)
from qsafe.attestation.evidence import Evidence, load_evidence
from qsafe.attestation.policy import Policy, load_policy, policy_from_json
from qsafe.attestation.result import result_statement, sign_result, verify_result

__all__ = [
    "AppraisalResult",
    "Collector",
    "Evidence",
    "NonceRegistry",
    "NvidiaGpuCollector",
    "Policy",
    "ReplayCollector",
    "SoftwareCollector",
    "TsmCollector",
    "appraise",
    "binding_hash",
    "collect",
    "load_evidence",
    "load_policy",
    "new_nonce",
    "policy_from_json",
    "result_statement",
    "sign_result",
    "verify_evidence",
    "verify_result",
]
