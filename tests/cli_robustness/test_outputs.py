"""Bad output paths: refused before any work with exit 2, no partial file, every input byte-for-byte unchanged."""

from __future__ import annotations

from pathlib import Path

from tests.cli_robustness.conftest import AT, EVIDENCE, HOPPER_POLICY, RECORDED_NONCE, digests, leftovers

VERIFY = ["attest", "verify", str(EVIDENCE), "--policy", str(HOPPER_POLICY), "--nonce", RECORDED_NONCE, "--at", AT]


def test_sign_into_missing_folder(cli, ws: Path) -> None:
    before = digests(ws)
    r = cli(["sign", "model", "--key", "signer.key", "--signature", "no/such/dir/model.sig"])
    assert r.exit_code == 2
    assert "qsafe: error: cannot write no/such/dir/model.sig: the folder no/such/dir does not exist" in r.stderr
    assert "qsafe: hint: create the folder first" in r.stderr
    assert "Traceback" not in r.stderr and digests(ws) == before and not leftovers(ws)


def test_keygen_into_missing_folder_fails_before_the_passphrase(cli, ws: Path) -> None:
    # No passphrase source is given: the folder check must come first, or the user is asked for nothing.
    r = cli(["keygen", "--out", "nodir/release"])
    assert r.exit_code == 2
    assert "qsafe: error: cannot write nodir/release.pub: the folder nodir does not exist" in r.stderr
    assert not (ws / "nodir").exists()


def test_keygen_prefix_whose_key_path_is_a_directory(cli, ws: Path) -> None:
    (ws / "k.key").mkdir()
    r = cli(["keygen", "--out", "k", "--no-passphrase", "--force"])
    assert r.exit_code == 2
    assert "qsafe: error: output k.key is a directory" in r.stderr
    assert not (ws / "k.pub").exists()  # no half-written pair


def test_attest_verify_result_over_its_signing_key(cli, ws: Path) -> None:
    before = digests(ws)
    r = cli([*VERIFY, "-o", "signer.key", "--key", "signer.key"])
    assert r.exit_code == 2
    assert "qsafe: error: output signer.key is the input signer.key; qsafe never overwrites its input" in r.stderr
    assert digests(ws) == before


def test_attest_verify_result_into_missing_folder(cli, ws: Path) -> None:
    r = cli([*VERIFY, "-o", "out/result.json", "--key", "signer.key"])
    assert r.exit_code == 2
    assert "qsafe: error: cannot write out/result.json: the folder out does not exist" in r.stderr
    assert not leftovers(ws)


def test_attest_collect_over_its_policy(cli, ws: Path) -> None:
    policy = ws / "policy.json"
    policy.write_bytes(HOPPER_POLICY.read_bytes())
    r = cli(["attest", "collect", "-c", "software", "--policy", "policy.json", "--model-digest", "sha256:" + "0" * 64,
             "-o", "policy.json"])
    assert r.exit_code == 2
    assert "is the input policy.json" in r.stderr
    assert policy.read_bytes() == HOPPER_POLICY.read_bytes()


def _load(*extra: str) -> list[str]:
    return ["load", "model", "--key", "signer.pub", "--policy", str(HOPPER_POLICY), "--evidence", str(EVIDENCE),
            "--nonce", RECORDED_NONCE, "--at", AT, "--framework", "numpy", "--result-key", "signer.key", *extra]


def test_load_result_over_the_signature_or_a_model_file(cli, ws: Path) -> None:
    before = digests(ws)
    r = cli(_load("--result", "model/model.sig"))
    assert r.exit_code == 2
    assert "qsafe: error: output model/model.sig is the input model/model.sig" in r.stderr
    r = cli(_load("--result", "model/model.safetensors"))
    assert r.exit_code == 2
    assert "qsafe: error: --result model/model.safetensors is a file of the model model" in r.stderr
    assert digests(ws) == before and not leftovers(ws)


def test_load_result_into_missing_folder(cli, ws: Path) -> None:
    r = cli(_load("--result", "nodir/result.json"))
    assert r.exit_code == 2
    assert "qsafe: error: cannot write nodir/result.json: the folder nodir does not exist" in r.stderr


def test_output_that_is_a_directory_is_a_qsafe_usage_error(cli, ws: Path) -> None:
    # click validates the path; the message still comes in qsafe's error/hint form, never click's bare "Error:".
    r = cli([*VERIFY, "-o", "dir", "--key", "signer.key"])
    assert r.exit_code == 2
    assert "qsafe: error: Invalid value for '-o' / '--output': File 'dir' is a directory." in r.stderr
    assert "qsafe: hint: run `main attest verify --help`" in r.stderr
    assert "Usage:" not in r.stderr


def test_keygen_empty_prefix_writes_no_hidden_files(cli, ws: Path) -> None:
    r = cli(["keygen", "--out", "", "--no-passphrase"])
    assert r.exit_code == 2
    assert "qsafe: error: the output prefix '.' names no file" in r.stderr  # Path('') is '.'
    assert not (ws / ".pub").exists() and not (ws / ".key").exists()


def test_fl_init_contradictory_passphrase_options(cli, ws: Path) -> None:
    r = cli(["fl", "init", "--out", "ka", "--no-passphrase", "--passphrase-file", "pw.txt"])
    assert r.exit_code == 2
    assert "qsafe: error: --no-passphrase and --passphrase-file contradict each other" in r.stderr
    assert not (ws / "ka").exists()
