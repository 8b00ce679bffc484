"""EC keys made the way model-signing's documentation makes them (the openssl CLI) load and interoperate."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from qsafe import keys
from qsafe.errors import SignatureError

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def test_openssl_p256_key_pair(tmp_path: Path) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "key", cwd=tmp_path)
    _openssl("ec", "-in", "key", "-pubout", "-out", "key.pub", cwd=tmp_path)
    assert (tmp_path / "key").read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----")
    private = keys.load_private_key(tmp_path / "key")
    public = keys.load_public_key(tmp_path / "key.pub")
    assert private.algorithm == public.algorithm == "ecdsa-p256" and not public.post_quantum
    assert private.public_key().key_id == public.key_id
    assert public.to_pem() == (tmp_path / "key.pub").read_bytes()  # so model-signing's PEM hint matches
    signature = private.sign(b"PAE bytes", b"")
    public.verify(signature, b"PAE bytes", b"")
    (tmp_path / "data").write_bytes(b"PAE bytes")
    (tmp_path / "sig").write_bytes(signature)
    _openssl("dgst", "-sha256", "-verify", "key.pub", "-signature", "sig", "data", cwd=tmp_path)  # real peer
    _openssl("dgst", "-sha256", "-sign", "key", "-out", "sig2", "data", cwd=tmp_path)
    public.verify((tmp_path / "sig2").read_bytes(), b"PAE bytes", b"")
    with pytest.raises(SignatureError):
        public.verify((tmp_path / "sig2").read_bytes(), b"other bytes", b"")


def test_openssl_p384_public_key_uses_sha384(tmp_path: Path) -> None:
    _openssl("ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "key", cwd=tmp_path)
    _openssl("ec", "-in", "key", "-pubout", "-out", "key.pub", cwd=tmp_path)
    public = keys.load_public_key(tmp_path / "key.pub")
    assert public.algorithm == "ecdsa-p384"
    raw = serialization.load_pem_private_key((tmp_path / "key").read_bytes(), None)
    assert isinstance(raw, ec.EllipticCurvePrivateKey)
    public.verify(raw.sign(b"m", ec.ECDSA(hashes.SHA384())), b"m", b"")
