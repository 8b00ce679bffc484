"""Internals of attestation: evidence parsers, signature/chain verifiers, collectors' device access.

Nothing here is public API; :mod:`qsafe.attestation` is.
"""

from __future__ import annotations

__all__ = ["EvidenceCheckError"]


class EvidenceCheckError(Exception):
    """Signed evidence (a GPU SPDM report, an SEV-SNP report, a TDX quote) does not verify.

    ``check`` names the failed step (``cert_chain``, ``signature``, ``nonce``, ``report_data``, ...): the verifier
    records it as the failed check of the appraisal; the message says what failed.
    """

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check
