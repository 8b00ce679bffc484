"""Sigstore keyless signatures: verify them offline against a pinned trust root, and sign through Fulcio/Rekor.

Everything Sigstore-specific goes through the real ``sigstore`` library (the ``qsafe[sigstore]`` extra), imported
only when a keyless bundle or option needs it, so ``qsafe verify`` of a key-signed model never loads it.

Trust roots (:class:`TrustRoot`):

- default: Sigstore's production ``trusted_root.json``, shipped inside qsafe (``qsafe/_sigstore/``, copied from
  the sigstore 4.5.1 wheel, which embeds the TUF-verified production root) and checked against
  :data:`PRODUCTION_TRUSTED_ROOT_SHA256` every time it is loaded. It is never taken from a user's TUF cache
  (sigstore's ``offline=True`` trusts whatever sits there) and never fetched: verification is fully offline.
- ``TrustRoot.from_file(PATH)``: a ``ClientTrustConfig`` (as ``model_signing --trust_config`` takes: trusted
  root + signing config, for private Sigstore instances) or a bare ``TrustedRoot`` JSON.

Verification (:func:`verify_keyless`) runs sigstore-python's ``Verifier.verify_dsse``: Fulcio chain at the
logged time, SCT, transparency-log inclusion proof / checkpoint / SET (Rekor v1 ``dsse/0.0.1`` and Rekor v2
``hashedrekord/0.0.2`` entries), signed timestamps, and the DSSE signature. Then the certificate is matched
against the expected identities with sigstore-python's own ``Identity`` policy; no identity, no verification.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography import x509

from qsafe.errors import (
    FormatError,
    KeyFileError,
    MissingDependencyError,
    PolicyError,
    SignatureError,
    UnavailableError,
    UsageError,
)
from qsafe.policy import Identity, LogEntryInfo

__all__ = [
    "IDENTITY_TOKEN_ENV",
    "PRODUCTION_TRUSTED_ROOT_SHA256",
    "KeylessResult",
    "TrustRoot",
    "bundle_log_entries",
    "check_identity_token",
    "find_identity_token",
    "sign_keyless",
    "verify_keyless",
]

PRODUCTION_TRUSTED_ROOT_SHA256 = "6494e21ea73fa7ee769f85f57d5a3e6a08725eae1e38c755fc3517c9e6bc0b66"
_PRODUCTION_FILE = "trusted_root.production.json"
IDENTITY_TOKEN_ENV = "SIGSTORE_IDENTITY_TOKEN"  # the variable sigstore-python's own CLI reads
_TRUSTED_ROOT_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
_TRUST_CONFIG_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"


def _sigstore() -> Any:
    try:
        import sigstore.models
        import sigstore.verify
    except ImportError as exc:  # pragma: no cover - the dev install always has it
        raise MissingDependencyError(f"Sigstore keyless bundles need the sigstore library ({exc})",
                                     hint="pip install 'qsafe[sigstore]'") from None
    return sigstore


@dataclass(frozen=True)
class TrustRoot:
    """A Sigstore trust root (and, from a client trust config, the services to sign with).

    Attributes:
        source: where it came from, for messages (``sigstore production (pinned)`` or a path).
    """

    source: str
    document: bytes  # the JSON bytes handed to the sigstore library
    is_client_config: bool = False

    @classmethod
    def production(cls) -> TrustRoot:
        """Sigstore's production trust root, shipped with qsafe and pinned by SHA-256.

        Raises:
            FormatError: the shipped file does not match the pin (a damaged or altered installation).
        """
        return _production()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrustRoot:
        """Read a ``ClientTrustConfig`` or ``TrustedRoot`` JSON file (``--trust-config``).

        Raises:
            FormatError: unreadable, oversized, not JSON, or not one of those two documents.
        """
        from qsafe import _json, _limits
        from qsafe._files import read_regular

        p = Path(path)
        data = read_regular(p, "trust configuration", max_bytes=_limits.SIGSTORE_TRUST_MAX_BYTES)
        doc = _json.loads(data, f"trust configuration {str(p)!r}")
        media_type = doc.get("mediaType") if isinstance(doc, dict) else None
        if media_type not in (_TRUSTED_ROOT_TYPE, _TRUST_CONFIG_TYPE):
            raise FormatError(f"{p} is neither a Sigstore ClientTrustConfig nor a TrustedRoot (mediaType "
                              f"{media_type!r})", hint="pass the trust_config.json of the private Sigstore instance")
        root = cls(str(p), data, media_type == _TRUST_CONFIG_TYPE)
        root.trusted_root()  # parse now: a broken file is a format error at the option, not later
        return root

    def trusted_root(self) -> Any:
        """The sigstore ``TrustedRoot`` object (parsed once per process).

        Raises:
            FormatError: the document is not a valid trust root.
        """
        return _parse_trusted_root(self.document, self.is_client_config, self.source)

    def client_trust_config(self) -> Any:
        """The sigstore ``ClientTrustConfig`` (signing services + trust root) of a trust-config file.

        Raises:
            UsageError: this trust root has no signing configuration (a bare TrustedRoot).
        """
        if not self.is_client_config:
            raise UsageError(f"{self.source} is a TrustedRoot without signing services",
                             hint="signing needs a ClientTrustConfig (trustedRoot + signingConfig)")
        sigstore = _sigstore()
        try:
            return sigstore.models.ClientTrustConfig.from_json(self.document.decode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - pydantic/sigstore raise many types for a bad document
            raise FormatError(f"{self.source} is not a valid ClientTrustConfig: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@functools.lru_cache(maxsize=1)
def _production() -> TrustRoot:
    data = resources.files("qsafe._sigstore").joinpath(_PRODUCTION_FILE).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != PRODUCTION_TRUSTED_ROOT_SHA256:
        raise FormatError(f"qsafe's copy of the Sigstore production trust root has SHA-256 {digest}, not the "
                          f"pinned {PRODUCTION_TRUSTED_ROOT_SHA256}", hint="reinstall qsafe")
    return TrustRoot("sigstore production trust root (pinned, shipped with qsafe)", data)


@functools.lru_cache(maxsize=8)
def _parse_trusted_root(document: bytes, client_config: bool, source: str) -> Any:
    sigstore = _sigstore()
    try:
        if client_config:
            return sigstore.models.ClientTrustConfig.from_json(document.decode("utf-8")).trusted_root
        from sigstore_models.trustroot import v1 as trustroot_v1  # what TrustedRoot.from_file parses with

        return sigstore.models.TrustedRoot(trustroot_v1.TrustedRoot.from_json(document))
    except Exception as exc:  # noqa: BLE001 - pydantic/sigstore raise many types for a bad document
        raise FormatError(f"{source} is not a valid Sigstore trust root: {_first_line(exc)}") from None


@dataclass(frozen=True)
class KeylessResult:
    """A keyless bundle that verified: its payload, certificate, matched identities and log entries."""

    payload_type: str
    payload: bytes
    certificate: x509.Certificate
    identities: tuple[tuple[str, str], ...]
    log_entries: tuple[LogEntryInfo, ...]


class _AfterVerification:
    """sigstore calls ``policy.verify(cert)`` in the middle of its checks; qsafe matches identities only after
    every cryptographic check passed (so a forged bundle is a signature error, exit 10, never a policy one).
    This object only records the certificate; :func:`verify_keyless` applies sigstore's ``Identity`` policy
    right after ``verify_dsse`` returns."""

    def verify(self, cert: x509.Certificate) -> None:  # the sigstore VerificationPolicy protocol
        self.cert = cert


def bundle_log_entries(document: dict[str, Any]) -> tuple[LogEntryInfo, ...]:
    """The transparency-log entries a bundle document lists (index, integrated time, log id, kind/version).

    Read for reports; only :func:`verify_keyless` establishes that they are genuine.

    Raises:
        FormatError: an entry of the wrong shape.
    """
    material = document.get("verificationMaterial", {})
    entries = material.get("tlogEntries", []) if isinstance(material, dict) else []
    out = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            kv = entry.get("kindVersion", {})
            integrated = int(entry.get("integratedTime", 0) or 0)
            log_id = entry.get("logId", {}).get("keyId", "")
            out.append(LogEntryInfo(int(entry.get("logIndex", 0)), integrated or None,
                                    base64.b64decode(log_id, validate=True).hex(),
                                    f"{kv.get('kind')}/{kv.get('version')}"))
        except (AttributeError, TypeError, ValueError):
            raise FormatError("a transparency-log entry of the bundle is malformed") from None
    return tuple(out)


def verify_keyless(
    raw: bytes, identities: Sequence[Identity], trust_root: TrustRoot | None = None, *,
    document: dict[str, Any] | None = None,
) -> KeylessResult:
    """Verify a Sigstore keyless DSSE bundle offline and match its certificate against ``identities``.

    Args:
        raw: the bundle file's bytes.
        identities: the accepted (identity, issuer) pairs; at least one is required.
        trust_root: the Sigstore trust root (default: the pinned production root).
        document: the already parsed bundle JSON (for the log-entry report).

    Returns:
        The verified payload, certificate, matching identities and log entries.

    Raises:
        UsageError: no identity given. MissingDependencyError: sigstore is not installed.
        FormatError: the bundle is not a valid Sigstore bundle. SignatureError: any cryptographic or
        transparency check fails. PolicyError: it verifies, but the certificate matches none of ``identities``.
    """
    if not identities:
        raise UsageError("a Sigstore keyless bundle is verified against an expected identity and issuer",
                         hint="pass --identity and --issuer (there is no 'any identity' default)")
    sigstore = _sigstore()
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError

    root = (trust_root or TrustRoot.production()).trusted_root()
    try:
        bundle = sigstore.models.Bundle.from_json(raw)
    except (sigstore.models.InvalidBundle, SigstoreError, ValueError) as exc:
        raise FormatError(f"not a valid Sigstore bundle: {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - pydantic validation errors of a malformed document
        raise FormatError(f"not a valid Sigstore bundle: {_first_line(exc)}") from None
    recorder = _AfterVerification()
    try:
        payload_type, payload = sigstore.verify.Verifier(trusted_root=root).verify_dsse(bundle, recorder)
    except VerificationError as exc:
        raise SignatureError(f"the Sigstore keyless bundle does not verify: {_first_line(exc)}") from None
    except SigstoreError as exc:
        raise FormatError(f"the Sigstore keyless bundle cannot be checked: {_first_line(exc)}") from None
    cert = bundle.signing_certificate
    matched = []
    for want in identities:
        try:
            sigstore.verify.policy.Identity(identity=want.identity, issuer=want.issuer).verify(cert)
        except VerificationError:
            continue
        matched.append((want.identity, want.issuer))
    if not matched:
        from qsafe.certificates import certificate_info

        info = certificate_info(cert)
        wanted = "; ".join(f"{i.identity} (issuer {i.issuer})" for i in identities)
        raise PolicyError(
            f"the keyless signature verifies, but it was made by {', '.join(info.sans) or 'no SAN'} "
            f"(issuer {info.oidc_issuer or 'unknown'}), not by {wanted}",
            hint="check --identity/--issuer; only a signature by the expected identity is accepted",
        )
    return KeylessResult(payload_type, payload, cert, tuple(matched), bundle_log_entries(document or {}))


def find_identity_token(token_file: str | os.PathLike[str] | None = None) -> str:
    """An OIDC identity token for keyless signing: from a file, ``$SIGSTORE_IDENTITY_TOKEN``, or the ambient
    credentials of the CI environment (GitHub Actions, GitLab, Buildkite, Google Cloud) as sigstore detects
    them. Tokens are bearer secrets, so never taken from the command line.

    Raises:
        KeyFileError: the file cannot be read or is empty. UsageError: no token anywhere.
    """
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"cannot read identity token file {token_file}: {exc}") from None
        if not token:
            raise KeyFileError(f"identity token file {token_file} is empty")
        return token
    token = os.environ.get(IDENTITY_TOKEN_ENV, "").strip()
    if token:
        return token
    _sigstore()
    from sigstore.oidc import detect_credential

    try:
        ambient = detect_credential()
    except Exception as exc:  # noqa: BLE001 - id's detectors raise their own error types
        raise UsageError(f"ambient OIDC credentials were found but could not be used: {_first_line(exc)}") from None
    if ambient:
        return str(ambient)
    raise UsageError("keyless signing needs an OIDC identity token",
                     hint=f"run in CI with OIDC enabled, set ${IDENTITY_TOKEN_ENV}, or pass --identity-token-file")


def check_identity_token(token: str) -> str:
    """Parse an OIDC identity token as sigstore does (audience ``sigstore``, ``iss``/``sub``/``iat``/``exp``
    present, within its validity period); returns the identity it names. Signing calls it before hashing, so an
    expired token fails at once, not after the model was hashed.

    Raises:
        KeyFileError: the token is malformed, expired or not for the audience ``sigstore``.
    """
    _sigstore()
    from sigstore.oidc import IdentityError, IdentityToken

    try:
        return str(IdentityToken(token).identity)
    except IdentityError as exc:
        raise KeyFileError(f"the OIDC identity token is not usable: {_first_line(exc)}",
                           hint="tokens are short-lived; fetch a fresh one (audience 'sigstore')") from None


def sign_keyless(payload: bytes, token: str, trust_root: TrustRoot | None = None) -> bytes:
    """Sign an in-toto statement keyless: an ephemeral key, a Fulcio certificate for the token's identity, a
    Rekor entry. Returns the Sigstore bundle JSON (what ``model_signing verify sigstore`` reads).

    Args:
        payload: the exact in-toto statement bytes (the same bytes a post-quantum signature covers).
        token: the OIDC identity token.
        trust_root: a client trust configuration (private instance); default: Sigstore production through TUF.

    Raises:
        KeyFileError: the token is malformed, expired or not for the audience ``sigstore``.
        UnavailableError: the Sigstore services (or the TUF repository) cannot be reached or refuse.
    """
    sigstore = _sigstore()
    from sigstore.dsse import Statement
    from sigstore.errors import Error as SigstoreError
    from sigstore.oidc import IdentityError, IdentityToken
    from sigstore.sign import SigningContext

    try:
        identity = IdentityToken(token)
    except IdentityError as exc:
        raise KeyFileError(f"the OIDC identity token is not usable: {_first_line(exc)}",
                           hint="tokens are short-lived; fetch a fresh one (audience 'sigstore')") from None
    if trust_root is not None:
        config = trust_root.client_trust_config()
    else:
        try:
            config = sigstore.models.ClientTrustConfig.production()
        except Exception as exc:  # noqa: BLE001 - TUF/network errors
            raise UnavailableError(f"cannot reach Sigstore's TUF repository: {_first_line(exc)}") from None
    try:
        context = SigningContext.from_trust_config(config)
        with context.signer(identity, cache=True) as signer:
            bundle = signer.sign_dsse(Statement(payload))
    except SigstoreError as exc:
        raise UnavailableError(f"keyless signing failed: {_first_line(exc)}",
                               hint="check the network and the Sigstore services of the trust config") from None
    return str(bundle.to_json()).encode("utf-8")
