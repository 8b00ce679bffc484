"""Fixtures for CLI robustness tests: a small signed model and keys of every kind, made through the real API."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ATTESTATIONS = REPO / "attestations"
EVIDENCE = ATTESTATIONS / "evidence" / "hopper-h100.evidence.json"
HOPPER_POLICY = ATTESTATIONS / "policies" / "nvidia-hopper-cc.json"
# The nonce the recorded Hopper report was made for, and a verification time just after it was collected.
RECORDED_NONCE = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"
AT = "2024-05-01T00:01:00Z"


def digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (the inputs a failed command must leave untouched)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(root: Path) -> list[str]:
    """Temporary files an interrupted atomic write would leave behind."""
    return [str(p) for p in root.rglob("*.qsafe-tmp")]


@pytest.fixture()
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace (also the cwd): model/ signed with signer.key, signer.pub, a protected key, an age identity."""
    from safetensors.numpy import save_file

    from qsafe import keys
    from qsafe.signing import sign

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QSAFE_SCRYPT_WORK_FACTOR", "10")
    monkeypatch.delenv("QSAFE_PASSPHRASE", raising=False)
    monkeypatch.delenv("QSAFE_DEBUG", raising=False)
    key = keys.generate("ml-dsa-44")
    keys.write_key_pair(key, tmp_path / "signer", None)
    keys.write_key_pair(keys.generate("ml-dsa-44"), tmp_path / "locked", b"right passphrase")
    (tmp_path / "model").mkdir()
    save_file({"w": np.arange(16, dtype=np.float32).reshape(4, 4) / 16}, str(tmp_path / "model" / "model.safetensors"))
    sign(tmp_path / "model", key)
    (tmp_path / "pw.txt").write_text("right passphrase\n")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 passphrase\n")
    (tmp_path / "garbage.json").write_bytes(b'{"a": "\xff\xfe"')
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "dir").mkdir()
    return tmp_path
