"""A small, explicit X.509 chain walk for device-identity PKIs (NVIDIA, AMD) at a pinned verification time.

Why not ``cryptography.x509.verification``: it implements the Web PKI / RFC 5280 profile and rejects the
extensions and EKU-less leaves these vendor chains use. We check exactly what matters for device identity: each
certificate is directly issued by the next (name + signature), every certificate is valid at ``at``, issuers are
CAs, and the chain ends at a pinned root (byte-identical, or directly issued by it).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import warnings
from collections.abc import Sequence
from importlib import resources

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from qsafe import _limits
from qsafe._x509 import LOAD_ERRORS, parse_lazy_parts
from qsafe.errors import FormatError

__all__ = ["ChainError", "load_der_or_pem", "load_pem_chain", "pinned_roots", "verify_chain"]


class ChainError(Exception):
    """The chain does not verify; the message says which link failed."""


def load_pem_chain(data: bytes) -> list[x509.Certificate]:
    """Parse concatenated PEM certificates (leaf first).

    Raises:
        FormatError: no certificate, or malformed PEM.
    """
    with warnings.catch_warnings():
        # Real vendor certificates carry non-positive serials, which cryptography warns about.
        warnings.simplefilter("ignore")
        try:
            certs = x509.load_pem_x509_certificates(data)
        except LOAD_ERRORS as exc:
            raise FormatError(f"malformed PEM certificate chain: {exc}") from exc
    if not certs:
        raise FormatError("empty certificate chain")
    return _parsed(certs)


def load_der_or_pem(data: bytes) -> list[x509.Certificate]:
    """Parse one DER certificate or a PEM chain."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return load_pem_chain(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _parsed([x509.load_der_x509_certificate(data)])
        except LOAD_ERRORS as exc:
            raise FormatError(f"malformed DER certificate: {exc}") from exc


def _parsed(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """Decode now what cryptography decodes lazily (names, validity, extensions): a malformed certificate is a
    FormatError here, not a ValueError escaping from a property read later."""
    bad = parse_lazy_parts(certs)
    if bad is not None:
        raise FormatError(f"malformed certificate {bad} in the chain (name, validity or extensions)")
    return certs


@functools.lru_cache(maxsize=16)
def pinned_roots(name: str) -> list[x509.Certificate]:
    """Load a pinned root bundle shipped in ``qsafe/_attest/roots/NAME``."""
    data = resources.files("qsafe._attest").joinpath("roots", name).read_bytes()
    return load_pem_chain(data)


def _check_time(cert: x509.Certificate, at: dt.datetime) -> None:
    if not (cert.not_valid_before_utc <= at <= cert.not_valid_after_utc):
        raise ChainError(
            f"certificate {cert.subject.rfc4514_string()} is not valid at {at.isoformat()} "
            f"(valid {cert.not_valid_before_utc.isoformat()} .. {cert.not_valid_after_utc.isoformat()})"
        )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


# Verified (child DER, issuer DER) links. A link's signature check is a pure function of the two certificates'
# bytes, so a verifier that sees the same device chains again (every appraisal of the same GPUs) skips it;
# validity periods and CA flags are still checked on every call.
_VERIFIED_LINKS: dict[tuple[bytes, bytes], bool] = {}
_MAX_LINKS = _limits.ATTESTATION_MAX_CACHED_LINKS


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> None:
    key = (child.tbs_certificate_bytes + child.signature, issuer.public_bytes(Encoding.DER))
    if key in _VERIFIED_LINKS:
        return
    _check_link(child, issuer)
    if len(_VERIFIED_LINKS) >= _MAX_LINKS:
        _VERIFIED_LINKS.clear()
    _VERIFIED_LINKS[key] = True


def _check_link(child: x509.Certificate, issuer: x509.Certificate) -> None:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError) as exc:  # InvalidSignature is a subclass of Exception, caught below
        raise ChainError(f"{child.subject.rfc4514_string()} is not issued by {issuer.subject.rfc4514_string()}: {exc}")
    except Exception as exc:  # cryptography.exceptions.InvalidSignature
        raise ChainError(
            f"signature of {child.subject.rfc4514_string()} does not verify with {issuer.subject.rfc4514_string()}"
        ) from exc


def verify_chain(chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate], at: dt.datetime) -> None:
    """Verify ``chain`` (leaf first) up to one of ``roots`` at time ``at``.

    Raises:
        ChainError: a link, a validity period, a CA flag or the anchor fails.
    """
    if not chain:
        raise ChainError("empty certificate chain")
    for cert in chain:
        _check_time(cert, at)
    for child, issuer in itertools.pairwise(chain):
        if not _is_ca(issuer):
            raise ChainError(f"issuer {issuer.subject.rfc4514_string()} is not a CA")
        _issued_by(child, issuer)
    top = chain[-1]
    for root in roots:
        if top == root:
            return
    for root in roots:
        if top.issuer == root.subject:
            _check_time(root, at)
            _issued_by(top, root)
            return
    raise ChainError(f"chain ends at {top.subject.rfc4514_string()}, which is not a pinned root")
