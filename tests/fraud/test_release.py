"""The release gate: the model loads only with its signed evidence; a missing or foreign-signed card is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qsafe import keys as qkeys
from qsafe.encryption import encrypt, generate_identity
from qsafe.errors import AttestationError, NoIdentityMatchedError
from qsafe.fraud import evidence as fev
from qsafe.fraud.release import EVIDENCE_NAMES, load_release
from qsafe.fraud.training import save_weights
from tests.fraud.conftest import REPO

POLICY = REPO / "examples" / "fraud_pipeline" / "policies" / "fraud-release.json"

PREDICATES = {
    "dp-certificate.json": (fev.DP_CERTIFICATE, {"epsilon": 0.99, "delta": 1e-5}),
    "privacy-audit.json": (fev.PRIVACY_AUDIT, {"worst": {"frauds": {"advantage": 0.03}}}),
    "theft-audit.json": (fev.THEFT_AUDIT, {"monitor": {"false_alarm_rate": 0.0},
                                           "watermark": {"false_positive_rate": 0.0}}),
    "model-card.json": (fev.MODEL_CARD, {"metrics": {"sample_rate": {"pr_auc": 0.93}},
                                         "training_data": {"poisoning_audit": {"passed": True,
                                                                               "unsafe_override": False}}}),
}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, signer, other_signer):  # type: ignore[no-untyped-def]
    from qsafe import sign

    root = tmp_path_factory.mktemp("release")
    stage = root / "stage"
    (stage / "model").mkdir(parents=True)
    (stage / "evidence").mkdir()
    rng = np.random.default_rng(0)
    weights = {"fc1.weight": rng.normal(size=(4, 29)).astype(np.float32), "fc1.bias": np.zeros(4, np.float32),
               "fc2.weight": rng.normal(size=(1, 4)).astype(np.float32), "fc2.bias": np.zeros(1, np.float32)}
    (stage / "model" / "model.safetensors").write_bytes(save_weights(weights))
    (stage / "model" / "config.json").write_text(json.dumps({"format": "qsafe-fraud-mlp/v1"}))
    release_key = qkeys.generate("ml-dsa-65")
    digest = "sha256:" + sign(stage / "model", release_key, signature=stage / "model" / "model.sig").root_digest
    for name, (ptype, pred) in PREDICATES.items():
        (stage / "evidence" / name).write_bytes(fev.sign_statement(digest, ptype, pred, signer))
    identity, recipient = generate_identity()
    (root / "serving.identity").write_text(identity + "\n")
    (root / "serving.recipient").write_text(recipient + "\n")
    encrypt(stage, root / "fraud-model.age", recipients_files=[root / "serving.recipient"])

    def forged(card_signer, drop: str | None = None) -> Path:  # type: ignore[no-untyped-def]
        copy = root / f"forged-{drop or 'card'}"
        shutil.copytree(stage, copy)
        if drop:
            (copy / "evidence" / drop).unlink()
        else:
            ptype, pred = PREDICATES["model-card.json"]
            (copy / "evidence" / "model-card.json").write_bytes(fev.sign_statement(digest, ptype, pred, card_signer))
        out = root / f"{copy.name}.age"
        encrypt(copy, out, recipients_files=[root / "serving.recipient"])
        return out

    args = {"identity_file": root / "serving.identity", "signer_keys": [release_key.public_key()],
            "evaluator_keys": [signer.public_key()], "policy": POLICY, "evidence": "hopper-h100", "workdir": root}
    return root, args, weights, digest, forged, other_signer


def test_the_release_loads_through_the_gate(release) -> None:  # type: ignore[no-untyped-def]
    root, args, weights, digest, _, _ = release
    gate = load_release(root / "fraud-model.age", **args)
    assert gate.model_digest == digest and gate.attestation.verdict == "allow"
    assert all(np.array_equal(gate.weights[k], weights[k]) for k in weights)
    assert not [p for p in root.iterdir() if p.name.startswith("qsafe-release-")]  # the plaintext is gone


def test_a_missing_model_card_is_refused(release) -> None:  # type: ignore[no-untyped-def]
    root, args, *_ = release
    with pytest.raises(AttestationError, match="model.metrics.sample_rate.pr_auc: missing claim") as err:
        load_release(root / "fraud-model.age", **args, evaluations=EVIDENCE_NAMES[:3])
    assert err.value.exit_code == 15


def test_a_card_signed_by_another_key_is_refused(release) -> None:  # type: ignore[no-untyped-def]
    _root, args, _, _, forged, other = release
    with pytest.raises(AttestationError, match="unsigned or another signer"):
        load_release(forged(other), **args)


def test_a_release_for_another_identity_is_refused(release, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, args, *_ = release
    identity, _ = generate_identity()
    (tmp_path / "other.identity").write_text(identity + "\n")
    with pytest.raises(NoIdentityMatchedError):
        load_release(root / "fraud-model.age", **{**args, "identity_file": tmp_path / "other.identity"})
