"""Offline verifiers, one per evidence kind, each at an explicit verification time.

A verifier turns one evidence item into an :class:`ItemResult`: the claims it establishes, the checks that
passed, and the checks that failed (named). Self-reported items (``software``, ``nvidia-cc``) verify nothing
cryptographically; their claims are marked ``signed: False`` so a policy reader knows what they rest on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from qsafe.attestation.evidence import b64decode, hexdecode
from qsafe.errors import FormatError

__all__ = ["GPU_ARCHITECTURES", "ItemResult", "verify_item"]

# Chip family (from the verified device-identity chain) -> architecture name used in policies.
GPU_ARCHITECTURES = {"GH1": "HOPPER", "GB1": "BLACKWELL", "GB2": "BLACKWELL"}


@dataclass
class ItemResult:
    """The outcome of verifying one evidence item.

    Attributes:
        kind: the evidence kind; prefix: claim namespace (gpu, nvml, snp, tdx, sw); index: position of its kind.
        signed: whether the claims rest on a hardware signature.
        claims: verified claims (empty when a check failed).
        passed / failed: check names; ``failed`` maps a check to the reason.
    """

    kind: str
    prefix: str
    index: int
    signed: bool
    claims: dict[str, Any] = field(default_factory=dict)
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.prefix}[{self.index}]"


_PREFIX = {"nvidia-gpu": "gpu", "nvidia-cc": "nvml", "sev-snp": "snp", "tdx": "tdx", "software": "sw"}


def _arch(chain: list[Any]) -> str:
    from cryptography.x509.oid import NameOID

    for cert in chain:
        for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            text = str(attr.value)
            for key, arch in GPU_ARCHITECTURES.items():
                if key in text:
                    return arch
    return "UNKNOWN"


def _verify_gpu(item: dict[str, Any], res: ItemResult, at: dt.datetime, expected: bytes | None) -> None:
    from qsafe._attest import spdm
    from qsafe._attest.x509chain import load_pem_chain, pinned_roots

    report = spdm.parse_report(hexdecode(str(item.get("report", "")), "GPU report"))
    chain = load_pem_chain(str(item.get("cert_chain", "")).encode())
    try:
        spdm.verify_report(report, chain, pinned_roots("nvidia_device_identity_ca.pem"), at, expected)
    except spdm.GpuVerificationError as exc:
        res.failed[exc.check] = str(exc)
        return
    res.passed += ["cert_chain", "signature", "fwid"] + (["nonce"] if expected is not None else [])
    res.claims = {**spdm.report_claims(report), "arch": _arch(chain), "trailing_bytes": report.trailing}


def _verify_snp(item: dict[str, Any], res: ItemResult, at: dt.datetime, expected: bytes | None) -> None:
    from qsafe._attest import snp
    from qsafe._attest.x509chain import load_pem_chain, pinned_roots

    report = snp.parse_report(b64decode(str(item.get("report", "")), "SEV-SNP report"))
    chain = load_pem_chain(str(item.get("certs", "")).encode())
    want = expected.ljust(64, b"\x00") if expected is not None else None
    try:
        snp.verify_report(report, chain, pinned_roots("amd_ark_milan.pem"), at, want)
    except snp.SnpVerificationError as exc:
        res.failed[exc.check] = str(exc)
        return
    res.passed += ["cert_chain", "signature", "tcb"] + (["report_data"] if want is not None else [])
    res.claims = snp.report_claims(report)


def _verify_tdx(item: dict[str, Any], res: ItemResult, at: dt.datetime, expected: bytes | None) -> None:
    from qsafe._attest import tdx

    collateral = item.get("collateral")
    if not isinstance(collateral, dict):
        res.failed["collateral"] = "TDX quote has no collateral (TCB info, QE identity, CRLs) to verify against"
        return
    quote = b64decode(str(item.get("quote", "")), "TDX quote")
    want = expected.ljust(64, b"\x00") if expected is not None else None
    try:
        res.claims = tdx.verify_quote(quote, collateral, at, want)
    except tdx.TdxVerificationError as exc:
        res.failed[exc.check] = str(exc)
        return
    res.passed += ["quote"] + (["report_data"] if want is not None else [])


def verify_item(item: dict[str, Any], index: int, at: dt.datetime, expected: bytes | None) -> ItemResult:
    """Verify one evidence item at time ``at``; ``expected`` is the value its nonce/report data must carry.

    Args:
        item: the evidence item (a dict with ``kind``).
        index: its position among items of the same kind.
        at: the verification time (certificates and collateral are judged at this instant).
        expected: 32 bytes the GPU nonce must equal (TEE report data: these bytes then zeros), or None to skip.

    Returns:
        The :class:`ItemResult`; failures are recorded in it, not raised.

    Raises:
        FormatError: the item is malformed (undecodable report, bad PEM, unknown kind).
    """
    kind = str(item.get("kind"))
    if kind not in _PREFIX:
        raise FormatError(f"unknown evidence kind {kind!r}")
    signed = kind in ("nvidia-gpu", "sev-snp", "tdx")
    res = ItemResult(kind=kind, prefix=_PREFIX[kind], index=index, signed=signed)
    if kind == "nvidia-gpu":
        _verify_gpu(item, res, at, expected)
    elif kind == "sev-snp":
        _verify_snp(item, res, at, expected)
    elif kind == "tdx":
        _verify_tdx(item, res, at, expected)
    else:
        claims = item.get("claims")
        if not isinstance(claims, dict):
            raise FormatError(f"{kind} evidence item has no claims object")
        res.claims = dict(claims)
    return res
