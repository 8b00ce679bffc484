"""Signed model evidence (issue 11): the DSSE envelope, its in-toto Statement, the predicate flattened to claims
and the robustness-evaluation claim extractor, then verification with the evaluator key of fuzz/data.

Each input is tried as an envelope file and as a bare Statement (the payload inside the envelope is base64 that
the fuzzer seldom keeps canonical); the claims are computed for both (after verification in qsafe's own flow).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fuzz._common import DATA
from qsafe import model_evidence as me
from qsafe.keys import PublicKey, load_public_key

MODEL = "sha256:" + "5e" * 32


@cache
def key() -> PublicKey:
    return load_public_key(DATA / "evaluator.pub")


def _claims(statement: dict[str, Any]) -> None:
    me.claims_of(statement["predicateType"], statement["predicate"])
    me.flatten_predicate(statement["predicate"])


def test_one_input(data: bytes) -> None:
    try:
        _claims(me.parse_model_evidence(data))
        me.verify_model_evidence(data, [key()], model_digest=MODEL)
    finally:
        statement = me._json(data, "statement")
        me._check_statement(statement)
        _claims(statement)
