"""Encrypted squared norms (ckks + norm keys), passphrase-protected secret contexts, key policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qsafe import keys
from qsafe.errors import HEMismatchError, KeyFileError, UsageError, WrongPassphraseError
from qsafe.federated import (
    EncryptedNorm,
    HEContext,
    aggregate,
    decrypt_squared_norm,
    encrypt_update,
    encrypted_squared_norm,
)


def test_encrypted_squared_norm_matches_plaintext(client_keys: list[keys.PrivateKey]) -> None:
    ctx = HEContext.generate("ckks", norm_keys=True, clip=2.0)
    public = HEContext.from_bytes(ctx.public().public_bytes())
    assert public.tenseal_public().has_galois_keys() and not public.tenseal_public().has_secret_key()
    rng = np.random.default_rng(4)
    update = {"w": rng.uniform(-2, 2, 6000).astype(np.float32), "b": rng.uniform(-2, 2, 7)}
    enc = encrypt_update(update, public, client_keys[0], 1)
    norm = EncryptedNorm.from_bytes(encrypted_squared_norm(enc, public).to_bytes())
    expected = float(sum(np.sum(v.astype(np.float64) ** 2) for v in update.values()))
    assert decrypt_squared_norm(norm, ctx) == pytest.approx(expected, rel=1e-5)
    assert norm.header["client_key_id"] == client_keys[0].public_key().key_id
    with pytest.raises(HEMismatchError):
        decrypt_squared_norm(norm, HEContext.generate("ckks"))


def test_norms_need_ckks_norm_keys(public_ctx: HEContext, client_keys: list[keys.PrivateKey]) -> None:
    enc = encrypt_update({"w": np.zeros(4)}, public_ctx, client_keys[0], 0)
    with pytest.raises(UsageError):
        encrypted_squared_norm(enc, public_ctx)
    with pytest.raises(UsageError):
        HEContext.generate("bfv-packed", norm_keys=True)


def test_secret_context_passphrase_round_trip(tmp_path: Path, secret_ctx: HEContext) -> None:
    path = tmp_path / "secret.ctx"
    secret_ctx.save_secret(path, b"correct horse")
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----") and path.stat().st_mode & 0o077 == 0
    assert HEContext.load(path, b"correct horse").fingerprint == secret_ctx.fingerprint
    with pytest.raises(WrongPassphraseError):
        HEContext.load(path, b"wrong")
    with pytest.raises(UsageError):
        HEContext.load(path)


def test_classical_client_keys_are_refused(public_ctx: HEContext, client_keys: list[keys.PrivateKey]) -> None:
    ec = keys.generate("ecdsa-p256")
    with pytest.raises(KeyFileError, match="not post-quantum"):
        encrypt_update({"w": np.zeros(4)}, public_ctx, ec, 0)
    composite = keys.generate("ml-dsa-65-ed25519")
    up = encrypt_update({"w": np.zeros(4)}, public_ctx, composite, 0)
    result = aggregate([up], public_ctx, [composite.public_key()], 0)
    assert result.refused == [] and len(result.accepted) == 1
