"""X.509 certificate chains for model signatures: verify a signing certificate up to trusted roots.

Used for bundles whose verification material is an ``x509CertificateChain`` (``model_signing sign certificate``,
``qsafe sign --certificate``): ECDSA chains as model-signing writes them, and ML-DSA chains (RFC 9881
encodings: ML-DSA-44/65/87 keys and signatures, parameters absent), e.g. an ML-DSA-87 root CA issuing an
ML-DSA-65 signing certificate.

What is checked (a code-signing profile, deliberately smaller than the Web PKI one):

- the chain, leaf first, links certificate to certificate by name *and* signature, and ends at one of the given
  trusted certificates (the same certificate, or one it directly issued). Every given certificate is a trust
  anchor, so an intermediate can be pinned as well as a root.
- every issuer is a CA (basicConstraints ``cA``), may sign certificates (keyUsage ``keyCertSign`` when keyUsage is
  present) and its ``pathLenConstraint`` holds;
- the leaf may sign code: keyUsage ``digitalSignature`` when present, extendedKeyUsage ``codeSigning`` when
  present, and at least one of the two is present (model-signing's rule, tightened to "both when both");
- every certificate on the path, the anchor included, is valid at the verification time (default: now);
- no certificate carries a critical extension qsafe does not understand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from qsafe import _limits
from qsafe._files import read_regular
from qsafe._x509 import LOAD_ERRORS, parse_lazy_parts
from qsafe.errors import FormatError, KeyFileError, SignatureError
from qsafe.policy import CertificateInfo

__all__ = [
    "MAX_CHAIN_LENGTH",
    "certificate_info",
    "load_certificates",
    "parse_der_certificates",
    "verify_chain",
]

MAX_CHAIN_LENGTH = _limits.CERTIFICATE_CHAIN_MAX_LENGTH
_UNDERSTOOD = frozenset({
    ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER, ExtensionOID.NAME_CONSTRAINTS, ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.POLICY_CONSTRAINTS, ExtensionOID.INHIBIT_ANY_POLICY,
})


def parse_der_certificates(ders: Sequence[bytes]) -> list[x509.Certificate]:
    """Parse DER certificates (a bundle's chain).

    Raises:
        FormatError: malformed certificate, or a chain longer than :data:`MAX_CHAIN_LENGTH`.
    """
    if len(ders) > MAX_CHAIN_LENGTH:
        raise FormatError(f"certificate chain has {len(ders)} certificates (at most {MAX_CHAIN_LENGTH})")
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-positive serials in real-world certificates
        for i, der in enumerate(ders):
            try:
                out.append(x509.load_der_x509_certificate(der))
            except LOAD_ERRORS as exc:
                raise FormatError(f"certificate {i} of the bundle's chain is malformed: {exc}") from None
    bad = parse_lazy_parts(out)
    if bad is not None:
        raise FormatError(f"certificate {bad} of the bundle's chain is malformed (name, validity or extensions)")
    return out


def load_certificates(paths: Sequence[str | Path]) -> list[x509.Certificate]:
    """Read PEM files of trusted certificates (``--certificate-chain``); each file may hold several.

    Text around the PEM blocks (as ``certtool`` writes) is ignored.

    Raises:
        KeyFileError: unreadable, oversized or not a regular file, or no certificate in it.
    """
    out: list[x509.Certificate] = []
    for path in paths:
        try:
            data = read_regular(path, "certificate file", max_bytes=_limits.CERTIFICATE_FILE_MAX_BYTES)
        except FormatError as exc:
            raise KeyFileError(exc.message) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                certs = x509.load_pem_x509_certificates(data)
            except LOAD_ERRORS as exc:
                raise KeyFileError(f"{path}: no PEM certificate ({exc})",
                                   hint="--certificate-chain takes PEM certificates (BEGIN CERTIFICATE)") from None
        bad = parse_lazy_parts(certs)
        if bad is not None:
            raise KeyFileError(f"{path}: certificate {bad} is malformed (name, validity or extensions)")
        out.extend(certs)
    return out


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    out: list[str] = []
    for name in ext:
        if isinstance(name, x509.RFC822Name):
            out.append(f"email:{name.value}")
        elif isinstance(name, x509.UniformResourceIdentifier):
            out.append(f"uri:{name.value}")
        elif isinstance(name, x509.DNSName):
            out.append(f"dns:{name.value}")
        elif isinstance(name, x509.OtherName):
            out.append(f"othername:{name.type_id.dotted_string}:{name.value.hex()}")
        else:
            out.append(f"{type(name).__name__}:{name.value}")
    return tuple(out)


# Fulcio's OIDC issuer extensions: v2 is a DER UTF8String, v1 (deprecated) the raw string.
_OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_OIDC_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")


def _oidc_issuer(cert: x509.Certificate) -> str | None:
    for oid, der in ((_OIDC_ISSUER_V2, True), (_OIDC_ISSUER_V1, False)):
        try:
            value = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        raw = getattr(value, "value", b"")
        if der and len(raw) >= 2 and raw[0] == 0x0C and raw[1] < 0x80:  # short-form UTF8String
            raw = raw[2:2 + raw[1]]
        return raw.decode("utf-8", "replace")
    return None


def certificate_info(cert: x509.Certificate, issuers: Sequence[x509.Certificate] = ()) -> CertificateInfo:
    """Subject, issuer, validity, SANs, Fulcio OIDC issuer and SHA-256 fingerprint of a certificate."""
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        sans=_sans(cert),
        oidc_issuer=_oidc_issuer(cert),
        sha256=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
        chain=tuple(c.subject.rfc4514_string() for c in issuers),
    )


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _check_extensions(cert: x509.Certificate) -> None:
    for ext in cert.extensions:
        if ext.critical and ext.oid not in _UNDERSTOOD:
            raise SignatureError(f"certificate {_name(cert)} has a critical extension qsafe does not understand "
                                 f"({ext.oid.dotted_string})")


def _check_time(cert: x509.Certificate, at: dt.datetime) -> None:
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise SignatureError(
            f"certificate {_name(cert)} is not valid at {at.isoformat()} (valid "
            f"{cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()})",
            hint="the chain expired or is not yet valid; to check it as of another time pass --at",
        )


def _check_leaf(cert: x509.Certificate) -> None:
    ku = eku = None
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        pass
    if ku is None and eku is None:
        raise SignatureError(f"signing certificate {_name(cert)} has neither keyUsage nor extendedKeyUsage")
    if ku is not None and not ku.digital_signature:
        raise SignatureError(f"signing certificate {_name(cert)} may not sign (keyUsage lacks digitalSignature)")
    if eku is not None and ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise SignatureError(f"signing certificate {_name(cert)} is not for code signing (extendedKeyUsage)")


def _check_issuer(issuer: x509.Certificate, below: int) -> None:
    """``below``: how many CA certificates lie between this issuer and the leaf."""
    try:
        bc = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise SignatureError(f"issuer {_name(issuer)} is not a CA (basicConstraints)")
    if bc.path_length is not None and below > bc.path_length:
        raise SignatureError(f"issuer {_name(issuer)} allows {bc.path_length} intermediate(s) below it, not {below}")
    try:
        ku = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not ku.key_cert_sign:
        raise SignatureError(f"issuer {_name(issuer)} may not sign certificates (keyUsage lacks keyCertSign)")


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    if child.issuer != issuer.subject:
        return False
    try:
        child.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _same(a: x509.Certificate, b: x509.Certificate) -> bool:
    return a.public_bytes(Encoding.DER) == b.public_bytes(Encoding.DER)


def verify_chain(
    chain: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate], *, at: dt.datetime | None = None
) -> list[x509.Certificate]:
    """Verify a signing certificate chain (leaf first) up to one of ``trusted``.

    Args:
        chain: the bundle's certificates, leaf first, then its issuers in order (the anchor may be included).
        trusted: the trust anchors (``--certificate-chain``).
        at: the verification time (default: now, UTC).

    Returns:
        The verified path: leaf, intermediates, anchor.

    Raises:
        SignatureError: a link, a validity period, a CA constraint, the leaf's usage or the anchor fails.
        FormatError: no trusted certificate was given.
    """
    if not trusted:
        raise FormatError("no trusted certificate given to check the chain against",
                          hint="pass the root (and, if pinned, intermediate) certificates with --certificate-chain")
    when = at or dt.datetime.now(dt.timezone.utc)
    leaf = chain[0]
    _check_leaf(leaf)
    path = [leaf]
    for depth in range(len(chain) + 1):
        current = path[-1]
        _check_extensions(current)
        _check_time(current, when)
        anchor = next((t for t in trusted if _same(t, current)), None)
        if anchor is not None and depth > 0:
            return path
        anchor = next((t for t in trusted if _issued_by(current, t)), None)
        if anchor is not None:
            _check_issuer(anchor, depth)
            _check_extensions(anchor)
            _check_time(anchor, when)
            return [*path, anchor]
        if depth + 1 >= len(chain):
            break
        issuer = chain[depth + 1]
        if not _issued_by(current, issuer):
            raise SignatureError(f"certificate {_name(current)} is not signed by the next certificate of the "
                                 f"chain, {_name(issuer)}")
        _check_issuer(issuer, depth)
        path.append(issuer)
    raise SignatureError(
        f"the certificate chain ({' -> '.join(_name(c) for c in path)}) does not lead to any of the "
        f"{len(trusted)} trusted certificate(s)",
        hint="pass the CA that issued the signing certificate with --certificate-chain",
    )
