"""Fixtures for the hostile-input tests: a signed model with config and tokenizer, keys, helpers that prove
nothing harmful was written (no partial output, no temporary file left, inputs unchanged)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ATTESTATIONS = REPO / "attestations"
HOPPER = ATTESTATIONS / "evidence" / "hopper-h100.evidence.json"
HOPPER_POLICY = ATTESTATIONS / "policies" / "nvidia-hopper-cc.json"
HOPPER_NONCE = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"
AT = "2024-05-01T00:01:00Z"


def snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``root`` (symlinks not followed): what a refused command must keep."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def leftovers(root: Path) -> list[str]:
    """Hidden temporary outputs an interrupted atomic write would leave behind."""
    return [str(p) for p in root.rglob("*.qsafe-tmp")]


def make_model(root: Path) -> Path:
    """A small real model folder: safetensors weights, config.json, tokenizer.json, a nested vocab file."""
    from safetensors.numpy import save_file

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(15)
    save_file({"embed.weight": rng.standard_normal((32, 8)).astype(np.float32),
               "head.bias": rng.standard_normal(4).astype(np.float32)},
              str(root / "model.safetensors"), metadata={"format": "np"})
    (root / "config.json").write_text(json.dumps({"hidden_size": 8, "vocab_size": 32}) + "\n")
    (root / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"a": 0, "b": 1}}}) + "\n")
    (root / "extra").mkdir(exist_ok=True)
    (root / "extra" / "vocab.txt").write_text("a\nb\n")
    return root


@pytest.fixture()
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace (also the cwd): model/ signed with signer.key (model/model.sig), signer.pub."""
    from qsafe import keys
    from qsafe.signing import sign

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QSAFE_SCRYPT_WORK_FACTOR", "10")
    monkeypatch.delenv("QSAFE_PASSPHRASE", raising=False)
    monkeypatch.delenv("QSAFE_DEBUG", raising=False)
    key = keys.generate("ml-dsa-44")
    keys.write_key_pair(key, tmp_path / "signer", None)
    sign(make_model(tmp_path / "model"), key)
    return tmp_path
