"""Helpers shared by the signing tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from qsafe import keys


def write_keypair(key: keys.PrivateKey, prefix: Path) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (unprotected, for tests) and ``PREFIX.pub``."""
    priv, pub = prefix.with_suffix(".key"), prefix.with_suffix(".pub")
    priv.write_bytes(key.to_pem())
    pub.write_bytes(key.public_key().to_pem())
    return priv, pub


def make_model(root: Path) -> Path:
    """A small model: one safetensors file (3 tensors + metadata), a config and a nested tokenizer file."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    tensors = {
        "encoder.weight": rng.standard_normal((16, 8)).astype(np.float32),
        "encoder.bias": rng.standard_normal(8).astype(np.float32),
        "head.weight": rng.integers(-5, 5, (4, 8)).astype(np.int64),
    }
    save_file(tensors, str(root / "model.safetensors"), metadata={"format": "np"})
    (root / "config.json").write_text('{"hidden": 8}\n')
    (root / "tokenizer").mkdir(exist_ok=True)
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\nc\n")
    return root
