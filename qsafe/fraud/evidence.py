"""Signed statements about the trained fraud model: DP certificate, privacy audit, theft audit, model card.

Each is model evidence (:mod:`qsafe.model_evidence`): an in-toto Statement whose subject is the model's signed
manifest root digest, ML-DSA-signed in a DSSE envelope, so the deploy gate can require its claims in the
attestation policy (``model.epsilon``, ``model.metrics.sample_rate.pr_auc``, ...). The model card points at the
other statements by their SHA-256 and carries the dataset's Merkle root and its poisoning-audit verdict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qsafe import _labels

if TYPE_CHECKING:
    from qsafe.keys import PrivateKey

__all__ = [
    "DP_CERTIFICATE",
    "MODEL_CARD",
    "MODEL_NAME",
    "PRIVACY_AUDIT",
    "THEFT_AUDIT",
    "card_predicate",
    "sign_statement",
    "statement_digest",
]

DP_CERTIFICATE = _labels.DP_CERTIFICATE_PREDICATE_TYPE
PRIVACY_AUDIT = _labels.PRIVACY_AUDIT_PREDICATE_TYPE
THEFT_AUDIT = _labels.THEFT_AUDIT_PREDICATE_TYPE
MODEL_CARD = _labels.MODEL_CARD_PREDICATE_TYPE
MODEL_NAME = "qsafe-fraud-mlp"


def sign_statement(model_digest: str, predicate_type: str, predicate: Mapping[str, Any], key: PrivateKey) -> bytes:
    """Sign a statement about the model (``sha256:<manifest root>``); returns the DSSE envelope bytes."""
    from qsafe.model_evidence import sign_model_evidence

    return sign_model_evidence(model_digest, predicate_type, predicate, key, model_name=MODEL_NAME)


def statement_digest(envelope: bytes) -> str:
    """``sha256:`` of a signed statement file (how the model card refers to it)."""
    return "sha256:" + hashlib.sha256(envelope).hexdigest()


def card_predicate(*, model: Mapping[str, Any], training_data: Mapping[str, Any], metrics: Mapping[str, Any],
                   privacy: Mapping[str, Any], theft: Mapping[str, Any], evidence: Mapping[str, str],
                   limitations: list[str]) -> dict[str, Any]:
    """The model card (Mitchell et al. 2019 sections, as numbers and references rather than prose)."""
    return {
        "format": "qsafe-model-card/v1",
        "model": dict(model),
        "intended_use": ("scores card-present/card-not-present transactions for fraud review; a decision aid for "
                         "human analysts, not a sole basis for declining a cardholder (see GDPR Art. 22 in "
                         "docs/fraud_pipeline.md)"),
        "training_data": dict(training_data),
        "metrics": dict(metrics),
        "privacy": dict(privacy),
        "theft": dict(theft),
        "evidence": dict(evidence),
        "limitations": list(limitations),
    }
