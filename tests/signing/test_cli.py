"""CLI transcripts for `qsafe sign`, `qsafe verify` and `qsafe inspect`: exit codes, stdout, stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from qsafe import keys

from .helpers import write_keypair

Cli = Callable[..., "object"]


@pytest.fixture()
def signer(tmp_path: Path, mldsa_key: keys.PrivateKey) -> tuple[Path, Path]:
    return write_keypair(mldsa_key, tmp_path / "signer")


def test_sign_then_verify_silent(cli: Cli, model_dir: Path, signer: tuple[Path, Path]) -> None:
    priv, pub = signer
    r = cli(["sign", model_dir, "--key", priv])
    assert r.exit_code == 0 and r.stderr == "" and r.stdout.strip() == str(model_dir / "model.sig")
    r = cli(["verify", model_dir, "--key", pub])
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    r = cli(["verify", model_dir, "--signature", model_dir / "model.sig", "--key", pub, "--json"])
    report = json.loads(r.stdout)
    assert r.exit_code == 0 and r.stderr == "" and report["verified"] and report["algorithm"] == "ml-dsa-65"
    assert report["tensors"] == 3 and report["files"] == 3


def test_verify_names_tensor_and_exits_12(cli: Cli, model_dir: Path, signer: tuple[Path, Path]) -> None:
    priv, pub = signer
    cli(["sign", model_dir, "--key", priv])
    path = model_dir / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    (model_dir / "config.json").unlink()
    (model_dir / "evil.py").write_text("print('x')")
    r = cli(["verify", model_dir, "--key", pub])
    assert r.exit_code == 12 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0].startswith("qsafe: error: the model does not match its signature")
    assert any(line.startswith("qsafe: error: changed: model.safetensors (tensors: ") for line in lines)
    assert "qsafe: error: missing: config.json" in lines and "qsafe: error: extra: evil.py" in lines
    assert lines[-1].startswith("qsafe: hint: ")
    r = cli(["verify", model_dir, "--key", pub, "--json"])
    report = json.loads(r.stdout)
    assert r.exit_code == 12 and report["missing"] == ["config.json"] and report["extra"] == ["evil.py"]
    assert list(report["changed_tensors"]) == ["model.safetensors"]


def test_wrong_key_exits_10(cli: Cli, model_dir: Path, signer: tuple[Path, Path], other_key: keys.PrivateKey,
                            tmp_path: Path) -> None:
    priv, _ = signer
    _, other_pub = write_keypair(other_key, tmp_path / "other")
    cli(["sign", model_dir, "--key", priv])
    r = cli(["verify", model_dir, "--key", other_pub])
    assert r.exit_code == 10 and r.stdout == "" and r.stderr.startswith("qsafe: error: ")


def test_bad_signature_exits_10(cli: Cli, model_dir: Path, signer: tuple[Path, Path]) -> None:
    priv, pub = signer
    cli(["sign", model_dir, "--key", priv])
    sig = model_dir / "model.sig"
    doc = json.loads(sig.read_text())
    s = doc["dsseEnvelope"]["signatures"][0]["sig"]
    doc["dsseEnvelope"]["signatures"][0]["sig"] = ("B" if s[0] == "A" else "A") + s[1:]
    sig.write_text(json.dumps(doc))
    r = cli(["verify", model_dir, "--key", pub])
    assert r.exit_code == 10 and "does not verify" in r.stderr


@pytest.mark.parametrize("content", [b"", b"not json", b"{}", b'{"mediaType": 1}', b"\xff\xfe"])
def test_malformed_bundle_exits_3(cli: Cli, model_dir: Path, signer: tuple[Path, Path], content: bytes) -> None:
    _, pub = signer
    (model_dir / "model.sig").write_bytes(content)
    r = cli(["verify", model_dir, "--key", pub])
    assert r.exit_code == 3 and r.stderr.startswith("qsafe: error: ") and "qsafe: hint: " in r.stderr
    r = cli(["inspect", model_dir / "model.sig"])
    assert r.exit_code == 3


def test_missing_signature_exits_3(cli: Cli, model_dir: Path, signer: tuple[Path, Path]) -> None:
    r = cli(["verify", model_dir, "--key", signer[1]])
    assert r.exit_code == 3 and "cannot read signature file" in r.stderr


def test_inspect(cli: Cli, model_dir: Path, signer: tuple[Path, Path], mldsa_key: keys.PrivateKey) -> None:
    cli(["sign", model_dir, "--key", signer[0]])
    r = cli(["inspect", model_dir / "model.sig"])
    assert r.exit_code == 0 and r.stderr == ""
    assert "algorithm ml-dsa-65" in r.stdout and mldsa_key.public_key().key_id in r.stdout and "encoder.weight" in r.stdout
    data = json.loads(cli(["inspect", model_dir / "model.sig", "--json"]).stdout)
    assert data["verified"] is False and data["signer"]["algorithm"] == "ml-dsa-65" and data["signer"]["key_details"] == "ML_DSA_65"
    assert {t["name"] for t in data["tensors"]["model.safetensors"]["tensors"]} == {
        "encoder.weight", "encoder.bias", "head.weight"}


def test_sign_options(cli: Cli, model_dir: Path, signer: tuple[Path, Path], tmp_path: Path) -> None:
    priv, pub = signer
    out = tmp_path / "out.sig"
    r = cli(["sign", model_dir, "--key", priv, "--signature", out, "--hash", "blake3", "--ignore-path", "tokenizer",
             "--no-tensor-digests", "--json"])
    assert r.exit_code == 0 and r.stderr == "" and json.loads(r.stdout)["tensor_files"] == []
    (model_dir / "tokenizer" / "vocab.txt").write_text("changed")  # ignored
    assert cli(["verify", model_dir, "--signature", out, "--key", pub]).exit_code == 0
    r = cli(["sign", model_dir, "--key", priv, "--signature", out, "--method", "shards", "--shard-size", "100"])
    assert r.exit_code == 0
    assert json.loads(cli(["inspect", out, "--json"]).stdout)["serialization"]["shard_size"] == 100
    assert cli(["verify", model_dir, "--signature", out, "--key", pub]).exit_code == 0


def test_symlink_refused_exit_2(cli: Cli, model_dir: Path, signer: tuple[Path, Path]) -> None:
    (model_dir / "ln").symlink_to("/etc/hostname")
    r = cli(["sign", model_dir, "--key", signer[0]])
    assert r.exit_code == 2 and "symlink" in r.stderr
    r = cli(["sign", model_dir, "--key", signer[0], "--allow-symlinks"])
    assert r.exit_code == 2 and "outside the model root" in r.stderr
    assert not (model_dir / "model.sig").exists()


def test_verify_needs_a_key(cli: Cli, model_dir: Path) -> None:
    r = cli(["verify", model_dir])
    assert r.exit_code == 2 and "--key" in r.stderr


def test_verify_never_imports_torch_or_tenseal(model_dir: Path, signer: tuple[Path, Path]) -> None:
    priv, pub = signer
    repo = Path(__file__).resolve().parents[2]
    code = (
        "import sys\n"
        "from qsafe.cli import main\n"
        "for args in (['sign', sys.argv[1], '--key', sys.argv[2]], ['verify', sys.argv[1], '--key', sys.argv[3]]):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tenseal', 'sigstore', 'pydantic'))\n"
        "print('HEAVY', heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run([sys.executable, "-c", code, str(model_dir), str(priv), str(pub)], check=False,
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


def test_protected_key(cli: Cli, model_dir: Path, mldsa_key: keys.PrivateKey, tmp_path: Path) -> None:
    pub, priv = keys.write_key_pair(mldsa_key, tmp_path / "prot", b"correct horse")
    (tmp_path / "pw").write_text("correct horse\n")
    r = cli(["sign", model_dir, "--key", priv, "--passphrase-file", tmp_path / "pw"])
    assert r.exit_code == 0 and r.stderr == ""
    assert cli(["verify", model_dir, "--key", pub]).exit_code == 0
    r = cli(["sign", model_dir, "--key", priv], env={"QSAFE_PASSPHRASE": "correct horse"})
    assert r.exit_code == 0 and r.stderr == ""
    r = cli(["sign", model_dir, "--key", priv], env={"QSAFE_PASSPHRASE": "wrong"})
    assert r.exit_code == 4 and r.stderr.startswith("qsafe: error: ")
    r = cli(["sign", model_dir, "--key", priv], env={"QSAFE_PASSPHRASE": ""})
    assert r.exit_code == 2 and "passphrase" in r.stderr
