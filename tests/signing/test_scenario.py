"""Scenario (slow): a multi-file, multi-shard model signed by qsafe and model-signing alike, tampered mid-shard."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import qsafe
from qsafe import keys
from qsafe.errors import ModelMismatchError
from qsafe.hashing import HashingConfig
from qsafe.manifest import hash_model, read_safetensors_header

pytestmark = pytest.mark.slow


def _model(root: Path) -> Path:
    root.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        save_file({f"l{i}.w{j}": rng.standard_normal((256, 256)).astype(np.float32) for j in range(8)},
                  str(root / f"model-{i}.safetensors"))
    (root / "tokenizer.json").write_bytes(os.urandom(300_000))
    return root


def test_sharded_model_round_trip_and_mid_shard_tamper(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    key = keys.generate("ml-dsa-87")
    config = HashingConfig(method="shards", shard_size=256 * 1024)
    signed = qsafe.sign(model, key, signature=tmp_path / "m.sig", config=config)
    assert len(signed.resources) > 10 and len(signed.tensors) == 3
    ms = pytest.importorskip("model_signing.hashing")
    ref = ms.Config().use_shard_serialization(shard_size=256 * 1024).hash(model)
    assert [(d.identifier, d.digest.digest_hex) for d in ref.resource_descriptors()] == [
        (r.name, r.digest) for r in signed.resources]
    one = hash_model(model, HashingConfig(method="shards", shard_size=256 * 1024, workers=1, tensor_digests=False))
    assert one.resources == signed.resources  # threads change nothing
    policy = qsafe.VerificationPolicy(algorithms=frozenset({"ml-dsa-87"}))
    qsafe.verify(model, tmp_path / "m.sig", key.public_key(), policy=policy)
    target = model / "model-1.safetensors"
    tensor = read_safetensors_header(target).tensors[5]
    data = bytearray(target.read_bytes())
    data[(tensor.begin + tensor.end) // 2] ^= 0x80
    target.write_bytes(bytes(data))
    with pytest.raises(ModelMismatchError) as exc:
        qsafe.verify(model, tmp_path / "m.sig", key.public_key(), policy=policy)
    assert exc.value.changed == ["model-1.safetensors"]
    assert exc.value.changed_tensors == {"model-1.safetensors": [tensor.name]}
