"""The signature-scheme registry (entry-point group ``qsafe.signers``) and what a scheme implements.

A *scheme* is one signature algorithm: its name (what ``qsafe keygen --alg`` takes), the OID that names it in
SubjectPublicKeyInfo and PKCS#8, whether a forgery needs a quantum-safe break, its bundle ``keyDetails`` name,
and four operations: generate a key, parse a public key (SPKI DER), parse a private key (PKCS#8 DER), and —
on the key handles those return — sign and verify with a context string. :mod:`qsafe.keys` wraps the handles
in its public :class:`~qsafe.keys.PrivateKey` / :class:`~qsafe.keys.PublicKey`; the key id is always
``sha256:`` + SHA-256 of the DER SPKI, whatever the scheme.

qsafe's own schemes (ML-DSA-44/65/87, the ML-DSA + Ed25519 composites, ECDSA P-256/384/521) are registered in
its ``pyproject.toml`` under this group like any plugin's. A plugin adds a scheme with one entry point whose
value is a module attribute holding a :class:`SignatureScheme` (see docs/plugins.md; ``plugins/qsafe-liboqs``
is the worked example). The DER helpers below are public so that a plugin never imports qsafe's private modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from qsafe._crypto.der import (
    algorithm_oid_der,
    decode_pkcs8,
    decode_spki,
    encode_oid,
    encode_pkcs8,
    encode_spki,
)
from qsafe.errors import KeyFileError, MissingDependencyError, UsageError
from qsafe.plugins import SIGNERS_GROUP, registry

__all__ = [
    "KNOWN_PLUGIN_ALGORITHMS",
    "KnownAlgorithm",
    "PrivateKeyHandle",
    "PublicKeyHandle",
    "SignatureScheme",
    "decode_pkcs8",
    "decode_spki",
    "encode_oid",
    "encode_pkcs8",
    "encode_spki",
    "installed",
    "missing_plugin_error",
    "oid_of",
    "scheme",
    "scheme_for_key_details",
    "schemes_for_oid",
    "signature_algorithms",
]


@runtime_checkable
class PublicKeyHandle(Protocol):
    """A scheme's public key."""

    def spki_der(self) -> bytes:
        """The DER SubjectPublicKeyInfo (the key id is SHA-256 over these bytes)."""
        ...

    def verify(self, signature: bytes, data: bytes, context: bytes) -> None:
        """Return quietly when ``signature`` is valid over ``data`` under ``context``.

        Raises:
            cryptography.exceptions.InvalidSignature or qsafe.errors.SignatureError: it is not.
        """
        ...


@runtime_checkable
class PrivateKeyHandle(Protocol):
    """A scheme's private key."""

    def pkcs8_der(self) -> bytes:
        """The unencrypted DER PKCS#8 (qsafe protects it with age-scrypt before it touches disk)."""
        ...

    def public(self) -> PublicKeyHandle:
        """The matching public key."""
        ...

    def sign(self, data: bytes, context: bytes) -> bytes:
        """Sign ``data`` under ``context`` (at most 255 bytes; a scheme without contexts documents what it does)."""
        ...


@runtime_checkable
class SignatureScheme(Protocol):
    """One signature algorithm, as registered in ``qsafe.signers``.

    Attributes:
        name: qsafe's algorithm name, the entry point's name (``ml-dsa-65``, ``slh-dsa-sha2-128s``).
        oid: dotted OID of the SPKI / PKCS#8 AlgorithmIdentifier. Several schemes may share one (ECDSA curves):
            parsing tries each and takes the first that accepts the key.
        post_quantum: True when a forgery needs breaking a post-quantum algorithm.
        key_details: the bundle's ``verificationMaterial.publicKey.keyDetails`` name (Sigstore's names where it
            has one, else a ``QSAFE_`` name).
        description: one line naming the standard (and the revision, for drafts).
        keygen: False for verify-only schemes (``qsafe keygen --alg`` does not offer them).
    """

    name: str
    oid: str
    post_quantum: bool
    key_details: str
    description: str
    keygen: bool

    def generate(self) -> PrivateKeyHandle:
        """A fresh private key from the OS CSPRNG."""
        ...

    def public_from_spki(self, spki: bytes) -> PublicKeyHandle:
        """Parse a DER SPKI whose OID is :attr:`oid`.

        Raises:
            KeyFileError: malformed, or not a key of this scheme.
        """
        ...

    def private_from_pkcs8(self, pkcs8: bytes) -> PrivateKeyHandle:
        """Parse an unencrypted DER PKCS#8 whose OID is :attr:`oid`.

        Raises:
            KeyFileError: malformed, or not a key of this scheme.
        """
        ...


@dataclass(frozen=True)
class KnownAlgorithm:
    """An algorithm qsafe knows by name and OID but does not implement itself: which plugin provides it."""

    name: str
    oid: str
    key_details: str
    plugin: str
    install: str


