"""Interop with the real model-signing 1.1.1 CLI (``model_signing sign key`` / ``verify key``, ECDSA P-256)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import qsafe
from qsafe import keys
from qsafe.errors import ModelMismatchError, PolicyError, SignatureError

from .helpers import make_model, write_keypair

pytest.importorskip("model_signing")
pytest.importorskip("OpenSSL")  # model-signing's CLI needs pyOpenSSL (undeclared dependency)
MODEL_SIGNING = [sys.executable, "-m", "model_signing"]
CLASSICAL = qsafe.VerificationPolicy(allow_classical=True)


def _run_ms(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MODEL_SIGNING, *map(str, args)], capture_output=True, text=True, check=False, timeout=300)


@pytest.fixture(scope="module")
def ms_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A model signed by `model_signing sign key` with an ECDSA P-256 key made by cryptography."""
    base = tmp_path_factory.mktemp("ms")
    model = make_model(base / "model")
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: main")  # ignored by both tools
    priv = ec.generate_private_key(ec.SECP256R1())
    (base / "ec.key").write_bytes(priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    (base / "ec.pub").write_bytes(priv.public_key().public_bytes(serialization.Encoding.PEM,
                                                                 serialization.PublicFormat.SubjectPublicKeyInfo))
    result = _run_ms("sign", "key", model, "--private_key", base / "ec.key", "--signature", model / "model.sig")
    assert result.returncode == 0, result.stderr
    return model, base / "ec.pub"


def test_qsafe_verifies_model_signing_bundle(ms_signed: tuple[Path, Path], cli: object) -> None:
    model, pub = ms_signed
    result = qsafe.verify(model, model / "model.sig", pub, policy=CLASSICAL)
    assert result.algorithm == "ecdsa-p256" and not result.post_quantum
    assert not result.manifest.tensors  # model-signing records no tensor digests
    r = cli(["verify", model, "--key", pub, "--allow-classical"])  # type: ignore[operator]
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")


def test_classical_bundle_refused_by_default_policy(ms_signed: tuple[Path, Path], cli: object) -> None:
    model, pub = ms_signed
    with pytest.raises(PolicyError, match="classical-only"):
        qsafe.verify(model, model / "model.sig", pub, policy=qsafe.VerificationPolicy())
    r = cli(["verify", model, "--key", pub])  # type: ignore[operator]
    assert r.exit_code == 11 and "--allow-classical" in r.stderr


def test_model_signing_bundle_rejected_after_tampering(ms_signed: tuple[Path, Path], tmp_path: Path) -> None:
    model, pub = ms_signed
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    (copy / "config.json").write_text('{"hidden": 9}\n')
    with pytest.raises(ModelMismatchError) as exc:
        qsafe.verify(copy, copy / "model.sig", pub, policy=CLASSICAL)
    assert exc.value.changed == ["config.json"]
    doc = json.loads((model / "model.sig").read_text())
    payload = base64.b64decode(doc["dsseEnvelope"]["payload"]).replace(b'"hidden"', b'"hidden"', 1)
    statement = json.loads(payload)
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(SignatureError):
        qsafe.verify(model, json.dumps(doc).encode(), pub, policy=CLASSICAL)


def test_model_signing_verifies_qsafe_ecdsa_bundle(tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    key = keys.generate("ecdsa-p256")
    _, pub = write_keypair(key, tmp_path / "ec")
    qsafe.sign(model, key)
    result = _run_ms("verify", "key", model, "--signature", model / "model.sig", "--public_key", pub)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification succeeded" in result.stdout
    qsafe.verify(model, model / "model.sig", key.public_key(), policy=CLASSICAL)
    (model / "config.json").write_text("{}")
    result = _run_ms("verify", "key", model, "--signature", model / "model.sig", "--public_key", pub)
    assert result.returncode != 0


def test_model_signing_root_digest_matches(ms_signed: tuple[Path, Path], tmp_path: Path) -> None:
    """The subject digest model-signing signed equals the one qsafe computes for the same model."""
    model, pub = ms_signed
    signed = qsafe.verify(model, model / "model.sig", pub, policy=CLASSICAL).manifest
    ours = qsafe.manifest.hash_model(model, qsafe.hashing.HashingConfig(ignore_paths=("model.sig",)))
    assert ours.root_digest == signed.root_digest
    assert [r.name for r in ours.resources] == [r.name for r in signed.resources]


def test_inspect_model_signing_bundle(ms_signed: tuple[Path, Path], cli: object) -> None:
    model, _ = ms_signed
    r = cli(["inspect", model / "model.sig", "--json"])  # type: ignore[operator]
    data = json.loads(r.stdout)
    assert r.exit_code == 0 and data["signer"]["algorithm"] is None and data["verified"] is False
    assert data["serialization"]["method"] == "files" and "model.sig" in data["serialization"]["ignore_paths"]
