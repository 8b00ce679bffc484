"""The appraisal result as an in-toto Statement v1, signed with ML-DSA in a DSSE envelope.

Subjects: the evidence document (and the model, when the appraisal gated one). Predicate type
``ATTESTATION_RESULT_PREDICATE_TYPE``; the ML-DSA context ``MLDSA_CONTEXT_ATTESTATION_RESULT`` keeps these
signatures apart from model-bundle signatures made with the same key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from qsafe import _dsse, _json, _labels, _limits
from qsafe.attestation.appraisal import AppraisalResult
from qsafe.errors import FormatError, SignatureError
from qsafe.keys import PrivateKey, PublicKey

__all__ = ["result_statement", "sign_result", "verify_result"]


def result_statement(result: AppraisalResult) -> dict[str, Any]:
    """The in-toto Statement for ``result``."""
    subjects = [{"name": "evidence", "digest": {"sha256": result.evidence_digest.split(":", 1)[1]}}]
    if result.model_digest and ":" in result.model_digest:
        algo, value = result.model_digest.split(":", 1)
        subjects.append({"name": "model", "digest": {algo: value}})
    return {
        "_type": _labels.IN_TOTO_STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": _labels.ATTESTATION_RESULT_PREDICATE_TYPE,
        "predicate": result.predicate(),
    }


def sign_result(result: AppraisalResult, key: PrivateKey) -> bytes:
    """Sign the result statement; returns the DSSE envelope as JSON bytes."""
    payload = json.dumps(result_statement(result), sort_keys=True, separators=(",", ":")).encode()
    return _dsse.sign_envelope(payload, key, _labels.MLDSA_CONTEXT_ATTESTATION_RESULT)


def verify_result(data: bytes, keys: Sequence[PublicKey], *, what: str = "attestation result") -> dict[str, Any]:
    """Verify a signed result with any of ``keys``; return the statement.

    Args:
        data: the DSSE envelope's bytes.
        keys: the appraiser's public keys.
        what: names the input in messages (e.g. the file name).

    Raises:
        FormatError: not a DSSE envelope holding a qsafe attestation-result statement.
        SignatureError: no signature verifies with the given keys.
    """
    env = _dsse.parse_envelope(data, what, max_bytes=_limits.RESULT_MAX_BYTES, expected="a signed attestation result")
    if _dsse.verify_envelope(env, keys, _labels.MLDSA_CONTEXT_ATTESTATION_RESULT) is None:
        raise SignatureError("the attestation result's signature does not verify with the given key(s)")
    statement = _json.loads(env.payload, f"the statement in {what}")
    if not isinstance(statement, dict) or not isinstance(statement.get("predicate"), dict) or (
            statement.get("predicateType") != _labels.ATTESTATION_RESULT_PREDICATE_TYPE):
        raise FormatError(f"the statement signed in {what} is not an attestation result")
    return dict(statement)
