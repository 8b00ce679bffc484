"""The release: the signed model and its evidence, encrypted to the serving identity, loaded only through the gate.

The release file is one age file (ML-KEM-768 + X25519 recipient: the serving machine's identity) holding a
deterministic tar of ``model/`` (weights, config, ``model.sig``) and ``evidence/`` (DP certificate, privacy and
theft audits, model card). :func:`load_release` is what the serving side runs: decrypt into a fresh private
folder, then :func:`qsafe.load_model` verifies the model signature, appraises the environment evidence and
checks every ``model.*`` rule of the release policy against the signed statements, and only then returns the
weights. The stage also shows the gate refusing: without the model card, and with a card signed by another key.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qsafe.errors import AttestationError, QsafeError, UsageError

if TYPE_CHECKING:
    from qsafe.fraud.stages import Context
    from qsafe.keys import PublicKey

__all__ = ["RELEASE_FILE", "GateResult", "load_release", "release_stage"]

RELEASE_FILE = "release/fraud-model.age"
EVIDENCE_NAMES = ("dp-certificate.json", "privacy-audit.json", "theft-audit.json", "model-card.json")


@dataclass
class GateResult:
    """What the gate let through: the verified weights and the appraisal."""

    weights: dict[str, Any]
    model_digest: str
    attestation: Any


def _environment(spec: str) -> tuple[Path, str | None, dt.datetime | None]:
    """Recorded evidence by shipped name (with its recorded nonce and time) or a path (appraised now)."""
    from qsafe.attestation.shipped import recorded

    if os.sep in spec or spec.endswith(".json"):
        return Path(spec), None, None
    item = recorded(spec)
    return item.path, item.nonce or None, item.at


def load_release(release: str | os.PathLike[str], *, identity_file: str | os.PathLike[str],
                 signer_keys: Sequence[PublicKey], evaluator_keys: Sequence[PublicKey], policy: str | os.PathLike[str],
                 evidence: str, evaluations: Sequence[str] = EVIDENCE_NAMES, workdir: str | os.PathLike[str] | None = None
                 ) -> GateResult:
    """Decrypt a release and load its model through the attested gate.

    Args:
        release: the age file. identity_file: the serving identity.
        signer_keys: the model signer's public keys. evaluator_keys: the evidence signers' public keys.
        policy: the release policy (environment rules and ``model.*`` rules).
        evidence: environment evidence: a shipped recorded evidence name (appraised at its recorded time with its
            recorded nonce) or a path.
        evaluations: which evidence files of the release to present (default: all four).
        workdir: where to decrypt (a fresh private folder inside it; removed afterwards).

    Returns:
        The verified weights and what the gate checked.

    Raises:
        NoIdentityMatchedError / IntegrityError: the release is not for this identity or was modified.
        SignatureError / ModelMismatchError: the model signature fails. AttestationError: the environment or a
            ``model.*`` rule fails (a missing or unsigned model card is a failed rule).
    """
    from qsafe.encryption import decrypt
    from qsafe.fraud.training import load_weights
    from qsafe.loading import load_model

    tmp = Path(tempfile.mkdtemp(prefix="qsafe-release-", dir=workdir))
    try:
        target = tmp / "release"
        decrypt(release, extract=target, identity_files=[identity_file])
        ev_path, nonce, at = _environment(evidence)
        loaded = load_model(target / "model", target / "model" / "model.sig", list(signer_keys), Path(policy),
                            evidence=ev_path, nonce=bytes.fromhex(nonce) if nonce else None, at=at,
                            framework="numpy", evaluations=[target / "evidence" / n for n in evaluations],
                            evaluator_keys=list(evaluator_keys))
        return GateResult(load_weights(loaded.tensors), loaded.model_digest, loaded.attestation)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _refusal(fn: Any) -> dict[str, Any]:
    try:
        fn()
    except QsafeError as exc:
        return {"refused": True, "error": type(exc).__name__, "exit_code": exc.exit_code,
                "message": str(exc).splitlines()[0],
                "failed": list(getattr(exc, "failed_claims", []))}
    return {"refused": False}


def release_stage(ctx: Context) -> dict[str, Any]:
    """Stage: build, encrypt, then load through the gate (and show two refusals)."""
    import numpy as np

    from qsafe.encryption import encrypt
    from qsafe.fraud import evidence as fev
    from qsafe.fraud.stages import MODEL_DIR
    from qsafe.fraud.training import predict_proba

    rcfg = ctx.cfg["release"]
    policy = ctx.cfg.path(rcfg["policy"])
    if not policy.is_file():
        raise UsageError(f"release policy {policy} does not exist")
    staging = ctx.path("release/staging")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "model").mkdir(parents=True)
    (staging / "evidence").mkdir()
    for name in ("model.safetensors", "config.json", "model.sig"):
        shutil.copyfile(ctx.path(f"{MODEL_DIR}/{name}"), staging / "model" / name)
    for name in EVIDENCE_NAMES:
        shutil.copyfile(ctx.path(f"evidence/{name}"), staging / "evidence" / name)
    out = ctx.path(RELEASE_FILE)
    if out.exists():
        out.unlink()
    encrypt(staging, out, recipients_files=[ctx.path("keys/serving.recipient")])
    shutil.rmtree(staging)
    ctx.say("release", f"encrypted to the serving identity: {RELEASE_FILE} ({out.stat().st_size} bytes)")

    keys = {"identity_file": ctx.path("keys/serving.identity"), "signer_keys": [ctx.public("release")],
            "evaluator_keys": [ctx.public("auditor")], "policy": policy, "evidence": rcfg["evidence"],
            "workdir": ctx.path("release")}
    gate = load_release(out, **keys)
    data, _ = ctx.data()
    split = ctx.split()
    x = data.features()[split.test]
    same = bool(np.array_equal(predict_proba(gate.weights, x), predict_proba(ctx.weights(), x)))
    attestation = gate.attestation
    ctx.say("release", f"gate: loaded {gate.model_digest[:23]}..., attestation "
                       f"{getattr(attestation, 'verdict', '?')}, scores identical to the trained model: {same}")
    if not same:
        raise AttestationError("the model loaded through the gate does not score like the trained model")

    missing_card = _refusal(lambda: load_release(out, **keys, evaluations=EVIDENCE_NAMES[:3]))
    from qsafe import keys as qkeys

    rogue = qkeys.generate("ml-dsa-65")
    card = fev.sign_statement(ctx.model_digest(), fev.MODEL_CARD, {"metrics": {"sample_rate": {"pr_auc": 1.0}}},
                              rogue)
    unsigned_card = _refusal(lambda: _load_with_card(ctx, out, keys, card))
    ctx.say("release", f"gate without the model card: refused={missing_card['refused']} "
                       f"({missing_card.get('error')}); with a card signed by another key: "
                       f"refused={unsigned_card['refused']} ({unsigned_card.get('error')})")
    result = {"release": RELEASE_FILE, "bytes": out.stat().st_size, "model_digest": gate.model_digest,
              "recipient": ctx.path("keys/serving.recipient").read_text().strip(),
              "policy": str(rcfg["policy"]), "environment_evidence": rcfg["evidence"],
              "attestation": {"verdict": getattr(attestation, "verdict", None),
                              "freshness": getattr(attestation, "freshness", None),
                              "policy": getattr(attestation, "policy_name", None)},
              "scores_identical": same, "refusals": {"without_model_card": missing_card,
                                                     "card_signed_by_another_key": unsigned_card}}
    ctx.write_json("results/release.json", result)
    return {"model_digest": gate.model_digest, "attestation": result["attestation"]["verdict"],
            "refused_without_card": missing_card["refused"], "refused_foreign_card": unsigned_card["refused"]}


def _load_with_card(ctx: Context, release: Path, keys: dict[str, Any], card: bytes) -> None:
    """Replace the release's model card with ``card`` (a copy, re-encrypted) and try the gate."""
    from qsafe.encryption import decrypt, encrypt

    tmp = Path(tempfile.mkdtemp(prefix="qsafe-forged-", dir=ctx.path("release")))
    try:
        decrypt(release, extract=tmp / "r", identity_files=[keys["identity_file"]])
        (tmp / "r" / "evidence" / "model-card.json").write_bytes(card)
        forged = tmp / "forged.age"
        encrypt(tmp / "r", forged, recipients_files=[ctx.path("keys/serving.recipient")])
        load_release(forged, **keys)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
