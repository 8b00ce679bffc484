"""The gate: load a model's tensors only if its signature verifies and the environment's evidence satisfies the
attestation policy.

Order: (1) verify the bundle signature and the signature policy, getting the signed manifest; (2) appraise the
evidence (collected now, bound to a fresh nonce, the model's root digest and the policy's digest; or given);
(3) read every file of the signed manifest once, hashing exactly the bytes that are returned: tensors of the
safetensors files, and the verified bytes of every other file (config, tokenizer, ...); a changed, missing or
extra file is refused exactly as ``qsafe verify`` refuses it. Any failure raises and nothing escapes.

Frameworks that read configs and tokenizers from a path get them from :attr:`LoadedModel.files` (bytes), or
with ``verified_dir`` from a fresh private directory (0700) holding a copy of every verified file, written from
the verified bytes (no time-of-check/time-of-use gap with the original folder).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qsafe.errors import UsageError

if TYPE_CHECKING:  # types only: the gate imports attestation and signing code when it runs, not at import
    from qsafe.attestation import Evidence, Policy
    from qsafe.policy import VerificationPolicy
    from qsafe.verifying import KeysArg, SignatureArg

    PolicyArg = Policy | str | Path
    EvidenceArg = Evidence | str | Path

__all__ = ["LoadedModel", "load_model"]

DEFAULT_COLLECTORS = ("nvidia-gpu", "software")


@dataclass
class LoadedModel:
    """What the gate let through.

    Attributes:
        tensors: tensor name -> torch tensor or numpy array (verified bytes).
        files: manifest name -> verified bytes of every other file of the model (config, tokenizer, ...),
            each up to ``qsafe._limits.LOAD_KEEP_MAX_BYTES``; larger ones are verified but not kept.
        tensor_files: the safetensors files whose tensors were loaded (manifest names).
        verified_files: every file of the signed manifest (all verified in the same pass).
        directory: the private directory (0700) holding a copy of every verified file, when ``verified_dir`` was
            given; the caller removes it when done (:meth:`remove_directory`).
        model_digest: ``sha256:`` root digest of the signed manifest (what the evidence was bound to).
        key_id: the key that signed the model.
        attestation: the appraisal result, or None when attestation was skipped (unsafe).
        attestation_skipped: True only with ``unsafe_skip_attestation``.
    """

    tensors: dict[str, Any]
    files: dict[str, bytes]
    model_digest: str
    key_id: str
    attestation: Any = None
    attestation_skipped: bool = False
    framework: str = "numpy"
    extra: dict[str, Any] = field(default_factory=dict)
    tensor_files: list[str] = field(default_factory=list)
    verified_files: list[str] = field(default_factory=list)
    directory: Path | None = None

    def remove_directory(self) -> None:
        """Delete the private directory of verified copies (if any)."""
        if self.directory is not None:
            import shutil

            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __repr__(self) -> str:  # one line: never every tensor
        count = sum(int(t.numel()) if hasattr(t, "numel") else int(getattr(t, "size", 0)) for t in self.tensors.values())
        if self.attestation_skipped:
            gate = "attestation=SKIPPED (unsafe)"
        elif self.attestation is None:
            gate = "attestation=None"
        else:
            a = self.attestation
            gate = (f"attestation={'allow' if a.allowed else 'deny'} by {a.policy_name!r} "
                    f"({a.freshness.get('mode', '?')})")
        sources = ", ".join(self.tensor_files[:3]) + (", …" if len(self.tensor_files) > 3 else "")
        return (f"LoadedModel({len(self.tensors)} tensors, {count:,} values, {self.framework}, from {sources}; "
                f"{len(self.verified_files)} files verified, digest={self.model_digest[:19]}…, "
                f"key_id={self.key_id[:19]}…, {gate})")


def _framework(requested: str | None) -> str:
    if requested in ("torch", "numpy"):
        return requested
    if requested is not None:
        raise UsageError(f"framework must be 'torch' or 'numpy', not {requested!r}")
    import importlib.util

    return "torch" if importlib.util.find_spec("torch") is not None else "numpy"


def _attest(policy: PolicyArg, evidence: EvidenceArg | None, collect: bool | Sequence[str], nonce: bytes | None, at: dt.datetime | None,
            model_digest: str, collector_options: dict[str, dict[str, Any]] | None,
            model_evidence: tuple[list[Any], list[str]] = ([], [])) -> Any:
    from qsafe import attestation as att

    pol = policy if isinstance(policy, att.Policy) else att.load_policy(policy)
    extra = {"model_evidence": model_evidence[0], "model_evidence_refused": model_evidence[1]}
    if collect and evidence is not None:
        raise UsageError("give either evidence or collect, not both")
    if collect:
        names = list(DEFAULT_COLLECTORS) if collect is True else list(collect)
        registry = att.NonceRegistry()
        nonce = registry.issue()
        ev = att.collect(names, nonce=nonce, policy=pol, model_digest=model_digest, options=collector_options)
        return att.verify_evidence(ev, pol, at=at, nonce=nonce, model_digest=model_digest, nonce_registry=registry,
                                   **extra)
    if evidence is None:
        raise UsageError("attestation needs evidence (a file or Evidence) or collect=True",
                         hint="pass --evidence FILE or --collect (or, unsafely, --unsafe-skip-attestation)")
    ev = evidence if isinstance(evidence, att.Evidence) else att.load_evidence(evidence)
    return att.verify_evidence(ev, pol, at=at, nonce=nonce, model_digest=model_digest, **extra)


def load_model(
    model: str | os.PathLike[str],
    signature: SignatureArg | None = None,
    keys: KeysArg | None = None,
    policy: PolicyArg | None = None,
    *,
    evidence: EvidenceArg | None = None,
    collect: bool | Sequence[str] = False,
    nonce: bytes | None = None,
    at: dt.datetime | None = None,
    device: str | None = None,
    framework: str | None = None,
    signature_policy: VerificationPolicy | None = None,
    files: Sequence[str] | None = None,
    unsafe_skip_attestation: bool = False,
    collector_options: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[int], None] | None = None,
    evaluations: Sequence[Any] = (),
    evaluator_keys: KeysArg | None = None,
    verified_dir: bool | str | os.PathLike[str] | None = None,
) -> LoadedModel:
    """Verify the model's signature, appraise the environment, then load the verified tensors.

    Args:
        model: the model directory (or a single ``.safetensors`` file).
        signature: the signature bundle (path, bytes or parsed bundle; default ``MODEL/model.sig``, as the CLI).
        keys: trusted public key(s) of the signer (required).
        policy: the attestation policy: a :class:`~qsafe.attestation.Policy`, a shipped policy's name
            (``"nvidia-hopper-cc"``) or a path. Required unless ``unsafe_skip_attestation``.
        evidence: recorded evidence (path or :class:`~qsafe.attestation.Evidence`); or use ``collect``.
        collect: collect evidence now (True: NVIDIA GPU + software; or a list of collector names), bound to a
            fresh single-use nonce, this model's digest and the policy's digest.
        nonce: the nonce ``evidence`` was collected for (challenge/binding check), when you issued one.
        at: verification time (default now).
        device: where torch tensors go (e.g. ``cuda:0``); numpy arrays stay in host memory.
        framework: ``torch`` or ``numpy`` (default torch when installed).
        signature_policy: :class:`qsafe.policy.VerificationPolicy` (default: post-quantum required).
        files: load tensors only from these signed safetensors files (manifest names); every file of the model
            is still verified.
        unsafe_skip_attestation: load without appraising any evidence. Unsafe; recorded on the result.
        collector_options: per-collector keyword options (e.g. ``{"tsm": {"root": ...}}``).
        progress: called with bytes read.
        evaluations: signed model evidence about this model (paths, bytes or
            :class:`~qsafe.model_evidence.ModelEvidence`); the policy's ``model.*`` rules are checked against it
            in the same appraisal as the environment (one deny names every failure).
        evaluator_keys: trusted public key(s) of the evaluators (required with ``evaluations``).
        verified_dir: also write every verified file into a fresh private directory (0700; files 0600): True
            for a new temporary directory, or a path that must not exist yet (and not inside the model). For
            ``from_pretrained(path)``-style loaders; see :attr:`LoadedModel.directory`.

    Returns:
        The :class:`LoadedModel`.

    Raises:
        SignatureError / PolicyError / FormatError: the signature does not verify or is refused.
        AttestationError: the evidence (environment or model) does not satisfy the policy (every failed claim
            named), or an evaluation is unsigned, signed by another key or about another model.
        UnavailableError: ``collect`` on a machine without the device, or ``device`` absent.
        ModelMismatchError: any file of the model changed, is missing or extra (as ``verify`` reports it).
        InvalidInputError: a symlink or special file (FIFO, device) in the model, or one that changed while read.
        UsageError: neither evidence nor collect given (and attestation not skipped).
        OutputExistsError: ``verified_dir`` exists or lies inside the model.
    """
    from qsafe.policy import VerificationPolicy
    from qsafe.verifying import check_argument_types, default_signatures, verify_bundle_signer

    check_argument_types(model, keys)
    if keys is None:
        raise UsageError("no public key given to verify the model's signature with",
                         hint="pass keys=PATH (the signer's .pub file)")
    if signature is None:
        signature = default_signatures(model, keys=keys)[0]
    chosen = _framework(framework)
    if device and device != "cpu":
        if chosen != "torch":
            raise UsageError(f"device {device} needs torch tensors (framework='torch')")
        from qsafe._hashing.tensorload import check_device

        check_device(device)
    if policy is None and not unsafe_skip_attestation:
        raise UsageError("an attestation policy is required",
                         hint="pass a policy (a shipped name such as \"nvidia-hopper-cc\", or a file), or, unsafely, "
                              "unsafe_skip_attestation=True")
    if unsafe_skip_attestation and evaluations:
        raise UsageError("model evidence is appraised with the attestation policy; it cannot be combined with "
                         "unsafe_skip_attestation")
    if evaluations and evaluator_keys is None:
        raise UsageError("model evidence needs the evaluator's public key", hint="pass --evaluator-key PUB")
    if policy is not None and not unsafe_skip_attestation:
        from qsafe import attestation as att

        policy = policy if isinstance(policy, att.Policy) else att.load_policy(policy)  # a bad policy: before work
    signed = verify_bundle_signer(signature, keys, signature_policy or VerificationPolicy())
    manifest = signed.manifest
    model_digest = "sha256:" + manifest.root_digest
    result = None
    if not unsafe_skip_attestation:
        assert policy is not None  # checked above, before anything was read
        from qsafe.model_evidence import gather_model_evidence

        gathered = gather_model_evidence(list(evaluations), evaluator_keys, model_digest)
        result = _attest(policy, evidence, collect, nonce, at, model_digest, collector_options, gathered)
    from qsafe._hashing.gateread import read_model
    from qsafe._hashing.tensorload import to_arrays
    from qsafe.verifying import signature_inside

    root = Path(model)
    ignore = [p.rstrip("/") for p in manifest.serialization.ignore_paths]
    sig_rel = signature_inside(signature, root)
    if sig_rel is not None:
        ignore.append(sig_rel)
    read = read_model(root, manifest, ignore=tuple(dict.fromkeys(ignore)), select=files, progress=progress,
                      private_dir=verified_dir)
    try:
        tensors = to_arrays(read.pairs, chosen, device)
    except BaseException:
        if read.directory is not None:
            import shutil

            shutil.rmtree(read.directory, ignore_errors=True)
        raise
    return LoadedModel(tensors=tensors, files=read.files, model_digest=model_digest, key_id=signed.key_id,
                       attestation=result, attestation_skipped=unsafe_skip_attestation, framework=chosen,
                       tensor_files=list(read.tensor_files), verified_files=read.verified, directory=read.directory)
