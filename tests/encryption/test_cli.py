"""CLI transcripts for `qsafe encrypt` / `qsafe decrypt`: exit codes, stderr, nothing left behind."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from qsafe._age import encrypt_with_passphrase
from qsafe.encryption import generate_identity, identity_file_text

PLAIN = os.urandom(3 * 65536 + 123)


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    out = {}
    for alg in ("ml-kem-768-x25519", "x25519"):
        identity, recipient = generate_identity(alg)
        path = tmp_path / f"{alg}.key"
        path.write_text(identity_file_text(identity, recipient))
        out[alg] = (path, recipient)
    return out


def test_pq_round_trip_silent(cli: Callable, tmp_path: Path, keys: dict) -> None:
    key, rcpt = keys["ml-kem-768-x25519"]
    (tmp_path / "p").write_bytes(PLAIN)
    enc = cli(["encrypt", "-r", rcpt, "-o", tmp_path / "c.age", tmp_path / "p"])
    assert (enc.exit_code, enc.stderr, enc.stdout) == (0, "", "")
    assert (tmp_path / "c.age").read_bytes().startswith(b"age-encryption.org/v1\n-> mlkem768x25519 ")
    dec = cli(["decrypt", "-i", key, "-o", tmp_path / "back", tmp_path / "c.age"])
    assert (dec.exit_code, dec.stderr) == (0, "")
    assert (tmp_path / "back").read_bytes() == PLAIN


def test_stdin_stdout_armor(cli: Callable, keys: dict) -> None:
    key, rcpt = keys["x25519"]
    enc = cli(["encrypt", "-a", "-r", rcpt], input=PLAIN)
    assert enc.exit_code == 0 and enc.stdout.startswith("-----BEGIN AGE ENCRYPTED FILE-----\n")
    dec = cli(["decrypt", "-i", key, "-"], input=enc.stdout_bytes)
    assert dec.exit_code == 0 and dec.stdout_bytes == PLAIN and dec.stderr == ""


def test_wrong_identity_exit_13(cli: Callable, tmp_path: Path, keys: dict) -> None:
    (tmp_path / "p").write_bytes(PLAIN)
    cli(["encrypt", "-r", keys["ml-kem-768-x25519"][1], "-o", tmp_path / "c.age", tmp_path / "p"])
    res = cli(["decrypt", "-i", keys["x25519"][0], "-o", tmp_path / "out", tmp_path / "c.age"])
    assert res.exit_code == 13
    assert res.stderr.startswith("qsafe: error: no identity matched") and "qsafe: hint:" in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("offset", [-1, -70000, 20, "mac"])
def test_tampered_exit_14_and_no_output(cli: Callable, tmp_path: Path, keys: dict, offset: int | str) -> None:
    key, rcpt = keys["ml-kem-768-x25519"]
    (tmp_path / "p").write_bytes(PLAIN)
    cli(["encrypt", "-r", rcpt, "-o", tmp_path / "c.age", tmp_path / "p"])
    data = bytearray((tmp_path / "c.age").read_bytes())
    pos = data.index(b"\n--- ") + 5 if offset == "mac" else int(offset)
    if offset == 20:  # inside the stanza's enc: a different ciphertext is simply not ours (no match)
        pos = data.index(b"mlkem768x25519 ") + 40
    if offset in ("mac", 20):  # stay inside the base64 alphabet: a different value, not a malformed line
        data[pos] = ord("B") if data[pos] == ord("A") else ord("A")
    else:
        data[pos] ^= 0x01
    (tmp_path / "c.age").write_bytes(bytes(data))
    res = cli(["decrypt", "-i", key, "-o", tmp_path / "out", tmp_path / "c.age"])
    assert res.exit_code == (13 if offset == 20 else 14), res.stderr
    assert res.stderr.startswith("qsafe: error: ")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("*.qsafe-tmp"))


def test_truncated_exit_14(cli: Callable, tmp_path: Path, keys: dict) -> None:
    key, rcpt = keys["x25519"]
    enc = cli(["encrypt", "-r", rcpt], input=PLAIN)
    res = cli(["decrypt", "-i", key, "-o", tmp_path / "out"], input=enc.stdout_bytes[:-65536])
    assert res.exit_code == 14 and not (tmp_path / "out").exists()


def test_not_age_exit_3(cli: Callable, tmp_path: Path, keys: dict) -> None:
    (tmp_path / "x").write_bytes(b"hello world\n")
    res = cli(["decrypt", "-i", keys["x25519"][0], "-o", tmp_path / "out", tmp_path / "x"])
    assert res.exit_code == 3 and "not an age file" in res.stderr


def test_mixed_recipients_and_passphrase_with_recipient_exit_2(cli: Callable, keys: dict) -> None:
    res = cli(["encrypt", "-r", keys["x25519"][1], "-r", keys["ml-kem-768-x25519"][1], "-o", "-"], input=b"x")
    assert res.exit_code == 2 and "cannot be mixed" in res.stderr
    res = cli(["encrypt", "-p", "-r", keys["x25519"][1]], input=b"x", env={"QSAFE_PASSPHRASE": "pw"})
    assert res.exit_code == 2


def test_never_overwrites_input(cli: Callable, tmp_path: Path, keys: dict) -> None:
    (tmp_path / "p").write_bytes(PLAIN)
    res = cli(["encrypt", "-r", keys["x25519"][1], "-o", tmp_path / "p", tmp_path / "p"])
    assert res.exit_code == 2 and (tmp_path / "p").read_bytes() == PLAIN


def test_passphrase_file_round_trip_and_wrong(cli: Callable, tmp_path: Path) -> None:
    env = {"QSAFE_PASSPHRASE": "hunter2"}
    enc = cli(["encrypt", "-p", "--work-factor", "10"], input=PLAIN, env=env)
    assert enc.exit_code == 0 and enc.stderr == ""
    assert cli(["decrypt"], input=enc.stdout_bytes, env=env).stdout_bytes == PLAIN
    bad = cli(["decrypt", "-o", tmp_path / "o"], input=enc.stdout_bytes, env={"QSAFE_PASSPHRASE": "nope"})
    assert bad.exit_code == 4 and not (tmp_path / "o").exists()


def test_protected_identity_file(cli: Callable, tmp_path: Path) -> None:
    identity, recipient = generate_identity()
    key = tmp_path / "me.key"
    key.write_bytes(encrypt_with_passphrase(identity_file_text(identity, recipient).encode(), b"kp", work_factor=10))
    enc = cli(["encrypt", "-r", recipient], input=PLAIN)
    res = cli(["decrypt", "-i", key], input=enc.stdout_bytes, env={"QSAFE_PASSPHRASE": "kp"})
    assert res.exit_code == 0 and res.stdout_bytes == PLAIN


def test_directory_mode(cli: Callable, tmp_path: Path, keys: dict) -> None:
    key, rcpt = keys["ml-kem-768-x25519"]
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "sub" / "weights.bin").write_bytes(PLAIN)
    assert cli(["encrypt", "-r", rcpt, "-o", tmp_path / "m.age", model]).exit_code == 0
    res = cli(["decrypt", "-i", key, "--extract", tmp_path / "out", tmp_path / "m.age"])
    assert (res.exit_code, res.stderr) == (0, "")
    assert (tmp_path / "out" / "sub" / "weights.bin").read_bytes() == PLAIN
    assert (tmp_path / "out" / "config.json").read_text() == "{}"
    again = cli(["decrypt", "-i", key, "--extract", tmp_path / "out", tmp_path / "m.age"])
    assert again.exit_code == 2  # the folder exists and is not empty: never merged into


def test_no_identity_for_recipient_file_asks_for_no_passphrase(cli: Callable, keys: dict) -> None:
    enc = cli(["encrypt", "-r", keys["x25519"][1]], input=b"data")
    res = cli(["decrypt"], input=enc.stdout_bytes)  # no -i, no passphrase source, no terminal
    assert res.exit_code == 13 and "pass -i IDENTITY_FILE" in res.stderr


def test_passphrase_file_needed_but_missing_exit_2(cli: Callable) -> None:
    enc = cli(["encrypt", "-p", "--work-factor", "10"], input=b"data", env={"QSAFE_PASSPHRASE": "pw"})
    res = cli(["decrypt"], input=enc.stdout_bytes, env={"QSAFE_PASSPHRASE": ""})
    assert res.exit_code == 2 and "passphrase" in res.stderr


def test_tampered_to_stdout_says_to_discard(cli: Callable, keys: dict) -> None:
    key, rcpt = keys["x25519"]
    enc = cli(["encrypt", "-r", rcpt], input=PLAIN)
    data = bytearray(enc.stdout_bytes)
    data[-10] ^= 1
    res = cli(["decrypt", "-i", key], input=bytes(data))
    assert res.exit_code == 14 and "discarded" in res.stderr
    assert PLAIN.startswith(res.stdout_bytes) and len(res.stdout_bytes) < len(PLAIN)


def test_output_errors_are_clean(cli: Callable, tmp_path: Path, keys: dict) -> None:
    (tmp_path / "p").write_bytes(b"x")
    (tmp_path / "d").mkdir()
    for out in (tmp_path / "d", tmp_path / "missing" / "x.age"):
        res = cli(["encrypt", "-r", keys["x25519"][1], "-o", out, tmp_path / "p"])
        assert res.exit_code == 2 and res.stderr.startswith("qsafe: error: ")
    bad = cli(["encrypt", "-r", "age1notarecipient", "-o", tmp_path / "o", tmp_path / "p"])
    assert bad.exit_code == 4 and "invalid age recipient age1notarecipien" in bad.stderr
