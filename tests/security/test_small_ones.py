"""Item 10 (the smaller ones): signing a file beside a signed folder never silently replaces the folder's
model.sig; fl simulate checks its outputs before minutes of work. (The forged HE context and the pinned context
fingerprint are in test_federated_inputs.py; --result inside the model in test_load_gate.py.)"""

from __future__ import annotations

import time
from pathlib import Path

from .conftest import leftovers, snapshot


def test_sign_file_beside_a_signed_folder_keeps_the_folders_signature(cli, ws: Path) -> None:
    model = ws / "model"
    before = snapshot(ws)
    r = cli(["sign", model / "model.safetensors", "--key", ws / "signer.key"])
    assert r.exit_code == 2 and "most likely the signature of the folder" in r.stderr, r.stderr
    assert "--signature" in r.stderr and "--force" in r.stderr
    assert snapshot(ws) == before and not leftovers(ws)
    assert cli(["verify", model, "--key", ws / "signer.pub"]).exit_code == 0
    # naming the file's own signature works, and re-signing that single file replaces its own bundle
    own = ws / "weights.sig"
    assert cli(["sign", model / "model.safetensors", "--key", ws / "signer.key", "--signature", own]).exit_code == 0
    assert cli(["verify", model / "model.safetensors", "--key", ws / "signer.pub", "--signature", own]).exit_code == 0
    # --force replaces it (the user said so); the folder then no longer verifies with it
    r = cli(["sign", model / "model.safetensors", "--key", ws / "signer.key", "--force"])
    assert r.exit_code == 0, r.stderr
    assert cli(["verify", model / "model.safetensors", "--key", ws / "signer.pub"]).exit_code == 0


def test_resigning_a_single_file_model_replaces_its_own_signature(cli, tmp_path: Path, ws: Path) -> None:
    single = tmp_path / "single"
    single.mkdir()
    (single / "w.safetensors").write_bytes((ws / "model" / "model.safetensors").read_bytes())
    for _ in range(2):
        r = cli(["sign", single / "w.safetensors", "--key", ws / "signer.key"])
        assert r.exit_code == 0, r.stderr
    assert cli(["verify", single / "w.safetensors", "--key", ws / "signer.pub"]).exit_code == 0
    # another file in the same folder would replace w's signature: refused
    (single / "v.safetensors").write_bytes((single / "w.safetensors").read_bytes())
    r = cli(["sign", single / "v.safetensors", "--key", ws / "signer.key"])
    assert r.exit_code == 2 and "not the signature of v.safetensors" in r.stderr


def test_fl_simulate_checks_outputs_before_the_work(cli, tmp_path: Path) -> None:
    for option, path in (("--results", tmp_path / "missing" / "r.json"), ("--plot", tmp_path / "missing" / "r.png"),
                         ("--audit-log", tmp_path / "missing" / "audit.jsonl"), ("--results", tmp_path),
                         ("--json", tmp_path / "missing" / "old.json")):  # the deprecated spelling of --results
        start = time.perf_counter()
        r = cli(["fl", "simulate", "--rounds", 1000, "--no-reference", option, path])
        assert r.exit_code == 2, (option, r.stderr)
        assert time.perf_counter() - start < 20  # refused at once: 1,000 rounds would take many minutes
        assert "simulating" not in r.stderr and r.stdout == ""
    r = cli(["fl", "simulate", "--rounds", 1000, "--results", tmp_path / "x", "--plot", tmp_path / "x"])
    assert r.exit_code == 2 and "the same file" in r.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "missing").exists()
