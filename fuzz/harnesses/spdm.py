"""NVIDIA GPU attestation reports: SPDM GET_MEASUREMENTS request || MEASUREMENTS response (binary), their claims,
and verification against the recorded device certificate chain and the pinned NVIDIA root.
"""

from __future__ import annotations

from functools import cache

from cryptography import x509

from fuzz._common import AT, ROOT
from qsafe._attest import spdm
from qsafe._attest.x509chain import load_pem_chain, pinned_roots

_CHAIN = ROOT / "attestations" / "evidence" / "recorded" / "nvtrust" / "hopperCertChain.txt"


@cache
def chain() -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    return load_pem_chain(_CHAIN.read_bytes()), pinned_roots("nvidia_device_identity_ca.pem")


def test_one_input(data: bytes) -> None:
    report = spdm.parse_report(data)
    spdm.report_claims(report)
    report.vbios_version()
    try:
        spdm.verify_report(report, *chain(), AT, report.request_nonce)
    except spdm.GpuVerificationError:
        pass
