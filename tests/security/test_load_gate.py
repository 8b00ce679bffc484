"""Item 1: the load gate covers every signed file (config, tokenizer, ...), in one pass, exactly as verify does;
verified bytes are returned (LoadedModel.files) or written into a fresh private directory (0700)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from qsafe.errors import ModelMismatchError, OutputExistsError
from qsafe.loading import load_model

from .conftest import leftovers, snapshot

SKIP = ["--unsafe-skip-attestation", "--framework", "numpy"]


def _load(cli, ws: Path, *extra: object):
    return cli(["load", ws / "model", "--key", ws / "signer.pub", *SKIP, *extra])


def _verify(cli, ws: Path):
    return cli(["verify", ws / "model", "--key", ws / "signer.pub"])


def _detail(stderr: str) -> list[str]:
    """The changed/missing/extra lines of a mismatch (the same in load and verify)."""
    lines = [line.removeprefix("qsafe: error: ") for line in stderr.splitlines()]
    return [line for line in lines if line.startswith(("changed:", "missing:", "extra:"))]


@pytest.mark.parametrize("tamper", ["config", "tokenizer", "nested", "missing", "extra", "dir-in-place"])
def test_load_refuses_any_change_exactly_as_verify(cli, ws: Path, tamper: str) -> None:
    model = ws / "model"
    if tamper == "config":
        (model / "config.json").write_text(json.dumps({"hidden_size": 8, "vocab_size": 33}) + "\n")
        want = ["changed: config.json"]
    elif tamper == "tokenizer":
        (model / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"a": 1, "b": 0}}}) + "\n")
        want = ["changed: tokenizer.json"]
    elif tamper == "nested":
        (model / "extra" / "vocab.txt").write_text("b\na\n")
        want = ["changed: extra/vocab.txt"]
    elif tamper == "missing":
        (model / "tokenizer.json").unlink()
        want = ["missing: tokenizer.json"]
    elif tamper == "extra":
        (model / "added_tokens.json").write_text("{}")
        want = ["extra: added_tokens.json"]
    else:  # a directory where a signed file was: the file is missing, what the folder holds is extra
        (model / "config.json").unlink()
        (model / "config.json").mkdir()
        (model / "config.json" / "x").write_text("{}")
        want = ["missing: config.json", "extra: config.json/x"]
    before = snapshot(ws)
    verified = _verify(cli, ws)
    loaded = _load(cli, ws, "--json")
    assert (verified.exit_code, loaded.exit_code) == (12, 12), loaded.stderr
    assert _detail(loaded.stderr) == _detail(verified.stderr) == want
    error = json.loads(loaded.stdout)  # --json: the error object, the same as verify's (without "verified")
    assert (error["error"], error["exit_code"]) == ("ModelMismatchError", 12)
    assert [f"changed: {f}" for f in error["changed"]] + [f"missing: {f}" for f in error["missing"]] \
        + [f"extra: {f}" for f in error["extra"]] == want
    assert snapshot(ws) == before and not leftovers(ws)


def test_loaded_model_returns_verified_bytes_of_every_file(ws: Path) -> None:
    model = ws / "model"
    loaded = load_model(model, model / "model.sig", ws / "signer.pub", None, unsafe_skip_attestation=True,
                        framework="numpy")
    assert loaded.tensor_files == ["model.safetensors"]
    assert loaded.verified_files == ["config.json", "extra/vocab.txt", "model.safetensors", "tokenizer.json"]
    assert loaded.files == {name: (model / name).read_bytes()
                            for name in ("config.json", "extra/vocab.txt", "tokenizer.json")}
    reference = load_file(str(model / "model.safetensors"))
    assert {k: v.tolist() for k, v in loaded.tensors.items()} == {k: v.tolist() for k, v in reference.items()}
    assert loaded.directory is None


def test_verified_dir_is_private_and_holds_exactly_the_verified_files(ws: Path) -> None:
    model = ws / "model"
    target = ws / "verified"
    loaded = load_model(model, model / "model.sig", ws / "signer.pub", None, unsafe_skip_attestation=True,
                        framework="numpy", verified_dir=target)
    assert loaded.directory == target
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "extra").stat().st_mode) == 0o700
    copies = snapshot(target)
    assert copies == {k: v for k, v in snapshot(model).items() if k != "model.sig"}
    assert all(stat.S_IMODE((target / name).stat().st_mode) == 0o600 for name in copies)
    # the copy is what was verified: changing the original afterwards changes nothing there
    (model / "config.json").write_text("{}")
    assert snapshot(target) == copies
    loaded.remove_directory()
    assert not target.exists() and loaded.directory is None


def test_verified_temp_dir_and_no_leftover_on_refusal(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = ws / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    model = ws / "model"
    loaded = load_model(model, model / "model.sig", ws / "signer.pub", None, unsafe_skip_attestation=True,
                        framework="numpy", verified_dir=True)
    assert loaded.directory is not None and loaded.directory.parent == tmp
    assert stat.S_IMODE(loaded.directory.stat().st_mode) == 0o700
    loaded.remove_directory()
    (model / "tokenizer.json").write_text("{}")
    for where in (True, ws / "verified"):
        with pytest.raises(ModelMismatchError):
            load_model(model, model / "model.sig", ws / "signer.pub", None, unsafe_skip_attestation=True,
                       framework="numpy", verified_dir=where)
    assert list(tmp.iterdir()) == [] and not (ws / "verified").exists()


def test_cli_verified_dir(cli, ws: Path) -> None:
    r = _load(cli, ws, "--verified-dir", ws / "copy", "--json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["verifiedDir"] == str(ws / "copy") and summary["tensorFiles"] == ["model.safetensors"]
    assert summary["files"] == ["config.json", "extra/vocab.txt", "model.safetensors", "tokenizer.json"]
    assert (ws / "copy" / "tokenizer.json").read_bytes() == (ws / "model" / "tokenizer.json").read_bytes()
    before = snapshot(ws)
    for where in (ws / "copy", ws / "model" / "copy", ws / "model" / "extra"):
        r = _load(cli, ws, "--verified-dir", where)
        assert r.exit_code == 2 and "--verified-dir" in r.stderr
    assert snapshot(ws) == before and not (ws / "model" / "copy").exists()
    assert _verify(cli, ws).exit_code == 0


def test_verified_dir_inside_the_model_is_refused_by_the_library(ws: Path) -> None:
    model = ws / "model"
    with pytest.raises(OutputExistsError):
        load_model(model, model / "model.sig", ws / "signer.pub", None, unsafe_skip_attestation=True,
                   framework="numpy", verified_dir=model / "copy")
    assert not (model / "copy").exists()


def test_files_subset_still_verifies_every_file(ws: Path) -> None:
    model = ws / "model"
    (model / "config.json").write_text("{}")
    with pytest.raises(ModelMismatchError) as info:
        load_model(model, model / "model.sig", ws / "signer.pub", None, unsafe_skip_attestation=True,
                   framework="numpy", files=["model.safetensors"])
    assert info.value.changed == ["config.json"]


def test_two_shards_one_selected_other_changed(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    from qsafe import keys
    from qsafe.signing import sign

    model = tmp_path / "m"
    model.mkdir()
    save_file({"a": np.ones(8, np.float32)}, str(model / "a.safetensors"))
    save_file({"b": np.zeros(8, np.float32)}, str(model / "b.safetensors"))
    key = keys.generate("ml-dsa-44")
    sign(model, key)
    loaded = load_model(model, model / "model.sig", key.public_key(), None, unsafe_skip_attestation=True,
                        framework="numpy", files=["a.safetensors"])
    assert set(loaded.tensors) == {"a"} and loaded.verified_files == ["a.safetensors", "b.safetensors"]
    data = bytearray((model / "b.safetensors").read_bytes())
    data[-1] ^= 1
    (model / "b.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelMismatchError) as info:
        load_model(model, model / "model.sig", key.public_key(), None, unsafe_skip_attestation=True,
                   framework="numpy", files=["a.safetensors"])
    assert info.value.changed == ["b.safetensors"]


def test_shards_method_covers_non_tensor_files(tmp_path: Path) -> None:
    from qsafe import keys
    from qsafe.hashing import HashingConfig
    from qsafe.signing import sign

    from .conftest import make_model

    model = make_model(tmp_path / "m")
    (model / "big.bin").write_bytes(os.urandom(3000))
    key = keys.generate("ml-dsa-44")
    sign(model, key, config=HashingConfig(method="shards", shard_size=1024))
    loaded = load_model(model, model / "model.sig", key.public_key(), None, unsafe_skip_attestation=True,
                        framework="numpy")
    assert loaded.files["big.bin"] == (model / "big.bin").read_bytes()
    data = bytearray((model / "big.bin").read_bytes())
    data[2500] ^= 1
    (model / "big.bin").write_bytes(bytes(data))
    with pytest.raises(ModelMismatchError) as info:
        load_model(model, model / "model.sig", key.public_key(), None, unsafe_skip_attestation=True,
                   framework="numpy")
    assert info.value.changed == ["big.bin"]


def test_large_non_tensor_files_are_streamed_not_kept(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qsafe import _limits

    monkeypatch.setattr(_limits, "LOAD_KEEP_MAX_BYTES", 20)
    model = ws / "model"
    loaded = load_model(model, model / "model.sig", ws / "signer.pub", None, unsafe_skip_attestation=True,
                        framework="numpy", verified_dir=ws / "copy")
    assert set(loaded.files) == {"extra/vocab.txt"}  # config.json and tokenizer.json are larger than 20 bytes
    assert (ws / "copy" / "tokenizer.json").read_bytes() == (model / "tokenizer.json").read_bytes()
    (model / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"a": 1, "b": 0}}}) + "\n")
    with pytest.raises(ModelMismatchError) as info:
        load_model(model, model / "model.sig", ws / "signer.pub", None, unsafe_skip_attestation=True,
                   framework="numpy", verified_dir=ws / "copy2")
    assert info.value.changed == ["tokenizer.json"] and not (ws / "copy2").exists()


def test_result_inside_the_model_is_refused(cli, ws: Path) -> None:
    from .conftest import AT, HOPPER, HOPPER_NONCE, HOPPER_POLICY

    before = snapshot(ws)
    r = cli(["load", ws / "model", "--key", ws / "signer.pub", "--policy", HOPPER_POLICY, "--evidence", HOPPER,
             "--nonce", HOPPER_NONCE, "--at", AT, "--framework", "numpy",
             "--result", ws / "model" / "result.json", "--result-key", ws / "signer.key"])
    assert r.exit_code == 2 and "is a file of the model" in r.stderr
    assert snapshot(ws) == before and not (ws / "model" / "result.json").exists()
    assert _verify(cli, ws).exit_code == 0
