"""Intel TDX quotes, verified offline by dcap-qvl (Phala Network's Rust DCAP verifier, PyPI ``dcap-qvl``) with
recorded collateral (TCB info, QE identity, CRLs) at an explicit time. dcap-qvl embeds Intel's SGX root CA.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from qsafe._attest import EvidenceCheckError
from qsafe.errors import FormatError, MissingDependencyError

__all__ = ["verify_quote"]


def _dcap() -> Any:
    try:
        import dcap_qvl
    except ImportError as exc:
        raise MissingDependencyError("TDX quote verification needs dcap-qvl: pip install 'qsafe[tdx]'") from exc
    return dcap_qvl


def verify_quote(
    quote: bytes, collateral: dict[str, Any], at: dt.datetime, expected_report_data: bytes | None
) -> dict[str, object]:
    """Verify a TDX quote against its collateral at ``at``; return its claims.

    Raises:
        EvidenceCheckError: ``check`` is quote (signature/collateral/TCB) or report_data.
        FormatError: collateral is not dcap-qvl's JSON shape.
        MissingDependencyError: dcap-qvl is not installed.
    """
    dcap = _dcap()
    try:
        coll = dcap.QuoteCollateralV3.from_json(json.dumps(collateral))
    except Exception as exc:
        raise FormatError(f"malformed TDX collateral: {exc}") from exc
    try:
        verified = dcap.verify(quote, coll, int(at.timestamp()))
    except ValueError as exc:
        raise EvidenceCheckError("quote", f"TDX quote does not verify: {exc}") from exc
    doc = json.loads(verified.to_json())
    report = next(iter(doc["report"].values()))
    if "mr_td" not in report:
        raise EvidenceCheckError("quote", "quote is not a TDX quote (SGX enclave report)")
    report_data = bytes.fromhex(report["report_data"])
    if expected_report_data is not None and report_data != expected_report_data:
        raise EvidenceCheckError("report_data", "TDX REPORT_DATA is not the expected binding")
    td_attributes = int.from_bytes(bytes.fromhex(report["td_attributes"]), "little")
    claims: dict[str, object] = {
        "tcb_status": doc["status"], "advisory_ids": list(doc.get("advisory_ids", [])),
        "td_attributes.debug": bool(td_attributes & 1),
        **{k: report[k] for k in ("mr_td", "mr_seam", "mr_config_id", "mr_owner", "mr_owner_config",
                                  "rt_mr0", "rt_mr1", "rt_mr2", "rt_mr3", "tee_tcb_svn", "report_data")},
    }
    return claims
