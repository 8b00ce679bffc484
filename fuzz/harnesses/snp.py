"""AMD SEV-SNP attestation reports (1184-byte binary): parsing, claims, and verification (VCEK chain to the pinned
ARK, signature, TCB and chip-id binding to the certificate) with the recorded go-sev-guest certificates.
"""

from __future__ import annotations

from functools import cache

from cryptography import x509

from fuzz._common import AT, ROOT
from qsafe._attest import snp
from qsafe._attest.x509chain import load_der_or_pem, pinned_roots

_RECORDED = ROOT / "attestations" / "evidence" / "recorded" / "go-sev-guest"


@cache
def chain() -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    certs = [c for name in ("vcek.testcer", "milan.testcer") for c in load_der_or_pem((_RECORDED / name).read_bytes())]
    return certs, pinned_roots("amd_ark_milan.pem")


def test_one_input(data: bytes) -> None:
    report = snp.parse_report(data)
    snp.report_claims(report)
    try:
        snp.verify_report(report, *chain(), AT, report.report_data)
    except snp.SnpVerificationError:
        pass
