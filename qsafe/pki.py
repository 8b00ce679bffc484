"""A small post-quantum PKI for model signing: a CA, intermediate CAs and code-signing certificates.

For tests and small teams that want X.509 identities on their release keys without running a CA product:
an ML-DSA-87 root CA that issues ML-DSA-65 signing certificates (any ML-DSA or ECDSA key works). Certificates
use the RFC 9881 encodings (``id-ml-dsa-44/65/87`` OIDs, parameters absent, the empty ML-DSA context), which
is what ``cryptography`` writes; ``qsafe sign --certificate`` puts them in a bundle's ``x509CertificateChain``
and ``qsafe verify --certificate-chain`` checks them (:mod:`qsafe.certificates`).

Profile: CA certificates carry basicConstraints ``cA`` (critical, optional ``pathLenConstraint``) and keyUsage
``keyCertSign, cRLSign`` (critical); signing certificates carry basicConstraints ``cA=false`` (critical),
keyUsage ``digitalSignature`` (critical), extendedKeyUsage ``codeSigning`` and optional subjectAltNames; all carry
subject and authority key identifiers. Serial numbers are random (RFC 5280: positive, at most 20 octets).
There is no revocation (no CRL or OCSP): keep validity periods short.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID

from qsafe._io import atomic_output
from qsafe.errors import KeyFileError, UsageError
from qsafe.keys import PrivateKey, PublicKey

__all__ = [
    "certificate_pem",
    "create_ca",
    "issue_ca_certificate",
    "issue_signing_certificate",
    "parse_name",
    "parse_san",
    "write_certificate",
]

_SPKI = PublicFormat.SubjectPublicKeyInfo
_HASH_FOR_CURVE: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {"secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512}


def _cryptography_key(key: PrivateKey | PublicKey) -> Any:
    inner = getattr(key._key, "key", None)  # ML-DSA and ECDSA keys are held by cryptography
    if inner is None:
        raise KeyFileError(f"{key.algorithm} keys cannot be used in X.509 certificates here",
                           hint="use an ML-DSA (ml-dsa-44/65/87) or ECDSA key; composite certificates are not "
                                "supported by the cryptography library")
    return inner


def _signature_hash(issuer_key: Any) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    if isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        return _HASH_FOR_CURVE.get(issuer_key.curve.name, hashes.SHA384)()
    return None  # ML-DSA: pure, no pre-hash (RFC 9881)


def parse_name(subject: str) -> x509.Name:
    """An RFC 4514 distinguished name (``CN=Release CA,O=Example``).

    Raises:
        UsageError: not a distinguished name.
    """
    try:
        name = x509.Name.from_rfc4514_string(subject)
    except ValueError as exc:
        raise UsageError(f"subject {subject!r} is not an RFC 4514 name: {exc}",
                         hint="e.g. 'CN=Example Release CA,O=Example'") from None
    if not list(name):
        raise UsageError("the subject name is empty")
    return name


def parse_san(value: str) -> x509.GeneralName:
    """``email:ADDRESS``, ``uri:URI`` or ``dns:NAME`` as a subjectAltName entry.

    Raises:
        UsageError: another form.
    """
    kind, _, text = value.partition(":")
    if not text or kind not in ("email", "uri", "dns"):
        raise UsageError(f"SAN {value!r} must be email:ADDRESS, uri:URI or dns:NAME")
    try:
        if kind == "email":
            return x509.RFC822Name(text)
        if kind == "uri":
            return x509.UniformResourceIdentifier(text)
        return x509.DNSName(text)
    except ValueError as exc:
        raise UsageError(f"SAN {value!r}: {exc}") from None


def _builder(subject: x509.Name, issuer: x509.Name, public: Any, issuer_public: Any, days: int,
             not_before: dt.datetime | None) -> x509.CertificateBuilder:
    if not 0 < days <= 36500:
        raise UsageError("validity must be between 1 and 36500 days")
    start = (not_before or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public)
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False))


def _ca_extensions(builder: x509.CertificateBuilder, path_length: int | None) -> x509.CertificateBuilder:
    return (builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True))


def create_ca(key: PrivateKey, subject: str, *, days: int = 3650, path_length: int | None = None,
              not_before: dt.datetime | None = None) -> x509.Certificate:
    """A self-signed root CA certificate for ``key`` (ML-DSA-87 recommended).

    Raises:
        KeyFileError: the key cannot sign certificates. UsageError: bad subject or validity.
    """
    private = _cryptography_key(key)
    name = parse_name(subject)
    builder = _ca_extensions(_builder(name, name, private.public_key(), private.public_key(), days, not_before),
                             path_length)
    return builder.sign(private, _signature_hash(private))


def _check_issuer(issuer: x509.Certificate, issuer_key: PrivateKey) -> Any:
    private = _cryptography_key(issuer_key)
    if private.public_key().public_bytes(Encoding.DER, _SPKI) != issuer.public_key().public_bytes(Encoding.DER, _SPKI):
        raise KeyFileError("the CA key does not belong to the CA certificate")
    try:
        if not issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise UsageError(f"{issuer.subject.rfc4514_string()} is not a CA certificate")
    except x509.ExtensionNotFound:
        raise UsageError(f"{issuer.subject.rfc4514_string()} is not a CA certificate") from None
    return private


def issue_ca_certificate(issuer: x509.Certificate, issuer_key: PrivateKey, public: PublicKey, subject: str, *,
                         days: int = 1825, path_length: int | None = 0,
                         not_before: dt.datetime | None = None) -> x509.Certificate:
    """An intermediate CA certificate for ``public``, issued by ``issuer`` (``path_length=0``: it issues only
    signing certificates).

    Raises:
        KeyFileError: a key cannot be used or the CA key is not the CA certificate's. UsageError: bad input.
    """
    private = _check_issuer(issuer, issuer_key)
    builder = _builder(parse_name(subject), issuer.subject, _cryptography_key(public), private.public_key(), days,
                       not_before)
    return _ca_extensions(builder, path_length).sign(private, _signature_hash(private))


def issue_signing_certificate(issuer: x509.Certificate, issuer_key: PrivateKey, public: PublicKey, subject: str, *,
                              days: int = 365, sans: Sequence[str] = (),
                              not_before: dt.datetime | None = None) -> x509.Certificate:
    """A code-signing certificate for ``public`` (the release key), issued by the CA ``issuer``.

    Args:
        issuer: the CA certificate. issuer_key: its private key. public: the signing key's public key.
        subject: RFC 4514 name. days: validity. sans: ``email:…``, ``uri:…``, ``dns:…``.
        not_before: start of validity (default now).

    Raises:
        KeyFileError: a key cannot be used or the CA key is not the CA certificate's. UsageError: bad input.
    """
    private = _check_issuer(issuer, issuer_key)
    builder = (_builder(parse_name(subject), issuer.subject, _cryptography_key(public), private.public_key(), days,
                        not_before)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([parse_san(s) for s in sans]), critical=False)
    return builder.sign(private, _signature_hash(private))


def certificate_pem(*certificates: x509.Certificate) -> bytes:
    """PEM of one or more certificates, concatenated."""
    return b"".join(c.public_bytes(Encoding.PEM) for c in certificates)


def write_certificate(path: str | Path, *certificates: x509.Certificate, overwrite: bool = False) -> Path:
    """Write certificates as PEM, atomically; never replaces an existing file unless ``overwrite``.

    Raises:
        OutputExistsError: the file exists.
    """
    target = Path(path)
    with atomic_output(target, overwrite=overwrite) as out:
        out.write(certificate_pem(*certificates))
    return target

