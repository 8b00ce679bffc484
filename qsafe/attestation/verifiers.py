"""Offline evidence verifiers, one per evidence kind, each at an explicit verification time: a registry.

Every verifier is registered in the entry-point group ``qsafe.verifiers`` under the evidence ``kind`` it reads
(qsafe's built-ins in its ``pyproject.toml``, plugins in theirs) and implements :class:`EvidenceVerifier`: its
kind, the claim namespace (``prefix``) policies use for its claims, what a pass proves, whether its claims rest
on a signature, and ``verify(item, at, expected)``. :func:`verify_item` turns one evidence item into an
:class:`ItemResult`: the claims it establishes, the checks that passed, and the checks that failed (named).
Self-reported items (``software``, ``nvidia-cc``) verify nothing cryptographically; their claims are marked
``signed: False`` so a policy reader knows what they rest on. Adding a verifier (a TPM quote, a signed model
evaluation) is one module plus one entry point; the evidence reader, the policy checker and the CLI take the
kinds and prefixes from here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from qsafe.attestation.evidence import b64decode, hexdecode
from qsafe.errors import FormatError, UsageError
from qsafe.plugins import VERIFIERS_GROUP, registry

__all__ = [
    "GPU_ARCHITECTURES",
    "EvidenceVerifier",
    "ItemResult",
    "Outcome",
    "kinds",
    "verifier",
    "verifiers",
    "verify_item",
]

# Chip family (from the verified device-identity chain) -> architecture name used in policies.
GPU_ARCHITECTURES = {"GH1": "HOPPER", "GB1": "BLACKWELL", "GB2": "BLACKWELL"}


@dataclass
class ItemResult:
    """The outcome of verifying one evidence item.

    Attributes:
        kind: the evidence kind; prefix: claim namespace (gpu, nvml, snp, tdx, sw); index: position of its kind.
        signed: whether the claims rest on a hardware signature.
        claims: verified claims (empty when a check failed).
        passed / failed: check names; ``failed`` maps a check to the reason.
        device: which physical device signed it (see :attr:`Outcome.device`), or None.
    """

    kind: str
    prefix: str
    index: int
    signed: bool
    claims: dict[str, Any] = field(default_factory=dict)
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    device: str | None = None

    @property
    def label(self) -> str:
        return f"{self.prefix}[{self.index}]"


@dataclass
class Outcome:
    """What a verifier established about one item: claims (only when nothing failed), passed and failed checks,
    and the identity of the device that signed it.

    ``device`` names the physical device (``gpu-key:sha256:…`` of a GPU's attestation key, ``snp-chip:…`` the
    CHIP_ID or VCEK key, ``tdx-key:sha256:…`` the platform's attestation key; a plugin uses its own prefix). The
    appraisal counts devices, not items, and denies a second item from the same device. None for self-reports.
    """

    claims: dict[str, Any] = field(default_factory=dict)
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    device: str | None = None


@runtime_checkable
class EvidenceVerifier(Protocol):
    """What every evidence verifier (built-in or plugin) implements.

    Attributes:
        kind: the evidence item ``kind`` it reads (its entry point's name).
        prefix: the claim namespace policies use (``gpu.fwid``): lower case, unique among verifiers.
        proves: one line saying what a passing verification establishes (shown by ``qsafe attest verifiers``).
        signed: True when its claims rest on a hardware or cryptographic signature, False for self-reports.
    """

    kind: str
    prefix: str
    proves: str
    signed: bool

    def verify(self, item: dict[str, Any], at: dt.datetime, expected: bytes | None) -> Outcome:
        """Verify ``item`` as of ``at``; ``expected`` is what its nonce / report data must carry (None: unchecked).

        Failed checks are returned in :attr:`Outcome.failed`, not raised.

        Raises:
            FormatError: the item is malformed (undecodable report, bad PEM).
        """
        ...

    def freshness_value(self, claims: dict[str, Any]) -> bytes | None:
        """The nonce / report-data bytes in verified ``claims`` that show freshness, or None if the kind has none."""
        ...


def _arch(chain: list[Any]) -> str:
    from cryptography.x509.oid import NameOID

    for cert in chain:
        for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            text = str(attr.value)
            for key, arch in GPU_ARCHITECTURES.items():
                if key in text:
                    return arch
    return "UNKNOWN"


_TDX_KEY_END = 48 + 584 + 4 + 64 + 64


def _key_digest(cert: Any) -> str:
    """``sha256:`` of a certificate's SubjectPublicKeyInfo (the device key that signed the evidence)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def _verify_gpu(item: dict[str, Any], res: Outcome, at: dt.datetime, expected: bytes | None) -> None:
    from qsafe._attest import spdm
    from qsafe._attest.x509chain import load_pem_chain, pinned_roots

    report = spdm.parse_report(hexdecode(str(item.get("report", "")), "GPU report"))
    chain = load_pem_chain(str(item.get("cert_chain", "")).encode())
    spdm.verify_report(report, chain, pinned_roots("nvidia_device_identity_ca.pem"), at, expected)
    res.passed += ["cert_chain", "signature", "fwid"] + (["nonce"] if expected is not None else [])
    res.claims = {**spdm.report_claims(report), "arch": _arch(chain), "trailing_bytes": report.trailing}
    res.device = "gpu-key:" + _key_digest(chain[0])


def _verify_snp(item: dict[str, Any], res: Outcome, at: dt.datetime, expected: bytes | None) -> None:
    from qsafe._attest import snp
    from qsafe._attest.x509chain import load_pem_chain, pinned_roots

    report = snp.parse_report(b64decode(str(item.get("report", "")), "SEV-SNP report"))
    chain = load_pem_chain(str(item.get("certs", "")).encode())
    want = expected.ljust(64, b"\x00") if expected is not None else None
    snp.verify_report(report, chain, pinned_roots("amd_ark_milan.pem"), at, want)
    res.passed += ["cert_chain", "signature", "tcb"] + (["report_data"] if want is not None else [])
    res.claims = snp.report_claims(report)
    # CHIP_ID names the chip (a guest policy can mask it to zeros: then the chip's VCEK key names it)
    res.device = "snp-chip:" + (report.chip_id.hex() if any(report.chip_id) else _key_digest(chain[0]))


def _verify_tdx(item: dict[str, Any], res: Outcome, at: dt.datetime, expected: bytes | None) -> None:
    from qsafe._attest import tdx

    collateral = item.get("collateral")
    if not isinstance(collateral, dict):
        res.failed["collateral"] = "TDX quote has no collateral (TCB info, QE identity, CRLs) to verify against"
        return
    quote = b64decode(str(item.get("quote", "")), "TDX quote")
    want = expected.ljust(64, b"\x00") if expected is not None else None
    res.claims = tdx.verify_quote(quote, collateral, at, want)
    res.passed += ["quote"] + (["report_data"] if want is not None else [])
    # quote v4: 48-byte header, 584-byte TD report, u32 signature-data length, ECDSA signature, attestation key
    if len(quote) >= _TDX_KEY_END:
        res.device = "tdx-key:sha256:" + hashlib.sha256(quote[_TDX_KEY_END - 64 : _TDX_KEY_END]).hexdigest()


class _SignedVerifier:
    """A built-in verifier of signed evidence (GPU SPDM report, SEV-SNP report, TDX quote)."""

    signed = True

    def __init__(self, kind: str, prefix: str, proves: str, check: Any, freshness_claim: str) -> None:
        self.kind, self.prefix, self.proves = kind, prefix, proves
        self._check, self._freshness_claim = check, freshness_claim

    def verify(self, item: dict[str, Any], at: dt.datetime, expected: bytes | None) -> Outcome:
        from qsafe._attest import EvidenceCheckError

        out = Outcome()
        try:
            self._check(item, out, at, expected)
        except EvidenceCheckError as exc:  # the failed step of the report's, chain's or quote's verification
            out.failed[exc.check] = str(exc)
        if out.failed:
            out.claims, out.device = {}, None
        return out

    def freshness_value(self, claims: dict[str, Any]) -> bytes | None:
        return bytes.fromhex(str(claims.get(self._freshness_claim, "")))


class SelfReportedVerifier:
    """Claims a collector reports about its own machine: taken as they are, marked unsigned."""

    signed = False

    def __init__(self, kind: str, prefix: str, proves: str) -> None:
        self.kind, self.prefix, self.proves = kind, prefix, proves

    def verify(self, item: dict[str, Any], at: dt.datetime, expected: bytes | None) -> Outcome:
        claims = item.get("claims")
        if not isinstance(claims, dict):
            raise FormatError(f"{self.kind} evidence item has no claims object")
        return Outcome(claims=dict(claims))

    def freshness_value(self, claims: dict[str, Any]) -> bytes | None:
        return None


# The built-in verifiers, each named by an entry point of group qsafe.verifiers in pyproject.toml.
NVIDIA_GPU = _SignedVerifier(
    "nvidia-gpu", "gpu", "an NVIDIA GPU's SPDM measurement report, signed by a device key chaining to NVIDIA's "
    "device identity CA, with its firmware measurements and nonce", _verify_gpu, "nonce")
SEV_SNP = _SignedVerifier(
    "sev-snp", "snp", "an AMD SEV-SNP attestation report signed by a VCEK/VLEK chaining to AMD's ARK, its TCB and "
    "report data", _verify_snp, "report_data")
TDX = _SignedVerifier(
    "tdx", "tdx", "an Intel TDX quote verified against Intel's collateral (TCB info, QE identity, CRLs), its "
    "measurements and report data", _verify_tdx, "report_data")
NVIDIA_CC = SelfReportedVerifier("nvidia-cc", "nvml", "what NVML reports about confidential-computing mode "
                                                      "(self-reported, unsigned)")
SOFTWARE = SelfReportedVerifier("software", "sw", "the software environment as the collector saw it "
                                                  "(self-reported, unsigned)")


def verifiers() -> dict[str, EvidenceVerifier]:
    """Every installed verifier by kind: qsafe's built-ins, then plugins'.

    Raises:
        FormatError: a plugin's verifier is not an :class:`EvidenceVerifier` for the kind it is registered as,
            or two verifiers claim one claim prefix.
    """
    out: dict[str, EvidenceVerifier] = {}
    prefixes: dict[str, str] = {}
    for kind, obj in registry(VERIFIERS_GROUP).load_all().items():
        if not isinstance(obj, EvidenceVerifier) or obj.kind != kind:
            raise FormatError(f"the verifier registered as {kind!r} is not an EvidenceVerifier of kind {kind!r}",
                              hint="fix the plugin's entry point (see docs/plugins.md)")
        if obj.prefix in prefixes or obj.prefix in ("evidence", "model"):
            raise FormatError(f"verifier {kind!r} claims the policy prefix {obj.prefix!r}, which "
                              f"{prefixes.get(obj.prefix, 'qsafe reserves')} uses already")
        prefixes[obj.prefix] = kind
        out[kind] = obj
    return out


def kinds() -> list[str]:
    """The evidence kinds the installed verifiers read."""
    return list(verifiers())


def verifier(kind: str) -> EvidenceVerifier:
    """The installed verifier of ``kind``.

    Raises:
        FormatError: no installed verifier reads that kind.
    """
    try:
        obj = registry(VERIFIERS_GROUP).load(kind)
    except UsageError:
        raise FormatError(f"unknown evidence kind {kind!r}; installed verifiers: {', '.join(kinds())}",
                          hint="a plugin adds an evidence kind through the entry-point group qsafe.verifiers") from None
    return verifiers()[kind] if not isinstance(obj, EvidenceVerifier) else obj


def verify_item(item: dict[str, Any], index: int, at: dt.datetime, expected: bytes | None) -> ItemResult:
    """Verify one evidence item at time ``at``; ``expected`` is the value its nonce/report data must carry.

    Args:
        item: the evidence item (a dict with ``kind``).
        index: its position among items of the same kind.
        at: the verification time (certificates and collateral are judged at this instant).
        expected: 32 bytes the GPU nonce must equal (TEE report data: these bytes then zeros), or None to skip.

    Returns:
        The :class:`ItemResult`; failures are recorded in it, not raised.

    Raises:
        FormatError: the item is malformed (undecodable report, bad PEM, unknown kind).
    """
    v = verifier(str(item.get("kind")))
    outcome = v.verify(item, at, expected)
    return ItemResult(kind=v.kind, prefix=v.prefix, index=index, signed=v.signed,
                      claims=dict(outcome.claims), passed=list(outcome.passed), failed=dict(outcome.failed),
                      device=getattr(outcome, "device", None) if not outcome.failed else None)
