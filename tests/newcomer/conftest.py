"""Fixtures for the newcomer transcript tests: a small signed model, a machine without a GPU."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest


class _NVMLError(Exception):
    pass


@pytest.fixture()
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pynvml whose nvmlInit fails as on a machine without the NVIDIA driver, whatever this host has."""
    fake = types.ModuleType("pynvml")

    def init() -> None:
        raise _NVMLError("NVML Shared Library Not Found")

    fake.nvmlInit = init  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", fake)


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    """``my-model/`` with config.json and a two-tensor safetensors file (unsigned)."""
    from safetensors.numpy import save_file

    root = tmp_path / "my-model"
    root.mkdir()
    rng = np.random.default_rng(13)
    save_file({"classifier.weight": rng.standard_normal((4, 16)).astype(np.float32),
               "classifier.bias": rng.standard_normal(4).astype(np.float32)}, str(root / "model.safetensors"))
    (root / "config.json").write_text('{"hidden_size": 16}\n')
    return root


@pytest.fixture()
def release_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """``release.key`` (protected with passphrase 'pw', work factor 10) and ``release.pub``."""
    from qsafe import keys

    monkeypatch.setenv("QSAFE_SCRYPT_WORK_FACTOR", "10")
    monkeypatch.delenv("QSAFE_PASSPHRASE", raising=False)
    pub, priv = keys.write_key_pair(keys.generate("ml-dsa-65"), tmp_path / "release", passphrase=b"pw")
    return Path(priv), Path(pub)


@pytest.fixture()
def signed_model(model_dir: Path, release_keys: tuple[Path, Path]) -> Path:
    """``my-model`` signed with ``release.key`` (``my-model/model.sig``)."""
    from qsafe import keys
    from qsafe.signing import sign

    sign(model_dir, keys.load_private_key(release_keys[0], b"pw"))
    return model_dir
