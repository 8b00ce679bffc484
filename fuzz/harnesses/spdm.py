"""NVIDIA GPU attestation reports: SPDM GET_MEASUREMENTS request || MEASUREMENTS response (binary), their claims,
and verification against the recorded device certificate chain and the pinned NVIDIA root.
"""

from __future__ import annotations

from functools import cache

from cryptography import x509

from fuzz._common import AT, ROOT
from qsafe._attest import EvidenceCheckError, spdm
from qsafe._attest.x509chain import load_pem_chain, pinned_roots

_CHAIN = ROOT / "attestations" / "evidence" / "recorded" / "nvtrust" / "hopperCertChain.txt"


@cache
def chain() -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    return load_pem_chain(_CHAIN.read_bytes()), pinned_roots("nvidia_device_identity_ca.pem")


def fuzz_setup() -> None:
    """Fuzzing only (the driver calls it; tests do not): the recorded chain is the same for every input, so its
    verification (several ECDSA P-384 checks, none reading the input) is done once and remembered."""
    verify_chain = spdm.verify_chain
    done: dict[tuple[int, int, object], None] = {}

    def once(chain: list[x509.Certificate], roots: list[x509.Certificate], at: object) -> None:
        key = (id(chain), id(roots), at)
        if key not in done:
            verify_chain(chain, roots, at)
            done[key] = None

    spdm.verify_chain = once  # type: ignore[assignment]


@cache
def recorded_signed() -> frozenset[bytes]:
    """The signed bytes (request || response up to the signature) of the recorded reports (the seeds)."""
    seeds = sorted((ROOT / "fuzz" / "seeds" / "spdm").glob("*.bin"))
    return frozenset(spdm.parse_report(p.read_bytes()).signed for p in seeds)


def test_one_input(data: bytes) -> None:
    report = spdm.parse_report(data)
    spdm.report_claims(report)
    report.vbios_version()
    # Before the ECDSA check, verification reads only the signature bytes; after it, only a recorded report gets
    # through. So only inputs whose signed part is a recorded one are verified: any other fails at ECDSA (2 ms).
    if report.signed not in recorded_signed():
        return
    try:
        spdm.verify_report(report, *chain(), AT, report.request_nonce)
    except EvidenceCheckError:
        pass
