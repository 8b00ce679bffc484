"""AMD SEV-SNP attestation reports (1184-byte binary): parsing, claims, and verification (VCEK chain to the pinned
ARK, signature, TCB and chip-id binding to the certificate) with the recorded go-sev-guest certificates.
"""

from __future__ import annotations

from functools import cache

from cryptography import x509

from fuzz._common import AT, ROOT
from qsafe._attest import EvidenceCheckError, snp
from qsafe._attest.x509chain import load_der_or_pem, pinned_roots

_RECORDED = ROOT / "attestations" / "evidence" / "recorded" / "go-sev-guest"


@cache
def chain() -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    certs = [c for name in ("vcek.testcer", "milan.testcer") for c in load_der_or_pem((_RECORDED / name).read_bytes())]
    return certs, pinned_roots("amd_ark_milan.pem")


def fuzz_setup() -> None:
    """Fuzzing only (the driver calls it; tests do not): the recorded chain is the same for every input, so its
    verification (several ECDSA P-384 checks, none reading the input) is done once and remembered."""
    verify_chain = snp.verify_chain
    done: dict[tuple[int, int, object], None] = {}

    def once(chain: list[x509.Certificate], roots: list[x509.Certificate], at: object) -> None:
        key = (id(chain), id(roots), at)
        if key not in done:
            verify_chain(chain, roots, at)
            done[key] = None

    snp.verify_chain = once  # type: ignore[assignment]


@cache
def recorded_signed() -> frozenset[bytes]:
    """The signed bytes (0x000-0x29F) of the recorded reports."""
    return frozenset((_RECORDED.parent / p).read_bytes()[: snp.SIGNED_LEN]
                     for p in ("go-sev-guest/attestation.bin", "trustee/test-report.bin", "trustee/test-vlek-report.bin"))


def test_one_input(data: bytes) -> None:
    report = snp.parse_report(data)
    snp.report_claims(report)
    # Before the ECDSA check, verification reads only the signature bytes; after it, only a recorded report gets
    # through. So only inputs whose signed part is a recorded one are verified: any other fails at ECDSA (2 ms).
    if data[: snp.SIGNED_LEN] not in recorded_signed():
        return
    try:
        snp.verify_report(report, *chain(), AT, report.report_data)
    except EvidenceCheckError:
        pass
