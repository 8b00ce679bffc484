"""Demo step: post-quantum model signing and verification.

Builds a small safetensors model (numpy + safetensors), makes an ML-DSA-65 key pair (``qsafe keygen``), signs the model with
``qsafe sign``, verifies it with ``qsafe verify`` (silent, exit 0), then tampers one tensor of a *copy* and shows
the named failure (exit 12).

Left behind for the later demo steps (encryption, attestation), untouched and verified:

- ``workdir/model/``: ``model.safetensors`` (tensors ``embed.weight``, ``classifier.weight``,
  ``classifier.bias``), ``config.json`` and the signature ``model.sig``;
- ``workdir/keys/signer.key`` (unprotected, demo only) and ``workdir/keys/signer.pub``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from _cli import qsafe  # examples/demo/_cli.py: one runner for every step
from safetensors.numpy import save_file

from qsafe.manifest import read_safetensors_header

TITLE = "Post-quantum model signing (ML-DSA-65) and tamper detection"


_qsafe = qsafe

def build_model(root: Path) -> None:
    """A tiny classifier: embedding, linear layer, bias, plus a config."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(2026)
    save_file({"embed.weight": rng.standard_normal((64, 16)).astype(np.float32),
               "classifier.weight": rng.standard_normal((2, 16)).astype(np.float32),
               "classifier.bias": np.zeros(2, dtype=np.float32)},
              str(root / "model.safetensors"), metadata={"demo": "qsafe"})
    (root / "config.json").write_text('{"num_labels": 2, "hidden": 16}\n')


def make_keys(directory: Path) -> tuple[Path, Path]:
    """``qsafe keygen`` an ML-DSA-65 pair; the demo opts out of the passphrase (a release key would not)."""
    directory.mkdir(parents=True, exist_ok=True)  # the keys step may have made it already
    made = _qsafe("keygen", "--alg", "ml-dsa-65", "--out", directory / "signer", "--no-passphrase")
    if made.returncode != 0:
        raise RuntimeError(f"keygen failed: {made.stderr}")
    print(f"  key id {made.stdout.strip()}")
    return directory / "signer.key", directory / "signer.pub"


def run(workdir: Path) -> None:
    model = workdir / "model"
    build_model(model)
    priv, pub = make_keys(workdir / "keys")
    signed = _qsafe("sign", model, "--key", priv)
    if signed.returncode != 0 or signed.stderr:
        raise RuntimeError(f"sign failed: {signed.stderr}")
    print(f"  wrote {signed.stdout.strip()}")
    ok = _qsafe("verify", model, "--key", pub)
    if ok.returncode != 0 or ok.stderr or ok.stdout:
        raise RuntimeError(f"verify of the untouched model failed: {ok.stderr}")
    print("  verified: exit 0, no output")

    tampered = workdir / "model-tampered"
    shutil.copytree(model, tampered)
    weights = tampered / "model.safetensors"
    target = next(t for t in read_safetensors_header(weights).tensors if t.name == "classifier.weight")
    data = bytearray(weights.read_bytes())
    data[target.begin] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    print(f"  flipped one bit of tensor {target.name} in a copy")
    bad = _qsafe("verify", tampered, "--key", pub)
    print("  " + bad.stderr.strip().replace("\n", "\n  "))
    print(f"  exit code {bad.returncode}")
    if bad.returncode != 12 or "classifier.weight" not in bad.stderr:
        raise RuntimeError("tampering was not detected and named")
