"""In-toto Statements about a dataset, in qsafe's DSSE envelope (:mod:`qsafe._dsse`), with their own ML-DSA context.

Statements about the model go through :mod:`qsafe.model_evidence`; these are about a dataset (the subject is
the CSV file and its Merkle root), signed with ``MLDSA_CONTEXT_DATASET_EVIDENCE`` so a dataset statement can never
pass for a model bundle, a model-evidence statement or an attestation result made with the same key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from qsafe import _dsse, _json, _labels, _limits
from qsafe.errors import FormatError, InvalidInputError, SignatureError
from qsafe.keys import PrivateKey, PublicKey

MAX_STATEMENT_BYTES = _limits.DATASET_STATEMENT_MAX_BYTES


def statement(subject_name: str, digests: Mapping[str, str], predicate_type: str,
              predicate: Mapping[str, Any]) -> dict[str, Any]:
    """An in-toto Statement v1 with one subject."""
    return {"_type": _labels.IN_TOTO_STATEMENT_TYPE, "subject": [{"name": subject_name, "digest": dict(digests)}],
            "predicateType": predicate_type, "predicate": dict(predicate)}


def sign_statement(st: Mapping[str, Any], key: PrivateKey) -> bytes:
    """Sign ``st`` with the dataset-evidence context; returns the DSSE envelope as JSON bytes.

    Raises:
        InvalidInputError: the statement is not finite JSON.
    """
    try:
        payload = json.dumps(st, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"the statement is not finite JSON: {exc}") from exc
    return _dsse.sign_envelope(payload, key, _labels.MLDSA_CONTEXT_DATASET_EVIDENCE)


def verify_statement(data: bytes, keys: Sequence[PublicKey], predicate_type: str, what: str
                     ) -> tuple[dict[str, Any], str]:
    """Verify a dataset statement's envelope with any of ``keys``.

    Returns:
        (the statement, the key id that verified it).

    Raises:
        FormatError: not a DSSE envelope holding an in-toto statement of ``predicate_type``.
        SignatureError: no signature verifies with the given keys.
    """
    env = _dsse.parse_envelope(data, what, max_bytes=MAX_STATEMENT_BYTES, expected="a signed dataset statement")
    signer = _dsse.verify_envelope(env, keys, _labels.MLDSA_CONTEXT_DATASET_EVIDENCE)
    if signer is None:
        raise SignatureError(f"{what}: the signature does not verify with the given key(s)")
    st = _json.loads(env.payload, f"{what} statement", max_bytes=MAX_STATEMENT_BYTES)
    if not isinstance(st, dict) or st.get("_type") != _labels.IN_TOTO_STATEMENT_TYPE:
        raise FormatError(f"{what}: payload is not an in-toto Statement v1")
    if st.get("predicateType") != predicate_type:
        raise FormatError(f"{what}: predicate type is {st.get('predicateType')!r}, not {predicate_type}")
    subjects = st.get("subject")
    if not (isinstance(subjects, list) and len(subjects) == 1 and isinstance(subjects[0], dict)
            and isinstance(subjects[0].get("digest"), dict) and isinstance(st.get("predicate"), dict)):
        raise FormatError(f"{what}: a statement needs exactly one subject with a digest, and a predicate object")
    return st, signer.key_id
