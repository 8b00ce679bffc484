"""README's rules for what the CLI prints and what it overwrites, checked command by command (issue 13 item 3:
"silent on success" was not true for `sign`/`keygen`; "existing outputs are refused" was not true for
`encrypt -o`/`decrypt -o`). The table in README.md ("What the CLI prints, and what it overwrites") is this test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qsafe.attestation.shipped import recorded

HOPPER = recorded("hopper-h100")
ENV = {"QSAFE_PASSPHRASE": "pw", "QSAFE_SCRYPT_WORK_FACTOR": "10"}


@pytest.fixture()
def run(cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    monkeypatch.chdir(tmp_path)

    def call(*args: object) -> Any:
        return cli([str(a) for a in args], env=ENV)

    return call


def _updates(root: Path) -> None:
    from safetensors.numpy import save_file

    for n in (1, 2):
        save_file({"w": np.random.default_rng(n).uniform(-0.5, 0.5, (4, 8)).astype(np.float32)},
                  str(root / f"update{n}.safetensors"))


@pytest.mark.timeout(600)
def test_verification_is_silent_creators_report_what_they_wrote(run: Callable[..., Any], model_dir: Path,
                                                               tmp_path: Path) -> None:
    nonce, at = HOPPER.nonce, HOPPER.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    (tmp_path / "pred.json").write_text('{"accuracy": 0.9}')
    _updates(tmp_path)
    creators: list[tuple[tuple[object, ...], str]] = [
        (("keygen", "--out", "release"), r"sha256:[0-9a-f]{64}"),
        (("keygen", "--alg", "ml-kem-768-x25519", "--out", "ops"), r"age1pq1[0-9a-z]+"),
        (("keygen", "--out", "alice"), r"sha256:[0-9a-f]{64}"),
        (("keygen", "--out", "bob"), r"sha256:[0-9a-f]{64}"),
        (("sign", "my-model", "--key", "release.key"), re.escape(str(Path("my-model") / "model.sig"))),
        (("evidence", "sign", "--model", "my-model", "--model-key", "release.pub", "--predicate-type",
          "https://qsafe.dev/model-card/v1", "--predicate", "pred.json", "--key", "release.key", "-o", "card.json"),
         "card.json"),
        (("pki", "init-ca", "--out", "ca", "--subject", "CN=Test CA"), "ca.pem"),
        (("pki", "issue", "--ca", "ca.pem", "--ca-key", "ca.key", "--public-key", "release.pub", "--subject",
          "CN=release", "--out", "release.pem"), "release.pem"),
        (("fl", "init", "--out", "authority"), r"sha256:[0-9a-f]{64}  " + re.escape(str(Path("authority/public.ctx")))),
    ]
    for args, pattern in creators:
        res = run(*args)
        assert res.exit_code == 0, (args, res.stderr)
        assert re.fullmatch(pattern + "\n", res.stdout), (args, res.stdout)
        assert res.stderr == "", (args, res.stderr)
    (tmp_path / "clients.pem").write_bytes((tmp_path / "alice.pub").read_bytes() + (tmp_path / "bob.pub").read_bytes())
    silent: list[tuple[object, ...]] = [
        ("verify", "my-model", "--key", "release.pub"),
        ("inspect", "my-model/model.sig", "--json"),  # (a report is asked for: stdout, but nothing on stderr)
        ("evidence", "verify", "card.json", "--model", "my-model", "--model-key", "release.pub", "--evaluator-key",
         "release.pub"),
        ("encrypt", "-R", "ops.pub", "-o", "model.age", "my-model"),
        ("decrypt", "-i", "ops.key", "--extract", "restored", "model.age"),
        ("encrypt", "-R", "ops.pub", "-o", "config.age", "my-model/config.json"),
        ("decrypt", "-i", "ops.key", "-o", "config.json", "config.age"),
        ("fl", "encrypt", "update1.safetensors", "--context", "authority/public.ctx", "--key", "alice.key",
         "--round", "1", "-o", "u1.qfl"),
        ("fl", "encrypt", "update2.safetensors", "--context", "authority/public.ctx", "--key", "bob.key",
         "--round", "1", "-o", "u2.qfl"),
        ("fl", "aggregate", "u1.qfl", "u2.qfl", "--context", "authority/public.ctx", "--clients", "clients.pem",
         "--round", "1", "-o", "agg.qfl"),
        ("fl", "decrypt", "agg.qfl", "--secret", "authority/secret.ctx", "-o", "average.safetensors"),
        ("attest", "recorded", "hopper-h100", "-o", "h100.json"),
        ("attest", "collect", "-c", "software", "-o", "software.json"),
        ("attest", "verify", "h100.json", "--policy", "nvidia-hopper-cc", "--nonce", nonce, "--at", at,
         "-o", "result.json", "--key", "release.key"),
        ("attest", "check-result", "result.json", "--key", "release.pub"),
        ("load", "my-model", "--key", "release.pub", "--policy", "nvidia-hopper-cc", "--evidence", "h100.json",
         "--nonce", nonce, "--at", at, "--framework", "numpy"),
    ]
    for args in silent:
        res = run(*args)
        assert res.exit_code == 0, (args, res.stderr)
        assert res.stderr == "", (args, res.stderr)
        if "--json" not in args:
            assert res.stdout == "", (args, res.stdout)
    assert json.loads(run("inspect", "my-model/model.sig", "--json").stdout)


def test_which_outputs_are_replaced_and_which_are_refused(run: Callable[..., Any], model_dir: Path,
                                                          tmp_path: Path) -> None:
    assert run("keygen", "--alg", "ml-kem-768-x25519", "--out", "ops").exit_code == 0
    assert run("keygen", "--out", "release").exit_code == 0
    for name in ("model.age", "plain.txt", "h100.json", "card.json"):
        (tmp_path / name).write_text("an older file\n")
    (tmp_path / "pred.json").write_text('{"accuracy": 0.9}')
    # replaced atomically, as age does: re-running a step replaces its product
    replaced: list[tuple[object, ...]] = [
        ("encrypt", "-R", "ops.pub", "-o", "model.age", "my-model/config.json"),
        ("decrypt", "-i", "ops.key", "-o", "plain.txt", "model.age"),
        ("attest", "recorded", "hopper-h100", "-o", "h100.json"),
        ("sign", "my-model", "--key", "release.key"),
        ("sign", "my-model", "--key", "release.key"),  # an existing bundle is replaced
    ]
    for args in replaced:
        res = run(*args)
        assert res.exit_code == 0, (args, res.stderr)
    assert (tmp_path / "plain.txt").read_bytes() == (model_dir / "config.json").read_bytes()
    assert json.loads((tmp_path / "h100.json").read_text())["nonce"] == HOPPER.nonce
    # refused (exit 2), nothing changed
    (tmp_path / "notabundle.sig").write_text("precious\n")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    refused: list[tuple[tuple[object, ...], str]] = [
        (("keygen", "--out", "release"), "refusing to overwrite release.pub, release.key"),
        (("encrypt", "-R", "ops.pub", "-o", "plain.txt", "plain.txt"), "plain.txt"),
        (("decrypt", "-i", "ops.key", "--extract", "full", "model.age"), "not an empty directory"),
        (("sign", "my-model", "--key", "release.key", "--signature", "notabundle.sig"), "not a signature bundle"),
    ]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for args, message in refused:
        res = run(*args)
        assert res.exit_code == 2 and message in res.stderr, (args, res.exit_code, res.stderr)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before
