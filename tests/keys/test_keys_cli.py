"""Transcript tests for ``qsafe keygen``: exit codes, stdout, empty stderr on success, refusals."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qsafe import keys


@pytest.mark.parametrize("algorithm", keys.SIGNATURE_ALGORITHMS)
def test_keygen_each_algorithm(cli: Callable[..., Any], tmp_path: Path, algorithm: str) -> None:
    result = cli(["keygen", "--alg", algorithm, "--out", tmp_path / "k", "--no-passphrase"])
    assert (result.exit_code, result.stderr) == (0, "")
    public = keys.load_public_key(tmp_path / "k.pub")
    assert result.stdout == public.key_id + "\n"
    assert public.algorithm == algorithm
    private = keys.load_private_key(tmp_path / "k.key")
    public.verify(private.sign(b"m", b"c"), b"m", b"c")
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600


def test_keygen_default_is_mldsa65_and_json(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli(["keygen", "--out", tmp_path / "k", "--no-passphrase", "--json"])
    assert (result.exit_code, result.stderr) == (0, "")
    report = json.loads(result.stdout)
    public = keys.load_public_key(tmp_path / "k.pub")
    assert report == {"kind": "signing", "algorithm": "ml-dsa-65", "key_id": public.key_id, "post_quantum": True,
                      "public_key": str(tmp_path / "k.pub"), "private_key": str(tmp_path / "k.key"),
                      "protected": False}


def test_keygen_refuses_to_overwrite(cli: Callable[..., Any], tmp_path: Path) -> None:
    first = cli(["keygen", "--out", tmp_path / "k", "--no-passphrase"])
    assert first.exit_code == 0
    before = {p: (tmp_path / p).read_bytes() for p in ("k.pub", "k.key")}
    again = cli(["keygen", "--out", tmp_path / "k", "--no-passphrase"])
    assert again.exit_code == 2 and again.stdout == ""
    assert again.stderr.startswith("qsafe: error: refusing to overwrite")
    assert "qsafe: hint: " in again.stderr and "--force" in again.stderr
    assert {p: (tmp_path / p).read_bytes() for p in before} == before
    (tmp_path / "k.key").unlink()  # one file left is still a refusal
    assert cli(["keygen", "--out", tmp_path / "k", "--no-passphrase"]).exit_code == 2
    forced = cli(["keygen", "--out", tmp_path / "k", "--no-passphrase", "--force"])
    assert (forced.exit_code, forced.stderr) == (0, "")
    assert keys.load_public_key(tmp_path / "k.pub").key_id == forced.stdout.strip() != first.stdout.strip()


def test_keygen_usage_errors(cli: Callable[..., Any], tmp_path: Path) -> None:
    both = cli(["keygen", "--out", tmp_path / "k", "--no-passphrase", "--passphrase-file", tmp_path / "pw"])
    assert both.exit_code == 2 and "contradict" in both.stderr
    unknown = cli(["keygen", "--alg", "rsa", "--out", tmp_path / "k", "--no-passphrase"])
    assert unknown.exit_code == 2 and "rsa" in unknown.stderr
    missing_out = cli(["keygen", "--no-passphrase"])
    assert missing_out.exit_code == 2 and "--out" in missing_out.stderr
    assert not list(tmp_path.iterdir())


def test_keygen_without_passphrase_source_fails_cleanly(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli(["keygen", "--out", tmp_path / "k"])  # no file, no $QSAFE_PASSPHRASE, no terminal
    assert result.exit_code == 2 and result.stdout == ""
    assert "qsafe: error: a passphrase is needed but none was given" in result.stderr
    assert "QSAFE_PASSPHRASE" in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("algorithm", "prefix"), [("ml-kem-768-x25519", "age1pq1"), ("x25519", "age1")])
def test_keygen_encryption_identity(cli: Callable[..., Any], tmp_path: Path, algorithm: str, prefix: str) -> None:
    from qsafe import encryption

    result = cli(["keygen", "--alg", algorithm, "--out", tmp_path / "id", "--json"],
                 env={"QSAFE_PASSPHRASE": "identity pass"})
    assert (result.exit_code, result.stderr) == (0, "")
    report = json.loads(result.stdout)
    recipient = (tmp_path / "id.pub").read_text().strip()
    assert report["recipient"] == recipient and recipient.startswith(prefix)
    assert report["kind"] == "encryption" and report["protected"] is True
    assert report["post_quantum"] is (algorithm != "x25519")
    assert stat.S_IMODE((tmp_path / "id.key").stat().st_mode) == 0o600
    assert (tmp_path / "id.key").read_bytes().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    assert b"AGE-SECRET-KEY" not in (tmp_path / "id.key").read_bytes()
    (tmp_path / "plain.txt").write_bytes(b"for the new identity")
    encryption.encrypt(tmp_path / "plain.txt", tmp_path / "msg.age", recipients=[recipient])
    encryption.decrypt(tmp_path / "msg.age", tmp_path / "out.txt", identity_files=[tmp_path / "id.key"],
                       identity_passphrase=b"identity pass")
    assert (tmp_path / "out.txt").read_bytes() == b"for the new identity"
    plain = cli(["keygen", "--alg", algorithm, "--out", tmp_path / "open", "--no-passphrase"])
    assert plain.exit_code == 0 and plain.stdout.strip() == (tmp_path / "open.pub").read_text().strip()
    identity = (tmp_path / "open.key").read_text()
    assert identity.startswith("AGE-SECRET-KEY-") and len(encryption.load_identities(tmp_path / "open.key")) == 1


def test_wrong_passphrase_exits_4(cli: Callable[..., Any], tmp_path: Path) -> None:
    """A command that loads a protected signing key: wrong passphrase -> exit 4, nothing written."""
    assert cli(["keygen", "--out", tmp_path / "c"], env={"QSAFE_PASSPHRASE": "right"}).exit_code == 0
    for name in ("update.safetensors", "public.ctx"):
        (tmp_path / name).write_bytes(b"never read: the key is loaded first")
    args = ["fl", "encrypt", tmp_path / "update.safetensors", "--context", tmp_path / "public.ctx",
            "--key", tmp_path / "c.key", "--round", "1", "-o", tmp_path / "out.qfl"]
    wrong = cli(args, env={"QSAFE_PASSPHRASE": "wrong"})
    assert wrong.exit_code == 4 and wrong.stdout == ""
    assert "qsafe: error: " in wrong.stderr and "wrong passphrase" in wrong.stderr
    assert "qsafe: hint: check the passphrase" in wrong.stderr
    assert not (tmp_path / "out.qfl").exists()
