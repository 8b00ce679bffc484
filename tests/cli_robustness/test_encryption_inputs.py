"""`qsafe encrypt` / `qsafe decrypt`: the output never replaces an identity or recipients file of the same call."""

from __future__ import annotations

from pathlib import Path

from tests.cli_robustness.conftest import digests, leftovers


def _identity(cli, ws: Path) -> str:
    r = cli(["keygen", "--alg", "x25519", "--out", "enc", "--no-passphrase"])
    assert r.exit_code == 0, r.stderr
    (ws / "plain.txt").write_bytes(b"model weights")
    return (ws / "enc.pub").read_text().strip()


def test_decrypt_output_over_its_identity_file(cli, ws: Path) -> None:
    recipient = _identity(cli, ws)
    assert cli(["encrypt", "-r", recipient, "-o", "f.age", "plain.txt"]).exit_code == 0
    before = digests(ws)
    r = cli(["decrypt", "-i", "enc.key", "-o", "enc.key", "f.age"])
    assert r.exit_code == 2
    assert "qsafe: error: output enc.key is the input enc.key; qsafe never overwrites its input" in r.stderr
    assert digests(ws) == before and not leftovers(ws)


def test_encrypt_output_over_its_recipients_file(cli, ws: Path) -> None:
    _identity(cli, ws)
    before = digests(ws)
    r = cli(["encrypt", "-R", "enc.pub", "-o", "enc.pub", "plain.txt"])
    assert r.exit_code == 2
    assert "qsafe: error: output enc.pub is the input enc.pub; qsafe never overwrites its input" in r.stderr
    assert digests(ws) == before and not leftovers(ws)


def test_encrypt_directory_output_over_its_recipients_file(cli, ws: Path) -> None:
    _identity(cli, ws)
    before = digests(ws)
    r = cli(["encrypt", "-R", "enc.pub", "-o", "enc.pub", "model"])
    assert r.exit_code == 2
    assert "is the input enc.pub" in r.stderr
    assert digests(ws) == before


def test_unreadable_input_is_a_clear_error_not_an_internal_one(cli, ws: Path) -> None:
    recipient = _identity(cli, ws)
    r = cli(["encrypt", "-r", recipient, "-o", "out.age", "/proc/self/mem"])
    assert r.exit_code == 3
    assert "qsafe: error: I/O error while encrypting" in r.stderr
    assert "internal error" not in r.stderr
    assert not (ws / "out.age").exists() and not leftovers(ws)


def test_signing_public_key_as_recipients_file_is_named(cli, ws: Path) -> None:
    _identity(cli, ws)
    r = cli(["encrypt", "-R", "signer.pub", "-o", "out.age", "plain.txt"])
    assert r.exit_code == 4
    assert "qsafe: error: a PEM key is not an age recipient" in r.stderr
    assert not (ws / "out.age").exists()
