"""X.509 certificates of certificate-signed bundles (issue 9): the bundle's DER chain, the details ``qsafe inspect``
and ``qsafe verify`` print from it, and the chain check against a trusted root (``--certificate-chain``).

The input is one DER certificate, taken as the leaf of the recorded model-signing test chain (leaf, intermediate
CA) and checked against its recorded root CA.
"""

from __future__ import annotations

from functools import cache

from cryptography import x509

from fuzz._common import AT, ROOT
from qsafe.certificates import certificate_info, load_certificates, parse_der_certificates, verify_chain

_INPUTS = ROOT / "tests" / "vectors" / "model-signing" / "generated" / "inputs"


@cache
def recorded() -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    return load_certificates([_INPUTS / "int-ca.pem"]), load_certificates([_INPUTS / "root-ca.pem"])


def test_one_input(data: bytes) -> None:
    intermediates, roots = recorded()
    (leaf,) = parse_der_certificates([data])
    certificate_info(leaf, intermediates)
    verify_chain([leaf, *intermediates], roots, at=AT)
