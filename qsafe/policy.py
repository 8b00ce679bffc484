"""What a verifier accepts once signatures are valid: small policies that compose.

A policy judges the :class:`Signer` records of the signatures that verified cryptographically (one per bundle;
a hybrid release has two). Policies raise :class:`~qsafe.errors.PolicyError`; they never return a bool.

- :class:`VerificationPolicy` (the default policy of every verify call): some verified signature must be
  post-quantum (ML-DSA, or a composite containing ML-DSA) unless ``allow_classical=True``; ``algorithms``
  restricts the accepted algorithms.
- :class:`PostQuantum`: some verified signature is post-quantum (``--require pq``).
- :class:`Identity`: a Sigstore keyless signature by this identity (certificate SAN) from this OIDC issuer
  (``--identity/--issuer``, ``--require sigstore:ID@ISSUER``). Both are required; there is no "any identity".
  The match itself is sigstore-python's ``Identity`` policy, applied to the verified certificate.
- :class:`CertificateIdentity`: an X.509-chain signature whose leaf has this SAN and/or subject.
- :class:`AllOf` / :class:`AnyOf`: combinations. An empty one is refused (it would accept everything / nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from qsafe.errors import PolicyError, UsageError
from qsafe.keys import PublicKey

__all__ = [
    "AllOf",
    "AnyOf",
    "CertificateIdentity",
    "CertificateInfo",
    "Identity",
    "LogEntryInfo",
    "Policy",
    "PostQuantum",
    "Signer",
    "VerificationPolicy",
]


@dataclass(frozen=True)
class CertificateInfo:
    """The facts of a verified X.509 signing certificate, for policies and reports."""

    subject: str
    issuer: str
    serial: str
    not_before: str
    not_after: str
    sans: tuple[str, ...] = ()  # "email:…", "uri:…", "dns:…", "othername:…"
    oidc_issuer: str | None = None  # Fulcio's OIDC issuer extension (keyless certificates)
    sha256: str = ""  # fingerprint of the DER certificate
    chain: tuple[str, ...] = ()  # subjects of the issuers, leaf's issuer first


@dataclass(frozen=True)
class LogEntryInfo:
    """A transparency-log entry that was verified with the bundle (keyless signatures)."""

    log_index: int
    integrated_time: int | None  # seconds since the epoch (Rekor v1); None for Rekor v2 entries
    log_id: str  # hex
    kind: str  # e.g. "dsse/0.0.1", "hashedrekord/0.0.2"


@dataclass(frozen=True)
class Signer:
    """A signature that verified: the kind of trust it rests on, the algorithm and who signed.

    Attributes:
        kind: ``key`` (a given public key), ``certificate`` (an X.509 chain to given roots) or ``sigstore``
            (keyless: Fulcio certificate + transparency log, against a Sigstore trust root).
        algorithm: qsafe's algorithm name (``ml-dsa-65``, ``ecdsa-p256``, ...).
        post_quantum: a forgery needs breaking ML-DSA.
        key_id: ``sha256:`` of the signing key's DER SubjectPublicKeyInfo.
        source: the bundle it came from (a path, or ``<bytes>``).
        certificate: the signing certificate (certificate and keyless signatures).
        identities: the keyless identities it was checked against and matched, as ``(identity, issuer)``.
        log_entries: verified transparency-log entries (keyless signatures).
    """

    kind: str
    algorithm: str
    post_quantum: bool
    key_id: str
    source: str = "<bytes>"
    certificate: CertificateInfo | None = None
    identities: tuple[tuple[str, str], ...] = ()
    log_entries: tuple[LogEntryInfo, ...] = ()


@runtime_checkable
class Policy(Protocol):
    """Anything with ``check_signers``; policies compose through :class:`AllOf` and :class:`AnyOf`."""

    def check_signers(self, signers: Sequence[Signer]) -> None:
        """Accept the verified signers or raise :class:`~qsafe.errors.PolicyError`."""

    def keyless_identities(self) -> tuple[Identity, ...]:
        """The keyless identities this policy names (a keyless bundle is only verified against these)."""


def _describe(signers: Sequence[Signer]) -> str:
    return ", ".join(f"{s.kind} {s.algorithm}" for s in signers) or "none"


@dataclass(frozen=True)
class VerificationPolicy:
    """The default policy; pass it explicitly to :func:`qsafe.verify`.

    Attributes:
        allow_classical: accept a release whose verified signatures are all classical (ECDSA; every
            model-signing and Sigstore keyless bundle). Default False: some signature must be post-quantum.
        algorithms: if set, every verified signature must use one of these (qsafe ids, e.g. ``{"ml-dsa-87"}``).
    """

    allow_classical: bool = False
    algorithms: frozenset[str] | None = None

    def check(self, key: PublicKey) -> None:
        """Accept or refuse a single signature that verified with ``key``.

        Raises:
            PolicyError: the algorithm is classical-only (without ``allow_classical``) or not in ``algorithms``.
        """
        self.check_signers([Signer("key", key.algorithm, key.post_quantum, key.key_id)])

    def check_signers(self, signers: Sequence[Signer]) -> None:
        """Accept or refuse the verified signatures (see the class attributes).

        Raises:
            PolicyError: an algorithm outside ``algorithms``, or no post-quantum signature.
        """
        for s in signers:
            if self.algorithms is not None and s.algorithm not in self.algorithms:
                raise PolicyError(
                    f"signature algorithm {s.algorithm} is not allowed by the policy "
                    f"(allowed: {', '.join(sorted(self.algorithms)) or 'none'})",
                    hint="sign with an allowed algorithm, or widen the policy",
                )
        if not self.allow_classical:
            PostQuantum().check_signers(signers)

    def keyless_identities(self) -> tuple[Identity, ...]:
        return ()


@dataclass(frozen=True)
class PostQuantum:
    """Some verified signature must be post-quantum (ML-DSA alone or in a composite)."""

    def check_signers(self, signers: Sequence[Signer]) -> None:
        """Raises: PolicyError: every verified signature is classical-only."""
        if any(s.post_quantum for s in signers):
            return
        only = signers[0].algorithm if len(signers) == 1 else _describe(signers)
        raise PolicyError(
            f"the signature is classical-only ({only}); the policy requires a post-quantum signature",
            hint="--allow-classical accepts classical-only signatures (model-signing, Sigstore keyless); "
                 "a hybrid release adds an ML-DSA signature (qsafe sign --key … --sigstore)",
        )

    def keyless_identities(self) -> tuple[Identity, ...]:
        return ()


@dataclass(frozen=True)
class Identity:
    """A Sigstore keyless signature by ``identity`` (a SAN of the Fulcio certificate: an e-mail address or a
    workflow URI) whose OIDC issuer is ``issuer`` (e.g. ``https://github.com/login/oauth``)."""

    identity: str
    issuer: str

    def __post_init__(self) -> None:
        if not self.identity or not self.issuer:
            raise UsageError("a keyless identity needs both an identity and an OIDC issuer",
                             hint="pass --identity and --issuer (there is no 'any identity' default)")

    def check_signers(self, signers: Sequence[Signer]) -> None:
        """Raises: PolicyError: no verified keyless signature matched this identity and issuer."""
        if any(s.kind == "sigstore" and (self.identity, self.issuer) in s.identities for s in signers):
            return
        seen = [f"{s.certificate.sans} via {s.certificate.oidc_issuer}" for s in signers
                if s.kind == "sigstore" and s.certificate is not None]
        raise PolicyError(
            f"no Sigstore keyless signature by {self.identity} (issuer {self.issuer})"
            + (f"; keyless signatures found: {'; '.join(seen)}" if seen else "; no keyless signature verified"),
            hint="check --identity/--issuer against `qsafe inspect` of the bundle",
        )

    def keyless_identities(self) -> tuple[Identity, ...]:
        return (self,)


@dataclass(frozen=True)
class CertificateIdentity:
    """An X.509 certificate-chain signature whose leaf certificate has this SAN and/or subject.

    Attributes:
        san: a subjectAltName value as qsafe prints it (``email:…``, ``uri:…``, ``dns:…``).
        subject: the leaf's subject, RFC 4514 (e.g. ``CN=release-signer,O=Example``).
    """

    san: str | None = None
    subject: str | None = None

    def __post_init__(self) -> None:
        if self.san is None and self.subject is None:
            raise UsageError("CertificateIdentity needs a san or a subject")

    def check_signers(self, signers: Sequence[Signer]) -> None:
        """Raises: PolicyError: no certificate-chain signature has that SAN/subject."""
        for s in signers:
            c = s.certificate
            if s.kind != "certificate" or c is None:
                continue
            if (self.san is None or self.san in c.sans) and (self.subject is None or self.subject == c.subject):
                return
        raise PolicyError(f"no certificate signature with {self.san or ''} {self.subject or ''}".strip()
                          + f" (verified: {_describe(signers)})")

    def keyless_identities(self) -> tuple[Identity, ...]:
        return ()


@dataclass(frozen=True)
class AllOf:
    """Every child policy must accept."""

    policies: tuple[Policy, ...] = field(default=())

    def __init__(self, *policies: Policy) -> None:
        if not policies:
            raise UsageError("AllOf() needs at least one policy (an empty AllOf would accept anything)")
        object.__setattr__(self, "policies", tuple(policies))

    def check_signers(self, signers: Sequence[Signer]) -> None:
        """Raises: PolicyError: the first child policy that refuses."""
        for p in self.policies:
            p.check_signers(signers)

    def keyless_identities(self) -> tuple[Identity, ...]:
        return tuple(i for p in self.policies for i in p.keyless_identities())


@dataclass(frozen=True)
class AnyOf:
    """At least one child policy must accept."""

    policies: tuple[Policy, ...] = field(default=())

    def __init__(self, *policies: Policy) -> None:
        if not policies:
            raise UsageError("AnyOf() needs at least one policy")
        object.__setattr__(self, "policies", tuple(policies))

    def check_signers(self, signers: Sequence[Signer]) -> None:
        """Raises: PolicyError: every child refused (all reasons are named)."""
        reasons = []
        for p in self.policies:
            try:
                p.check_signers(signers)
                return
            except PolicyError as exc:
                reasons.append(str(exc))
        raise PolicyError("no alternative of the policy accepts: " + " | ".join(reasons))

    def keyless_identities(self) -> tuple[Identity, ...]:
        return tuple(i for p in self.policies for i in p.keyless_identities())
