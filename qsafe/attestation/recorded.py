"""Turn recorded evidence in its native formats into qsafe evidence (``qsafe attest import``).

Native formats: NVIDIA hex report text + PEM chain (nvtrust samples, NVML dumps), NVIDIA JSON evidence lists
(``[{evidence: base64, certificate: base64 PEM, ...}]``, as nvtrust / the NVIDIA Attestation SDK serialize them),
SEV-SNP raw reports + DER/PEM certificates, TDX raw quotes + dcap-qvl collateral JSON.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qsafe import _json, _limits
from qsafe._files import read_regular
from qsafe.attestation.evidence import Evidence
from qsafe.errors import FormatError, UsageError

__all__ = ["IMPORT_KINDS", "import_recorded"]

IMPORT_KINDS = ("nvidia-report", "nvidia-json", "sev-snp", "tdx")


def _read(path: Path) -> bytes:
    return read_regular(path, "recorded evidence", max_bytes=_limits.EVIDENCE_MAX_BYTES)


def _nvidia_report(paths: Sequence[Path]) -> list[dict[str, Any]]:
    if len(paths) != 2:
        raise UsageError("nvidia-report takes REPORT (hex text or binary) and CHAIN (PEM)")
    raw = _read(paths[0])
    try:
        report = bytes.fromhex(raw.decode("ascii").strip()) if raw[:1].isalnum() else raw
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{paths[0]} is not a hex GPU report") from exc
    try:
        chain = _read(paths[1]).decode("ascii")
    except UnicodeDecodeError:
        raise FormatError(f"{paths[1]} is not a PEM certificate chain") from None
    return [{"kind": "nvidia-gpu", "index": 0, "report": report.hex(), "cert_chain": chain}]


def _nvidia_json(paths: Sequence[Path]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for path in paths:
        try:
            doc = _json.loads(_read(path), f"NVIDIA JSON evidence {str(path)!r}")
            for entry in doc if isinstance(doc, list) else [doc]:
                items.append({
                    "kind": "nvidia-gpu", "index": len(items),
                    "report": base64.b64decode(entry["evidence"], validate=True).hex(),
                    "cert_chain": base64.b64decode(entry["certificate"], validate=True).decode(),
                })
        except (KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise FormatError(f"{path} is not an NVIDIA JSON evidence list: {exc}") from exc
    return items


def _snp(paths: Sequence[Path]) -> list[dict[str, Any]]:
    from cryptography.hazmat.primitives.serialization import Encoding

    from qsafe._attest.x509chain import load_der_or_pem

    if len(paths) < 2:
        raise UsageError("sev-snp takes REPORT then the VCEK/VLEK certificate and its ASK/ASVK (+ARK)")
    pem = "".join(c.public_bytes(Encoding.PEM).decode() for p in paths[1:] for c in load_der_or_pem(_read(p)))
    return [{"kind": "sev-snp", "report": base64.b64encode(_read(paths[0])).decode(), "certs": pem}]


def _tdx(paths: Sequence[Path]) -> list[dict[str, Any]]:
    if len(paths) != 2:
        raise UsageError("tdx takes QUOTE and COLLATERAL (dcap-qvl JSON)")
    collateral = _json.loads(_read(paths[1]), f"TDX collateral {str(paths[1])!r}")
    return [{"kind": "tdx", "quote": base64.b64encode(_read(paths[0])).decode(), "collateral": collateral}]


def import_recorded(
    kind: str, paths: Sequence[str | Path], *, collected_at: dt.datetime, provenance: str | None = None
) -> Evidence:
    """Build a qsafe evidence document from recorded native files.

    Args:
        kind: one of :data:`IMPORT_KINDS`.
        paths: the files, in the order the kind documents.
        collected_at: when the evidence was recorded (as far as its provenance says).
        provenance: free text stored on every item (source repository, commit, file).

    Raises:
        UsageError: unknown kind or wrong number of files.
        FormatError: a file is not what the kind expects.
    """
    handlers = {"nvidia-report": _nvidia_report, "nvidia-json": _nvidia_json, "sev-snp": _snp, "tdx": _tdx}
    if kind not in handlers:
        raise UsageError(f"unknown recorded kind {kind!r}; one of {', '.join(IMPORT_KINDS)}")
    items = handlers[kind]([Path(p) for p in paths])
    if provenance:
        for item in items:
            item["provenance"] = provenance
    return Evidence(collected_at=collected_at, nonce=None, items=items)
