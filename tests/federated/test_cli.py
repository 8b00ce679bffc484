"""CLI transcripts for ``qsafe fl init|encrypt|aggregate|decrypt``: exit codes, stderr, outputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from qsafe import keys
from qsafe.federated import HEContext

from .conftest import make_update


@pytest.fixture()
def setup(tmp_path: Path, cli: Callable, client_keys: list[keys.PrivateKey]) -> dict:
    r = cli(["fl", "init", "--out", tmp_path / "ka", "--no-passphrase"])
    assert r.exit_code == 0 and r.stderr == ""
    fingerprint = r.stdout.split()[0]
    assert fingerprint == HEContext.load(tmp_path / "ka" / "public.ctx").fingerprint
    (tmp_path / "clients").mkdir()
    rng = np.random.default_rng(11)
    plain = []
    for i, key in enumerate(client_keys[:3]):
        (tmp_path / f"c{i}.key").write_bytes(key.to_pem())
        (tmp_path / "clients" / f"c{i}.pub").write_bytes(key.public_key().to_pem())
        update = make_update(rng)
        save_file(update, str(tmp_path / f"u{i}.safetensors"))
        plain.append(update)
    return {"dir": tmp_path, "plain": plain, "pub": tmp_path / "ka" / "public.ctx",
            "secret": tmp_path / "ka" / "secret.ctx"}


def _encrypt(cli: Callable, d: Path, pub: Path, i: int, round_: int = 1, *extra: str):
    return cli(["fl", "encrypt", d / f"u{i}.safetensors", "--context", pub, "--key", d / f"c{i}.key",
                "--round", round_, "-o", d / f"u{i}.qfl", *extra])


def test_one_round_three_clients(setup: dict, cli: Callable) -> None:
    d, pub = setup["dir"], setup["pub"]
    for i in range(3):
        r = _encrypt(cli, d, pub, i, 1, "--json")
        assert r.exit_code == 0 and r.stderr == "", r.stderr
        assert json.loads(r.stdout)["bytes_per_value"] > 0
    r = cli(["fl", "aggregate", *(d / f"u{i}.qfl" for i in range(3)), "--context", pub,
             "--clients", d / "clients", "--round", 1, "-o", d / "agg.qfl"])
    assert (r.exit_code, r.stderr, r.stdout) == (0, "", "")
    r = cli(["fl", "decrypt", d / "agg.qfl", "--secret", setup["secret"], "-o", d / "avg.safetensors", "--json",
             "--recompute-from", d, "--clients", d / "clients"])
    assert r.exit_code == 0 and r.stderr == ""
    report = json.loads(r.stdout)
    assert report["recomputed"] is True
    out = load_file(str(d / "avg.safetensors"))
    assert set(out) == set(setup["plain"][0])
    for name, t in setup["plain"][0].items():
        expected = sum(p[name].astype(np.float64) for p in setup["plain"]) / 3
        assert out[name].dtype == t.dtype and out[name].shape == t.shape
        tol = report["error_bound"] + (float(np.finfo(t.dtype).eps) if t.dtype != np.float64 else 0.0)
        assert np.abs(out[name].astype(np.float64) - expected).max() <= tol


def test_aggregate_reports_refusals_and_exits_16(setup: dict, cli: Callable) -> None:
    d, pub = setup["dir"], setup["pub"]
    assert _encrypt(cli, d, pub, 0, 2).exit_code == 0
    assert _encrypt(cli, d, pub, 1, 2).exit_code == 0
    assert _encrypt(cli, d, pub, 2, 1).exit_code == 0  # old round
    (d / "junk.qfl").write_bytes(b"not an update")
    args = ["fl", "aggregate", d / "u0.qfl", d / "u1.qfl", d / "u2.qfl", d / "junk.qfl", d / "u0.qfl",
            "--context", pub, "--clients", d / "clients", "-o", d / "agg.qfl", "--json"]
    r = cli(args)
    assert r.exit_code == 16
    report = json.loads(r.stdout)  # the error object (one shape), carrying the whole aggregation report
    assert report["error"] == "HEMismatchError" and report["exit_code"] == 16
    assert report["round"] == 2 and report["count"] == 2
    reasons = {Path(x["source"]).name + ":" + x["reason"].split(":")[0] for x in report["refused"]}
    assert reasons == {"u2.qfl:wrong round", "junk.qfl:not a federated update (expected it to start with b'qsafe-fl-update/v1\\n')",
                       "u0.qfl:replay"}
    assert "qsafe: error: 3 of 5 updates refused" in r.stderr and "qsafe: hint:" in r.stderr
    assert (d / "agg.qfl").exists()


def test_client_refuses_out_of_clip_and_nan(setup: dict, cli: Callable) -> None:
    d, pub = setup["dir"], setup["pub"]
    save_file({"w": np.array([0.5, 2.0], np.float32)}, str(d / "u0.safetensors"))
    r = _encrypt(cli, d, pub, 0)
    assert r.exit_code == 2 and "beyond the context's clip bound" in r.stderr and not (d / "u0.qfl").exists()
    save_file({"w": np.array([0.5, np.inf], np.float32)}, str(d / "u0.safetensors"))
    r = _encrypt(cli, d, pub, 0)
    assert r.exit_code == 2 and "NaN/Inf" in r.stderr and not (d / "u0.qfl").exists()


def test_roles_refuse_the_wrong_context(setup: dict, cli: Callable) -> None:
    d, pub, secret = setup["dir"], setup["pub"], setup["secret"]
    r = _encrypt(cli, d, secret, 0)
    assert r.exit_code == 4 and "secret context" in r.stderr
    assert _encrypt(cli, d, pub, 0).exit_code == 0
    assert _encrypt(cli, d, pub, 1).exit_code == 0
    r = cli(["fl", "aggregate", d / "u0.qfl", d / "u1.qfl", "--context", pub, "--clients", d / "clients",
             "-o", d / "agg.qfl"])
    assert r.exit_code == 0
    r = cli(["fl", "decrypt", d / "agg.qfl", "--secret", pub, "-o", d / "x.safetensors"])
    assert r.exit_code == 4 and not (d / "x.safetensors").exists()
    assert cli(["fl", "init", "--out", d / "other", "--no-passphrase"]).exit_code == 0
    r = cli(["fl", "decrypt", d / "agg.qfl", "--secret", d / "other" / "secret.ctx", "-o", d / "x.safetensors"])
    assert r.exit_code == 16 and "wrong context" in r.stderr and not (d / "x.safetensors").exists()
    r = cli(["fl", "init", "--out", d / "other", "--no-passphrase"])
    assert r.exit_code == 2 and "exists" in r.stderr


def test_protected_secret_context_and_client_key(tmp_path: Path, cli: Callable) -> None:
    """init protects secret.ctx with the passphrase; encrypt unlocks a protected key; decrypt needs it."""
    pw = tmp_path / "pw"
    pw.write_text("s3cret passphrase\n")
    r = cli(["fl", "init", "--out", tmp_path / "ka", "--passphrase-file", pw, "--json"])
    assert r.exit_code == 0 and r.stderr == "" and json.loads(r.stdout)["protected"] is True
    assert (tmp_path / "ka" / "secret.ctx").read_bytes().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    assert cli(["keygen", "--out", tmp_path / "c0", "--passphrase-file", pw]).exit_code == 0
    assert cli(["keygen", "--out", tmp_path / "c1", "--passphrase-file", pw]).exit_code == 0
    (tmp_path / "allow.pem").write_bytes((tmp_path / "c0.pub").read_bytes() + (tmp_path / "c1.pub").read_bytes())
    rng = np.random.default_rng(0)
    for i in range(2):
        save_file({"w": rng.uniform(-1, 1, 100).astype(np.float32)}, str(tmp_path / f"u{i}.safetensors"))
        r = cli(["fl", "encrypt", tmp_path / f"u{i}.safetensors", "--context", tmp_path / "ka" / "public.ctx",
                 "--key", tmp_path / f"c{i}.key", "--passphrase-file", pw, "--round", 0, "-o", tmp_path / f"u{i}.qfl"])
        assert r.exit_code == 0 and r.stderr == "", r.stderr
    r = cli(["fl", "aggregate", tmp_path / "u0.qfl", tmp_path / "u1.qfl", "--context", tmp_path / "ka" / "public.ctx",
             "--clients", tmp_path / "allow.pem", "--round", 0, "-o", tmp_path / "agg.qfl"])
    assert r.exit_code == 0, r.stderr
    bad = tmp_path / "bad"
    bad.write_text("wrong\n")
    args = ["fl", "decrypt", tmp_path / "agg.qfl", "--secret", tmp_path / "ka" / "secret.ctx", "-o", tmp_path / "a.st"]
    r = cli([*args, "--passphrase-file", bad])
    assert r.exit_code == 4 and "qsafe: error:" in r.stderr and not (tmp_path / "a.st").exists()
    r = cli([*args, "--passphrase-file", pw])
    assert r.exit_code == 0 and r.stderr == ""
    assert load_file(str(tmp_path / "a.st"))["w"].shape == (100,)


def test_decrypt_error_paths(setup: dict, cli: Callable) -> None:
    d, pub, secret = setup["dir"], setup["pub"], setup["secret"]
    assert _encrypt(cli, d, pub, 0).exit_code == 0
    r = cli(["fl", "aggregate", d / "u0.qfl", "--context", pub, "--clients", d / "clients", "--round", 1,
             "-o", d / "one.qfl"])
    assert r.exit_code == 0
    r = cli(["fl", "decrypt", d / "one.qfl", "--secret", secret, "-o", d / "x.safetensors"])
    assert r.exit_code == 16 and "fewer than the minimum 2" in r.stderr and not (d / "x.safetensors").exists()
    r = cli(["fl", "decrypt", d / "one.qfl", "--secret", secret, "--min-clients", 1, "-o", d / "x.safetensors",
             "--recompute-from", d / "u0.qfl"])
    assert r.exit_code == 2 and "go together" in r.stderr
    r = cli(["fl", "decrypt", d / "one.qfl", "--secret", secret, "--min-clients", 1, "--sum", "-o", d / "x.safetensors"])
    assert r.exit_code == 0 and r.stderr == "" and (d / "x.safetensors").exists()
    r = cli(["fl", "decrypt", d / "u0.qfl", "--secret", secret, "-o", d / "y.safetensors"])
    assert r.exit_code == 3 and "not a federated aggregate" in r.stderr
    r = cli(["fl", "aggregate", d / "u0.qfl", "--context", pub, "--clients", d / "clients", "--round", 1,
             "-o", d / "u0.qfl"])
    assert r.exit_code == 2 and "never overwrites its input" in r.stderr


def test_encrypt_refuses_unreadable_update_and_protected_key_without_passphrase(setup: dict, cli: Callable,
                                                                                 tmp_path: Path) -> None:
    d, pub = setup["dir"], setup["pub"]
    (d / "u0.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    r = _encrypt(cli, d, pub, 0)
    assert r.exit_code == 3 and "safetensors" in r.stderr
    assert cli(["keygen", "--out", tmp_path / "locked", "--passphrase-file", _pw(tmp_path)]).exit_code == 0
    save_file({"w": np.zeros(3, np.float32)}, str(d / "u1.safetensors"))
    r = cli(["fl", "encrypt", d / "u1.safetensors", "--context", pub, "--key", tmp_path / "locked.key", "--round", 0,
             "-o", d / "u1.qfl"], env={"QSAFE_PASSPHRASE": ""})
    assert r.exit_code == 2 and "passphrase" in r.stderr and not (d / "u1.qfl").exists()


def _pw(tmp_path: Path) -> Path:
    path = tmp_path / "pw"
    path.write_text("pw for a locked key\n")
    return path