def _liboqs(name: str, oid: str, details: str) -> KnownAlgorithm:
    return KnownAlgorithm(name, oid, details, "qsafe-liboqs",
                          "pip install ./plugins/qsafe-liboqs (it needs the liboqs C library: `make liboqs` "
                          "builds it, then set OQS_INSTALL_PATH=build/oqs-prefix)")


_SLH_DSA_SETS = ("sha2-128s", "sha2-128f", "sha2-192s", "sha2-192f", "sha2-256s", "sha2-256f",
                 "shake-128s", "shake-128f", "shake-192s", "shake-192f", "shake-256s", "shake-256f")

# Algorithms a plugin provides, so that a key or bundle that needs one fails with exit 5 naming the plugin
# (not "unknown key"). Data only: nothing here is imported or implemented by qsafe.
KNOWN_PLUGIN_ALGORITHMS: tuple[KnownAlgorithm, ...] = (
    *(_liboqs(f"slh-dsa-{s}", f"2.16.840.1.101.3.4.3.{20 + i}", "QSAFE_SLH_DSA_" + s.upper().replace("-", "_"))
      for i, s in enumerate(_SLH_DSA_SETS)),
    _liboqs("falcon-512", "1.3.9999.3.11", "QSAFE_FALCON_512"),
    _liboqs("falcon-1024", "1.3.9999.3.14", "QSAFE_FALCON_1024"),
    _liboqs("ml-dsa-65-slh-dsa-sha2-128s", "2.25.211432629807212156578416936559014524121",
            "QSAFE_COMPOSITE_MLDSA65_SLHDSA_SHA2_128S"),
    _liboqs("ml-dsa-87-slh-dsa-sha2-256s", "2.25.15082439324558659291678523129916960134",
            "QSAFE_COMPOSITE_MLDSA87_SLHDSA_SHA2_256S"),
)


def _check(obj: object, name: str) -> SignatureScheme:
    if not isinstance(obj, SignatureScheme) or obj.name != name:
        raise MissingDependencyError(f"the signer registered as {name!r} is not a qsafe SignatureScheme named {name!r}",
                                     hint="fix the plugin's entry point (see docs/plugins.md)")
    return obj


def installed() -> dict[str, SignatureScheme]:
    """Every installed scheme that loads, by name: qsafe's built-ins first, then plugins'."""
    reg = registry(SIGNERS_GROUP)
    return {name: _check(obj, name) for name, obj in reg.load_all().items()}


def signature_algorithms() -> list[str]:
    """The names ``qsafe keygen --alg`` offers: every installed scheme that can generate keys."""
    return [name for name, s in installed().items() if s.keygen]


def missing_plugin_error(*, name: str | None = None, oid_der: bytes | None = None,
                         key_details: str | None = None) -> MissingDependencyError | None:
    """The exit-5 error for an algorithm a known plugin provides but that is not installed, else None."""
    for known in KNOWN_PLUGIN_ALGORITHMS:
        if (name == known.name or key_details == known.key_details
                or (oid_der is not None and oid_der == encode_oid(known.oid))):
            return MissingDependencyError(
                f"signature algorithm {known.name} needs the plugin {known.plugin}, which is not installed",
                hint=known.install)
    return None


def scheme(name: str) -> SignatureScheme:
    """The installed scheme called ``name``.

    Raises:
        MissingDependencyError: a known plugin provides it but is not installed (exit 5, naming the plugin), or
            its plugin cannot be loaded.
        KeyFileError: no scheme of that name is known.
    """
    reg = registry(SIGNERS_GROUP)
    try:
        return _check(reg.load(name), name)
    except UsageError:
        missing = missing_plugin_error(name=name)
        if missing is not None:
            raise missing from None
        raise KeyFileError(f"unknown signature algorithm {name!r}; installed: {', '.join(reg.names())}",
                           hint="`qsafe keygen --help` lists the installed algorithms; plugins add more") from None


def schemes_for_oid(oid_der: bytes) -> list[SignatureScheme]:
    """Installed schemes whose OID is ``oid_der`` (DER-encoded), built-ins first; plugins are scanned only when no
    built-in matches."""
    builtin = [s for s in _builtin() if encode_oid(s.oid) == oid_der]
    if builtin:
        return builtin
    return [s for s in installed().values() if encode_oid(s.oid) == oid_der]


def _builtin() -> list[SignatureScheme]:
    reg = registry(SIGNERS_GROUP)
    return [_check(reg.load(n), n) for n in reg.builtins()]


def scheme_for_key_details(details: str) -> SignatureScheme | None:
    """The installed scheme whose bundle ``keyDetails`` name is ``details``, or None (built-ins are looked at
    first, so the common case never scans the other installed distributions)."""
    for group in (_builtin, lambda: list(installed().values())):
        for s in group():
            if s.key_details == details:
                return s
    return None


def oid_of(der: bytes, *, private: bool) -> bytes:
    """The DER OID of an SPKI (``private=False``) or PKCS#8 structure.

    Raises:
        KeyFileError: the structure is malformed.
    """
    return algorithm_oid_der(der, private=private)
