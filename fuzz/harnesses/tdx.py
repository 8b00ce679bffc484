"""Intel TDX: qsafe's wrapper around dcap-qvl (quote + collateral JSON -> claims) at a fixed time.

Each input is tried as a quote (with the recorded collateral) and as collateral JSON (with the recorded quote):
both come from the evidence file an attacker may hand the verifier.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from fuzz._common import AT, ROOT
from qsafe import _json
from qsafe._attest import EvidenceCheckError, tdx

_RECORDED = ROOT / "attestations" / "evidence" / "recorded" / "dcap-qvl"


@cache
def recorded() -> tuple[bytes, dict[str, Any]]:
    return (_RECORDED / "tdx_quote").read_bytes(), json.loads((_RECORDED / "tdx_quote_collateral.json").read_bytes())


def test_one_input(data: bytes) -> None:
    quote, collateral = recorded()
    try:
        tdx.verify_quote(data, collateral, AT, None)
    except EvidenceCheckError:
        pass
    doc = _json.loads(data, "TDX collateral")  # the reader every collateral file goes through
    try:
        tdx.verify_quote(quote, doc, AT, None)
    except EvidenceCheckError:
        pass
