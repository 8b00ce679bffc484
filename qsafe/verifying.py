"""Verify a model against its signature bundle. Verification raises; success returns quietly.

Order of checks: parse the bundle (FormatError, exit 3) -> find the given key the bundle names and verify the
DSSE signature over PAE (SignatureError, 10) -> apply the policy (PolicyError, 11) -> parse the signed manifest
(FormatError, 3) -> hash the model the same way and compare (ModelMismatchError, 12, naming every changed,
missing and extra file and every changed tensor).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qsafe._hashing.safetensors import digest_safetensors
from qsafe._labels import MLDSA_CONTEXT_MODEL_BUNDLE
from qsafe.bundle import Bundle, manifest_from_statement, parse_bundle, read_bundle
from qsafe.errors import FormatError, InvalidInputError, ModelMismatchError, SignatureError
from qsafe.hashing import Progress
from qsafe.keys import PublicKey, load_public_keys
from qsafe.manifest import Manifest, SafetensorsDigests, hash_model
from qsafe.policy import VerificationPolicy

if TYPE_CHECKING:
    from qsafe.attestation.policy import Policy
    from qsafe.model_evidence import ModelEvidence

__all__ = ["Verification", "verify", "verify_bundle", "verify_bundle_signer"]

KeysArg = PublicKey | str | os.PathLike[str] | Iterable[PublicKey | str | os.PathLike[str]]
SignatureArg = str | os.PathLike[str] | bytes | Bundle


@dataclass(frozen=True)
class Verification:
    """What was verified: the signed manifest and the key that signed it."""

    manifest: Manifest
    key_id: str
    algorithm: str
    post_quantum: bool
    model_evidence: tuple[ModelEvidence, ...] = field(default=())

    @property
    def model_digest(self) -> str:
        """``sha256:<root>``: the digest signed model evidence must name as its subject."""
        return "sha256:" + self.manifest.root_digest


def _keys(keys: KeysArg) -> list[PublicKey]:
    items = [keys] if isinstance(keys, (PublicKey, str, os.PathLike)) else list(keys)
    out: list[PublicKey] = []
    for item in items:
        out.extend([item] if isinstance(item, PublicKey) else load_public_keys(Path(item)))
    if not out:
        raise SignatureError("no public key was given to verify with", hint="pass at least one --key PUB")
    return out


def _bundle(signature: SignatureArg) -> Bundle:
    if isinstance(signature, Bundle):
        return signature
    if isinstance(signature, bytes):
        return parse_bundle(signature)
    return read_bundle(Path(signature))


def _verify_signature(bundle: Bundle, keys: list[PublicKey]) -> PublicKey:
    candidates = [k for k in keys if bundle.key_hint is None or k.model_signing_hint == bundle.key_hint]
    if not candidates:
        raise SignatureError(
            f"the bundle was signed with key hint {bundle.key_hint}, which matches none of the "
            f"{len(keys)} given key(s)",
            hint="pass the signer's public key with --key; the signature may be from another signer",
        )
    signed = bundle.signed_bytes()
    for key in candidates:
        # keyDetails and keyid are unsigned hints; a bundle whose hints contradict the key is not this key's.
        if bundle.key_details is not None and bundle.key_details != key.key_details:
            continue
        if bundle.keyid is not None and bundle.keyid != key.key_id:
            continue
        try:
            key.verify(bundle.signature, signed, MLDSA_CONTEXT_MODEL_BUNDLE)
            return key
        except SignatureError:
            continue
    raise SignatureError(
        f"the DSSE signature does not verify with the given key ({candidates[0].key_id}, "
        f"{bundle.key_details or 'unknown algorithm'}): the bundle was modified or signed by another key"
    )


def verify_bundle_signer(signature: SignatureArg, keys: KeysArg, policy: VerificationPolicy) -> Verification:
    """Like :func:`verify_bundle`, also saying which key signed (for reports)."""
    bundle = _bundle(signature)
    key = _verify_signature(bundle, _keys(keys))
    policy.check(key)
    manifest = manifest_from_statement(bundle.statement())
    return Verification(manifest, key.key_id, key.algorithm, key.post_quantum)


def verify_bundle(signature: SignatureArg, keys: KeysArg, policy: VerificationPolicy) -> Manifest:
    """Check a bundle's signature and the policy, and return the signed manifest, without hashing the model.

    For loaders that hash the bytes they load themselves (e.g. with :func:`qsafe.manifest.tensor_digest`).

    Args:
        signature: the bundle path, its bytes, or a parsed :class:`~qsafe.bundle.Bundle`.
        keys: trusted public key(s): :class:`~qsafe.keys.PublicKey` objects or ``.pub`` paths.
        policy: the verification policy (required).

    Returns:
        The signed manifest.

    Raises:
        FormatError: malformed bundle or manifest (exit 3).
        SignatureError: no given key verifies the signature (exit 10).
        PolicyError: the signature verifies but the policy refuses it (exit 11).
    """
    return verify_bundle_signer(signature, keys, policy).manifest


def verify(
    model: str | os.PathLike[str],
    signature: SignatureArg,
    keys: KeysArg,
    *,
    policy: VerificationPolicy,
    allow_symlinks: bool = False,
    progress: Progress | None = None,
    evaluations: Sequence[Any] = (),
    evaluator_keys: KeysArg | None = None,
    evidence_policy: Policy | str | os.PathLike[str] | None = None,
    at: dt.datetime | None = None,
) -> Verification:
    """Verify a model directory or file against its signature bundle.

    Args:
        model: the model directory or file.
        signature: the bundle path, bytes or parsed bundle.
        keys: trusted public key(s).
        policy: the verification policy (required; the default instance requires post-quantum).
        allow_symlinks: follow in-root symlinks, if the signer also allowed them.
        progress: optional ``(advance_bytes, total_bytes)`` callback while hashing.
        evaluations: signed model evidence (paths, bytes or :class:`~qsafe.model_evidence.ModelEvidence`) about
            this model, checked after the model itself (signature, subject = this model's root digest).
        evaluator_keys: trusted public key(s) of the evaluators (required with ``evaluations``).
        evidence_policy: an attestation policy whose ``model.*`` rules the evidence must satisfy (a policy with
            environment rules is refused here: that is the load gate's job).
        at: time for the policy's rules (default now).

    Returns:
        What was verified (the manifest, the signer's key id and algorithm, the verified model evidence).

    Raises:
        FormatError: malformed bundle or evidence (3). SignatureError: bad signature or wrong key (10).
        PolicyError: refused by policy (11). ModelMismatchError: the model changed (12).
        AttestationError: the model evidence is missing, refused or too weak for ``evidence_policy`` (15).
        InvalidInputError: refused symlink or special file in the model (2).
    """
    pol = _model_policy(evidence_policy)  # a wrong policy is refused before hashing
    if evaluations and evaluator_keys is None:
        from qsafe.errors import UsageError

        raise UsageError("model evidence needs the evaluator's public key", hint="pass --evaluator-key PUB")
    result = verify_bundle_signer(signature, keys, policy)
    expected = result.manifest
    root = Path(model)
    ignore = [p.rstrip("/") for p in expected.serialization.ignore_paths]
    sig_rel = _signature_inside(signature, root)
    if sig_rel is not None:
        ignore.append(sig_rel)
    config = expected.serialization.hashing_config(allow_symlinks=allow_symlinks)
    config = dataclasses.replace(config, ignore_paths=tuple(dict.fromkeys(ignore)))
    actual = hash_model(root, config, progress=progress)
    _compare(expected, actual, root)
    if evaluations or pol is not None:
        result = dataclasses.replace(result, model_evidence=_check_evidence(
            result.model_digest, evaluations, evaluator_keys, pol, at))
    return result


def _model_policy(policy: Policy | str | os.PathLike[str] | None) -> Policy | None:
    if policy is None:
        return None
    from qsafe.attestation.policy import Policy, load_policy
    from qsafe.model_evidence import require_model_only

    pol = policy if isinstance(policy, Policy) else load_policy(Path(policy))
    require_model_only(pol)
    return pol


def _check_evidence(model_digest: str, evaluations: Sequence[Any], keys: KeysArg | None,
                    pol: Policy | None, at: dt.datetime | None) -> tuple[ModelEvidence, ...]:
    from qsafe.model_evidence import check_model_evidence, gather_model_evidence

    verified, refused = gather_model_evidence(list(evaluations), keys, model_digest)
    if pol is not None:
        check_model_evidence(pol, verified, refused, at)
    elif refused:
        from qsafe.errors import AttestationError

        raise AttestationError("model evidence refused:\n" + "\n".join(f"  {r}" for r in refused),
                               failed_claims=[r.split(":", 1)[0] for r in refused])
    return tuple(verified)


def _signature_inside(signature: SignatureArg, root: Path) -> str | None:
    if isinstance(signature, (bytes, Bundle)) or not root.is_dir():
        return None
    try:
        return Path(os.path.realpath(signature)).relative_to(os.path.realpath(root)).as_posix()
    except ValueError:
        return None


def _compare(expected: Manifest, actual: Manifest, root: Path) -> None:
    want, got = expected.files(), actual.files()
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(f for f in set(want) & set(got) if want[f] != got[f])
    if not (missing or extra or changed):
        return
    changed_tensors: dict[str, list[str]] = {}
    for f in changed:
        if f in expected.tensors:
            path = root if f == "." else root / f
            changed_tensors[f] = _changed_tensors(expected.tensors[f], path, expected.serialization.hash_type)
    raise ModelMismatchError(
        _mismatch_message(changed, missing, extra, changed_tensors),
        changed=changed, missing=missing, extra=extra, changed_tensors=changed_tensors,
    )


def _changed_tensors(signed: SafetensorsDigests, path: Path, algorithm: str) -> list[str]:
    try:
        now = digest_safetensors(path, algorithm)
    except (FormatError, InvalidInputError, OSError) as exc:
        return [f"(header unreadable: {exc})"]
    current = {t.name: d for t, d in now.tensors}
    before = signed.by_name()
    out = [n for n in sorted(before) if n in current and current[n] != before[n].digest]
    out += [f"{n} (missing)" for n in sorted(set(before) - set(current))]
    out += [f"{n} (added)" for n in sorted(set(current) - set(before))]
    if now.header_digest != signed.header and not out:
        out.append("(header)")
    return out


def _mismatch_message(
    changed: list[str], missing: list[str], extra: list[str], tensors: dict[str, list[str]]
) -> str:
    counts = f"{len(changed)} changed, {len(missing)} missing, {len(extra)} extra file(s)"
    lines = [f"the model does not match its signature: {counts}"]
    for f in changed:
        detail = f" (tensors: {', '.join(tensors[f])})" if tensors.get(f) else ""
        lines.append(f"changed: {f}{detail}")
    lines += [f"missing: {f}" for f in missing]
    lines += [f"extra: {f}" for f in extra]
    return "\n".join(lines)
