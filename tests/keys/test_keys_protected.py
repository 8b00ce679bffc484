"""Passphrase-protected key files: age-scrypt wrapping of the PKCS#8 PEM, and every way opening one fails."""

from __future__ import annotations

import base64
import json
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qsafe import _age, keys
from qsafe._crypto import keyfile
from qsafe.errors import IntegrityError, KeyFileError, UsageError, WrongPassphraseError

PASS = b"correct horse battery staple"


def _stanza_work_factor(armored: bytes) -> int:
    lines = armored.decode().strip().splitlines()
    assert lines[0] == "-----BEGIN AGE ENCRYPTED FILE-----" and lines[-1] == "-----END AGE ENCRYPTED FILE-----"
    binary = base64.b64decode("".join(lines[1:-1]))
    match = re.search(rb"\n-> scrypt [A-Za-z0-9+/]+ (\d+)\n", binary)
    assert match is not None
    return int(match.group(1))


@pytest.mark.parametrize("algorithm", ["ml-dsa-65", "ml-dsa-65-ed25519", "ecdsa-p256"])
def test_protected_roundtrip(tmp_path: Path, algorithm: str) -> None:
    private = keys.generate(algorithm)
    _, key_path = keys.write_key_pair(private, tmp_path / "k", PASS)
    data = key_path.read_bytes()
    assert data.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    assert b"PRIVATE KEY" not in data
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert _stanza_work_factor(data) == 10  # the test-only knob set by tests/keys/conftest.py
    assert _age.decrypt_with_passphrase(data, PASS) == private.to_pem()
    loaded = keys.load_private_key(key_path, PASS)
    assert loaded.public_key().key_id == private.public_key().key_id


def test_missing_and_wrong_passphrase(tmp_path: Path) -> None:
    _, key_path = keys.write_key_pair(keys.generate("ml-dsa-44"), tmp_path / "k", PASS)
    with pytest.raises(KeyFileError, match="key is passphrase-protected") as missing:
        keys.load_private_key(key_path)
    assert type(missing.value) is KeyFileError and missing.value.exit_code == 4
    with pytest.raises(WrongPassphraseError, match="wrong passphrase") as wrong:
        keys.load_private_key(key_path, b"not it")
    assert wrong.value.exit_code == 4


def test_tampered_protected_key(tmp_path: Path) -> None:
    private = keys.generate("ml-dsa-65")
    binary = _age.encrypt_with_passphrase(private.to_pem(), PASS, work_factor=4, armor=False)
    path = tmp_path / "k.key"
    path.write_bytes(binary)  # binary age is accepted too
    assert keys.load_private_key(path, PASS).public_key().key_id == private.public_key().key_id
    path.write_bytes(binary[:-1] + bytes([binary[-1] ^ 1]))  # payload tag
    with pytest.raises(IntegrityError):
        keys.load_private_key(path, PASS)
    path.write_bytes(binary[:-20])  # truncated
    with pytest.raises(IntegrityError):
        keys.load_private_key(path, PASS)


def test_passphrase_is_never_written_and_public_file_refuses(tmp_path: Path) -> None:
    keys.write_key_pair(keys.generate("ml-dsa-65"), tmp_path / "k", PASS)
    for name in ("k.key", "k.pub"):
        assert PASS not in (tmp_path / name).read_bytes()
    with pytest.raises(KeyFileError, match="protected private key"):
        keys.load_public_key(tmp_path / "k.key")


def test_work_factor_default_and_knob(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(keyfile.WORK_FACTOR_ENV)
    assert keyfile.work_factor() == keyfile.DEFAULT_WORK_FACTOR == 18
    for bad in ("x", "0", "31"):
        monkeypatch.setenv(keyfile.WORK_FACTOR_ENV, bad)
        with pytest.raises(KeyFileError):
            keyfile.work_factor()
    with pytest.raises(KeyFileError, match="empty passphrase"):
        keyfile.protect(b"secret", b"")


def test_keygen_passphrase_file(cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret phrase\nsecond line ignored\n")
    result = cli(["keygen", "--out", tmp_path / "k", "--passphrase-file", tmp_path / "pw", "--json"])
    assert (result.exit_code, result.stderr) == (0, "")
    report = json.loads(result.stdout)
    assert report["protected"] is True
    assert keys.load_private_key(tmp_path / "k.key", b"s3cret phrase").public_key().key_id == report["key_id"]
    with pytest.raises(WrongPassphraseError):
        keys.load_private_key(tmp_path / "k.key", b"second line ignored")


def test_keygen_passphrase_env(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli(["keygen", "--alg", "ml-dsa-65-ed25519", "--out", tmp_path / "k"],
                 env={"QSAFE_PASSPHRASE": "from the environment"})
    assert (result.exit_code, result.stderr) == (0, "")
    assert keyfile.is_protected((tmp_path / "k.key").read_bytes())
    key = keys.load_private_key(tmp_path / "k.key", b"from the environment")
    assert key.public_key().key_id == result.stdout.strip()


def test_keygen_empty_passphrase_file(cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("")
    result = cli(["keygen", "--out", tmp_path / "k", "--passphrase-file", tmp_path / "pw"])
    assert result.exit_code == 2 and "qsafe: error: the passphrase is empty" in result.stderr
    missing = cli(["keygen", "--out", tmp_path / "k", "--passphrase-file", tmp_path / "nope"])
    assert missing.exit_code == 2 and "cannot read passphrase file" in missing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pw"]


def test_one_loader_asks_for_the_passphrase_only_when_the_key_is_protected(tmp_path: Path) -> None:
    """keys.load_private_key is the one loader (CLI, library, plugins): a callable source is called only for a
    protected file; a passphrase file is read only then; both sources at once are refused."""
    asked: list[int] = []

    def source() -> bytes:
        asked.append(1)
        return PASS

    _, plain = keys.write_key_pair(keys.generate("ml-dsa-44"), tmp_path / "plain", None)
    _, protected = keys.write_key_pair(keys.generate("ml-dsa-44"), tmp_path / "protected", PASS)
    keys.load_private_key(plain, source)
    keys.load_private_key(plain, passphrase_file=tmp_path / "no-such-file")  # never read: the key is not protected
    assert asked == []
    keys.load_private_key(protected, source)
    assert asked == [1]
    (tmp_path / "pw.txt").write_bytes(PASS + b"\nsecond line ignored\n")
    keys.load_private_key(protected, passphrase_file=tmp_path / "pw.txt")
    keys.load_private_key(protected, PASS.decode())  # str works too
    with pytest.raises(UsageError, match="not both"):
        keys.load_private_key(protected, PASS, passphrase_file=tmp_path / "pw.txt")
    with pytest.raises(UsageError, match="cannot read passphrase file"):
        keys.load_private_key(protected, passphrase_file=tmp_path / "no-such-file")


def test_public_key_given_as_private_key_is_named(tmp_path: Path) -> None:
    pub, _ = keys.write_key_pair(keys.generate("ml-dsa-44"), tmp_path / "k", None)
    with pytest.raises(KeyFileError, match="is a public key; a private key is needed here") as err:
        keys.load_private_key(pub)
    assert "PREFIX.key" in (err.value.hint or "")
