"""Appraise evidence against a policy: verify every item, check freshness, evaluate the policy's rules.

:func:`appraise` returns an :class:`AppraisalResult` (allow or deny, with every failed claim named);
:func:`verify_evidence` raises :class:`~qsafe.errors.AttestationError` on deny. Time, nonce and model digest are
explicit arguments, so recorded evidence is appraised at a pinned instant.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qsafe import _labels
from qsafe.attestation.evidence import Evidence, format_time, utcnow
from qsafe.attestation.policy import UNSAFE_REPLAY, Policy, evaluate_rule
from qsafe.attestation.verifiers import ItemResult, verifier, verify_item
from qsafe.errors import AttestationError, InvalidInputError

if TYPE_CHECKING:
    from qsafe.model_evidence import ModelEvidence

__all__ = ["AppraisalResult", "NonceRegistry", "appraise", "binding_hash", "new_nonce", "verify_evidence"]

NONCE_LEN = 32


def new_nonce() -> bytes:
    """A fresh random 32-byte nonce."""
    return secrets.token_bytes(NONCE_LEN)


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def binding_hash(nonce: bytes, model_digest: str, policy_digest: str) -> bytes:
    """The 32 bytes placed in the GPU nonce and the first half of TEE report data.

    SHA-256 over the label, then the length-prefixed nonce, model digest and policy digest (``""`` when no model
    is involved), so evidence made for one model, policy or session cannot be replayed for another.
    """
    return hashlib.sha256(
        _labels.ATTESTATION_BINDING_LABEL + _lp(nonce) + _lp(model_digest.encode()) + _lp(policy_digest.encode())
    ).digest()


class NonceRegistry:
    """Single-use nonces for a long-running verifier: :meth:`issue` one, :meth:`consume` it exactly once."""

    def __init__(self, ttl: dt.timedelta = dt.timedelta(minutes=5)) -> None:
        self._ttl = ttl
        self._issued: dict[bytes, dt.datetime] = {}
        self._lock = threading.Lock()

    def issue(self, now: dt.datetime | None = None) -> bytes:
        nonce = new_nonce()
        with self._lock:
            self._issued[nonce] = (now or utcnow()) + self._ttl
        return nonce

    def consume(self, nonce: bytes, now: dt.datetime | None = None) -> None:
        """Raises AttestationError when the nonce was never issued, was used already, or expired."""
        with self._lock:
            expiry = self._issued.pop(nonce, None)
        if expiry is None:
            raise AttestationError("nonce was not issued here or was already used", failed_claims=["evidence.nonce"])
        if (now or utcnow()) > expiry:
            raise AttestationError("nonce expired before the evidence arrived", failed_claims=["evidence.nonce"])


@dataclass
class AppraisalResult:
    """The appraisal: verdict, every failure named, and what freshness was actually shown."""

    verdict: str
    policy_name: str
    policy_digest: str
    appraised_at: dt.datetime
    evidence_digest: str
    model_digest: str | None
    freshness: dict[str, Any]
    failed: list[str]
    items: list[dict[str, Any]]
    claims: dict[str, Any] = field(default_factory=dict)
    model_evidence: list[dict[str, Any]] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"

    def predicate(self) -> dict[str, Any]:
        out = {
            "verdict": self.verdict,
            "policy": {"name": self.policy_name, "digest": self.policy_digest},
            "appraisedAt": format_time(self.appraised_at),
            "modelDigest": self.model_digest,
            "freshness": self.freshness,
            "failed": self.failed,
            "evidence": self.items,
            "claims": self.claims,
        }
        if self.model_evidence:
            out["modelEvidence"] = self.model_evidence
        return out


def _freshness_value(res: ItemResult) -> bytes | None:
    return verifier(res.kind).freshness_value(res.claims)


def _mode_of(value: bytes, nonce: bytes | None, binding: bytes | None, accept: list[str]) -> str | None:
    width = len(value)
    if binding is not None and "binding" in accept and value == binding.ljust(width, b"\x00")[:width] \
            and width >= len(binding):
        return "binding"
    if nonce is not None and "challenge" in accept and len(nonce) <= width and value == nonce.ljust(width, b"\x00"):
        return "challenge"
    return "replayed" if UNSAFE_REPLAY in accept else None


def _freshness(results: list[ItemResult], policy: Policy, nonce: bytes | None, binding: bytes | None,
               failed: list[str]) -> dict[str, Any]:
    modes = []
    for res in results:
        value = _freshness_value(res) if res.signed and not res.failed else None
        if value is None:
            continue
        mode = _mode_of(value, nonce, binding, policy.accept)
        if mode is None:
            what = "no nonce was given to check it against" if nonce is None else "it matches neither the binding" \
                + (" nor the challenge" if "challenge" in policy.accept else "") + " of this appraisal"
            failed.append(f"{res.label}.freshness: evidence nonce/report data {value.hex()} is not fresh: {what}")
        modes.append(mode or "failed")
    if not modes:
        if UNSAFE_REPLAY not in policy.accept and not any(r.signed and r.failed for r in results):
            # (when a signed item failed verification, that failure is already named)
            failed.append("evidence.freshness: no signed evidence can show freshness")
        modes = ["replayed" if UNSAFE_REPLAY in policy.accept else "none"]
    order = ["failed", "none", "replayed", "challenge", "binding"]
    weakest = min(modes, key=order.index)
    return {"mode": weakest, "bindingChecked": weakest == "binding", "nonceChecked": weakest in ("binding", "challenge"),
            "replayedEvidenceAccepted": weakest == "replayed", "policyAcceptsReplay": policy.unsafe}


def _refuse_duplicate_devices(results: list[ItemResult]) -> None:
    """A device counts once: a second verified item from the same device (the same report copied, or another
    report of the same GPU/chip) fails, so ``evidence.count.*`` counts distinct devices and the copy denies."""
    first: dict[tuple[str, str], ItemResult] = {}
    for res in results:
        if res.failed or res.device is None:
            continue
        seen = first.setdefault((res.prefix, res.device), res)
        if seen is not res:
            res.failed["device"] = (f"the same device as {seen.label} ({res.device[:40]}…): evidence of one device "
                                    "counts once")
            res.claims = {}


def _lookup(res: ItemResult, key: str) -> tuple[bool, Any]:
    claims = res.claims
    if key in claims:
        return True, claims[key]
    head, _, tail = key.partition(".")
    if isinstance(claims.get(head), dict) and tail in claims[head]:
        return True, claims[head][tail]
    return False, None


def _evaluate(results: list[ItemResult], evidence: Evidence, policy: Policy, at: dt.datetime,
              failed: list[str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for res in results:
        counts[res.prefix] = counts.get(res.prefix, 0) + (0 if res.failed else 1)
    top = {"evidence.collected_at": format_time(evidence.collected_at),
           **{f"evidence.count.{p}": n for p, n in counts.items()}}
    for key, rule in sorted(policy.claims.items()):
        prefix, _, name = key.partition(".")
        if prefix == "model":  # model-evidence rules: qsafe.model_evidence.evaluate_model_rules
            continue
        if prefix == "evidence":
            value = top.get(key)
            targets = [(key, key in top, value)]
        else:
            matching = [r for r in results if r.prefix == prefix and not r.failed]
            targets = [(f"{r.label}.{name}", *_lookup(r, name)) for r in matching] or [(key, False, None)]
        unverified = [r.label for r in results if r.prefix == prefix and r.failed]
        for label, present, value in targets:
            if not present:
                why = f"not established ({', '.join(unverified)} did not verify)" if unverified and not \
                    any(r.prefix == prefix and not r.failed for r in results) else "missing claim (a missing claim denies)"
                failed.append(f"{label}: {why}")
                continue
            seen[label] = value
            reason = evaluate_rule(value, rule, at)
            if reason:
                failed.append(f"{label}: {reason}")
    return seen


def appraise(
    evidence: Evidence,
    policy: Policy,
    *,
    at: dt.datetime | None = None,
    nonce: bytes | None = None,
    model_digest: str | None = None,
    nonce_registry: NonceRegistry | None = None,
    model_evidence: Sequence[ModelEvidence] = (),
    model_evidence_refused: Sequence[str] = (),
) -> AppraisalResult:
    """Verify and appraise ``evidence`` under ``policy``.

    Args:
        evidence: the evidence document.
        policy: the policy (required: there is no default policy).
        at: verification time (default now); certificates, collateral and evidence age are judged at it.
        nonce: the verifier's single-use nonce (None: freshness can only be accepted as replay).
        model_digest: the model this appraisal gates (part of the binding), or None.
        nonce_registry: when given, ``nonce`` is consumed from it (single use).
        model_evidence: verified model evidence (:func:`qsafe.model_evidence.gather_model_evidence`) for the
            policy's ``model.*`` rules; without it those rules deny (missing claim).
        model_evidence_refused: deny lines for evaluations that were refused (bad signature, other model).

    Returns:
        The result; ``verdict`` is ``deny`` with every failure in ``failed`` when anything fails.

    Raises:
        FormatError: the evidence is malformed.
        InvalidInputError: the nonce is longer than 64 bytes.
    """
    at = at or utcnow()
    if nonce is not None and not 1 <= len(nonce) <= 64:
        raise InvalidInputError("a nonce is 1 to 64 bytes (32 for GPU evidence)")
    failed: list[str] = []
    if nonce_registry is not None and nonce is not None:
        try:
            nonce_registry.consume(nonce, at)
        except AttestationError as exc:
            failed.append(f"evidence.nonce: {exc}")
    binding = binding_hash(nonce, model_digest or "", policy.digest) if nonce is not None else None
    counters: dict[str, int] = {}
    results: list[ItemResult] = []
    for item in evidence.items:
        kind = str(item.get("kind"))
        results.append(verify_item(item, counters.get(kind, 0), at, None))
        counters[kind] = counters.get(kind, 0) + 1
    _refuse_duplicate_devices(results)
    for res in results:
        failed += [f"{res.label}.{check}: {reason}" for check, reason in res.failed.items()]
    for kind in policy.require:
        if not any(r.kind == kind and not r.failed for r in results):
            failed.append(f"{kind}: required evidence is missing or did not verify")
    freshness = _freshness(results, policy, nonce, binding, failed)
    claims = _evaluate(results, evidence, policy, at, failed)
    from qsafe.model_evidence import evaluate_model_rules

    failed += model_evidence_refused
    model_failed, model_seen = evaluate_model_rules(policy, model_evidence, at)
    failed += model_failed
    claims.update(model_seen)
    items = [{"kind": r.kind, "index": r.index, "signed": r.signed, "passed": r.passed, "failed": sorted(r.failed)}
             for r in results]
    return AppraisalResult(
        verdict="deny" if failed else "allow", policy_name=policy.name, policy_digest=policy.digest,
        appraised_at=at, evidence_digest=evidence.digest(), model_digest=model_digest, freshness=freshness,
        failed=failed, items=items, claims=claims, model_evidence=[e.summary() for e in model_evidence],
    )


def verify_evidence(evidence: Evidence, policy: Policy, **kwargs: Any) -> AppraisalResult:
    """:func:`appraise`, raising on deny.

    Raises:
        AttestationError: the verdict is deny; ``failed_claims`` names every failure, ``result`` holds the result.
    """
    result = appraise(evidence, policy, **kwargs)
    if not result.allowed:
        raise denial(result)
    return result


def denial(result: AppraisalResult) -> AttestationError:
    """The AttestationError for a deny result (every failure on its own line)."""
    lines = [f"attestation denied by policy {result.policy_name} ({len(result.failed)} failed):"]
    lines += [f"  {f}" for f in result.failed]
    err = AttestationError(lines, failed_claims=[f.split(":", 1)[0] for f in result.failed])
    err.result = result  # type: ignore[attr-defined]
    return err
