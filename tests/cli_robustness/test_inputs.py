"""Bad inputs: wrong kind of key, undecodable bytes, bad times and paths give one clear error and exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_robustness.conftest import EVIDENCE, HOPPER_POLICY, RECORDED_NONCE, digests

VERIFY = ["attest", "verify", str(EVIDENCE), "--policy", str(HOPPER_POLICY), "--nonce", RECORDED_NONCE]


def test_non_utf8_passphrase_file(cli, ws: Path) -> None:
    r = cli(["keygen", "--out", "new", "--passphrase-file", "latin1.txt"])
    assert r.exit_code == 2
    assert "qsafe: error: passphrase file latin1.txt is not UTF-8 text" in r.stderr
    assert "qsafe: hint: write the passphrase as UTF-8 text" in r.stderr
    assert not list(ws.glob("new.*"))


def test_wrong_passphrase_signs_nothing(cli, ws: Path) -> None:
    (ws / "bad.txt").write_text("wrong\n")
    r = cli(["sign", "model", "--key", "locked.key", "--signature", "out.sig", "--passphrase-file", "bad.txt"])
    assert r.exit_code == 4 and "qsafe: error: locked.key: wrong passphrase" in r.stderr
    assert not (ws / "out.sig").exists()


def test_encryption_identity_as_signing_key(cli, ws: Path) -> None:
    from qsafe.encryption import generate_identity

    identity, recipient = generate_identity("x25519")
    (ws / "enc.key").write_text(identity + "\n")
    (ws / "enc.pub").write_text(recipient + "\n")
    r = cli(["sign", "model", "--key", "enc.key", "--signature", "out.sig"])
    assert r.exit_code == 4
    assert "qsafe: hint: this is an encryption identity (age), not a signing key" in r.stderr
    r = cli(["verify", "model", "--key", "enc.pub"])
    assert r.exit_code == 4
    assert "qsafe: hint: this is an encryption recipient (age), not a signing public key" in r.stderr


def test_protected_private_key_as_public_key(cli, ws: Path) -> None:
    r = cli(["verify", "model", "--key", "locked.key"])
    assert r.exit_code == 4
    assert "qsafe: hint: this is a passphrase-protected private key: pass the .pub file" in r.stderr


def test_ignore_path_outside_the_model_is_a_usage_error(cli, ws: Path) -> None:
    r = cli(["sign", "model", "--key", "signer.key", "--signature", "out.sig", "--ignore-path", "../secrets"])
    assert r.exit_code == 2
    assert "qsafe: error: ignore path '../secrets' has an empty, '.' or '..' component" in r.stderr
    assert "qsafe: hint: an ignore path is relative to the model root" in r.stderr


def test_bad_time_option_is_a_usage_error(cli, ws: Path) -> None:
    r = cli([*VERIFY, "--at", "yesterday"])
    assert r.exit_code == 2
    assert "qsafe: error: --at: not an ISO-8601 time: 'yesterday'" in r.stderr
    assert "qsafe: hint: give an ISO-8601 time, e.g. 2024-05-01T00:01:00Z" in r.stderr
    r = cli(["load", "model", "--key", "signer.pub", "--policy", str(HOPPER_POLICY), "--evidence", str(EVIDENCE),
             "--at", "99999-01-01", "--framework", "numpy"])
    assert r.exit_code == 2 and "qsafe: error: --at: not an ISO-8601 time" in r.stderr


def test_tdx_collateral_that_is_not_json(cli, ws: Path) -> None:
    r = cli(["attest", "collect", "-c", "software", "--tdx-collateral", "garbage.json"])
    assert r.exit_code == 3
    assert "qsafe: error: --tdx-collateral garbage.json is not JSON" in r.stderr


def test_tsm_root_that_is_a_plain_folder_is_left_as_it_was(cli, ws: Path) -> None:
    r = cli(["attest", "collect", "-c", "tsm", "--tsm-root", "dir"])
    assert r.exit_code == 6
    assert "qsafe: error: dir is not a configfs-tsm report directory" in r.stderr
    assert list((ws / "dir").iterdir()) == []


def test_skip_attestation_with_a_policy_is_contradictory(cli, ws: Path) -> None:
    r = cli(["load", "model", "--key", "signer.pub", "--framework", "numpy", "--unsafe-skip-attestation",
             "--policy", str(HOPPER_POLICY)])
    assert r.exit_code == 2
    assert "cannot be combined with --policy" in r.stderr
    assert "WARNING" not in r.stderr  # nothing was verified: no "the signature was verified" warning


def test_skip_attestation_warns_only_after_the_signature_verified(cli, ws: Path) -> None:
    r = cli(["load", "model", "--key", "locked.pub", "--framework", "numpy", "--unsafe-skip-attestation"])
    assert r.exit_code == 10
    assert "WARNING" not in r.stderr


def test_fl_encrypt_with_the_protected_secret_context(cli, ws: Path) -> None:
    r = cli(["fl", "init", "--out", "ka", "--passphrase-file", "pw.txt"])
    assert r.exit_code == 0, r.stderr
    before = digests(ws)
    (ws / "update.safetensors").write_bytes((ws / "model" / "model.safetensors").read_bytes())
    r = cli(["fl", "encrypt", "update.safetensors", "--context", "ka/secret.ctx", "--key", "signer.key",
             "--round", "1", "-o", "u.qfl"])  # no passphrase given: it must not be asked for
    assert r.exit_code == 4
    assert "qsafe: error: ka/secret.ctx is a (protected) secret context; clients get the public one" in r.stderr
    assert not (ws / "u.qfl").exists()
    assert {k: v for k, v in digests(ws).items() if k != "update.safetensors"} == before


def test_model_passed_as_key_is_not_read_whole(cli, ws: Path) -> None:
    with open(ws / "huge.safetensors", "wb") as handle:
        handle.truncate((16 << 20) + 1)  # sparse: one byte over the cap
    for args in (["verify", "model", "--key", "huge.safetensors"],
                 ["sign", "model", "--key", "huge.safetensors", "--signature", "out.sig"]):
        r = cli(args)
        assert r.exit_code == 4
        assert "qsafe: error: huge.safetensors is larger than 16 MiB: not a key file" in r.stderr


# Root ignores chmod 000; /proc/self/mem exists but reading it from offset 0 fails with EIO, as an unreadable file.
UNREADABLE = "/proc/self/mem"


@pytest.mark.skipif(not Path(UNREADABLE).exists(), reason="needs Linux /proc")
def test_unreadable_inputs_are_named_not_internal_errors(cli, ws: Path) -> None:
    r = cli(["attest", "check-result", UNREADABLE, "--key", "signer.pub"])
    assert r.exit_code == 3
    assert f"qsafe: error: cannot read result {UNREADABLE}: Input/output error" in r.stderr
    r = cli(["fl", "decrypt", "pw.txt", "--secret", UNREADABLE, "-o", "avg.safetensors"])
    assert r.exit_code == 3
    assert f"qsafe: error: cannot read secret context {UNREADABLE}: Input/output error" in r.stderr
    r = cli(["attest", "collect", "-c", "software", "--tdx-collateral", UNREADABLE])
    assert r.exit_code == 3 and "internal error" not in r.stderr
    assert not (ws / "avg.safetensors").exists()
