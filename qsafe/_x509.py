"""Parse up front what cryptography parses lazily in a certificate.

``x509.load_*_certificate`` checks the outer structure only; names, validity and extensions are decoded on first
access, where a malformed one raises ``ValueError`` (or ``DuplicateExtension``) from a property. qsafe reads those
properties long after loading (chain checks, printed details), so every loader calls :func:`parse_lazy_parts`
and turns a malformed certificate into the caller's error class right where it was read.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509

# TypeError: cryptography builds a Name attribute with a type its OID does not allow ("oid must be …").
LAZY_ERRORS = (ValueError, TypeError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)
# What the load_* functions raise for a malformed certificate: InvalidVersion is not a ValueError.
LOAD_ERRORS = (ValueError, x509.InvalidVersion)


def parse_lazy_parts(certs: Sequence[x509.Certificate]) -> int | None:
    """Decode the names, validity and extensions of every certificate (cryptography caches them).

    Returns:
        The index of the first certificate that does not decode, or None when all do.
    """
    for i, cert in enumerate(certs):
        try:
            cert.subject, cert.issuer, cert.not_valid_before_utc, cert.not_valid_after_utc, cert.extensions  # noqa: B018
        except LAZY_ERRORS:
            return i
    return None
