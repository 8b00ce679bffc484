"""Item 8, the rest: a file or folder name is attacker-controlled (a model folder downloaded from the internet, an
update file a client sent) and reaches every library message that names a path. Real `qsafe` subprocesses, real
stderr bytes: whatever the command, every stderr line is one of qsafe's own (``qsafe: error:``, ``qsafe: hint:``,
``qsafe: WARNING:``, progress), no ESC/BEL byte of a name reaches the terminal, a newline inside a name never
starts a line of its own (the forged ``qsafe: error:`` tail stays inside its line, escaped), and ``--json`` keeps
the exact name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qsafe._text import printable

from .conftest import HOPPER, HOPPER_NONCE, snapshot

# retitle the terminal, erase the line, then a newline and a line that looks like one of qsafe's own
EVIL = "n\x1b]0;title\x07\x1b[2K\nqsafe: error: forged"
SHOWN = printable(EVIL)  # n\x1b]0;title\x07\x1b[2K\x0aqsafe: error: forged


def qsafe(*args: object, code: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real CLI; assert its exit code and that its stderr is terminal-safe, line by line."""
    env = {**os.environ, "QSAFE_SCRYPT_WORK_FACTOR": "10", "PYTHONIOENCODING": "utf-8"}
    env.pop("QSAFE_DEBUG", None)
    env.pop("QSAFE_PASSPHRASE", None)
    r = subprocess.run([sys.executable, "-m", "qsafe", *map(str, args)], capture_output=True, text=True,
                       encoding="utf-8", errors="strict", env=env, cwd=cwd, timeout=120, check=False)
    assert r.returncode == code, (args, r.returncode, r.stderr)
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr and "\r" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert all(line.startswith("qsafe: ") for line in lines), r.stderr
    # the forged tail never starts a line: it stays inside the line of the name, after an escaped newline
    assert all("\\x0aqsafe: error: forged" in line or "\\nqsafe: error: forged" in line
               for line in lines if "forged" in line), r.stderr
    assert "internal error" not in r.stderr
    if code and "--json" not in args:
        assert lines and lines[0].startswith("qsafe: error: ") and lines[-1].startswith("qsafe: hint: "), r.stderr
    return r


def test_error_lines_come_from_the_library_never_from_the_data() -> None:
    from qsafe.errors import FormatError, ModelMismatchError

    err = FormatError(f"cannot read {EVIL}: truncated", hint=f"look at {EVIL}")
    assert str(err) == err.message == f"cannot read {SHOWN}: truncated" and "\n" not in str(err)
    assert err.exact_message == f"cannot read {EVIL}: truncated" and err.hint == f"look at {SHOWN}"
    err = ModelMismatchError(["2 files differ:", f"extra: {EVIL}", "missing: config.json"], extra=[EVIL])
    assert str(err).split("\n") == ["2 files differ:", f"extra: {SHOWN}", "missing: config.json"]
    assert err.extra == [EVIL] and err.exact_message == f"2 files differ:\nextra: {EVIL}\nmissing: config.json"
    assert FormatError(str(err)).message == str(err).replace("\n", "\\x0a")  # re-wrapped: one line, no double escape


@pytest.fixture()
def evil_ws(ws: Path) -> Path:
    """``ws`` plus a model folder whose own name and one of whose files are EVIL, signed by the CLI (which prints
    the path of the signature it wrote: escaped, on one line)."""
    from .conftest import make_model

    model = make_model(ws / ("m" + EVIL))
    (model / EVIL).write_text("weights of a hostile name\n")
    r = qsafe("sign", model, "--key", ws / "signer.key", code=0, cwd=ws)
    assert r.stdout.splitlines() == [printable(model / "model.sig")]
    return ws


def test_verify_and_load_name_changed_missing_extra_files_escaped(evil_ws: Path) -> None:
    ws = evil_ws
    model = ws / ("m" + EVIL)
    qsafe("verify", model, "--key", ws / "signer.pub", code=0, cwd=ws)
    (model / EVIL).write_text("changed\n")
    r = qsafe("verify", model, "--key", ws / "signer.pub", code=12, cwd=ws)
    assert f"qsafe: error: changed: {SHOWN}" in r.stderr.splitlines()
    r = qsafe("verify", model, "--key", ws / "signer.pub", "--json", code=12, cwd=ws)
    assert json.loads(r.stdout)["changed"] == [EVIL]
    assert EVIL in json.loads(r.stdout)["message"]  # exact, JSON-escaped
    r = qsafe("load", model, "--key", ws / "signer.pub", "--unsafe-skip-attestation", "--framework", "numpy",
              code=12, cwd=ws)
    assert f"qsafe: error: changed: {SHOWN}" in r.stderr.splitlines()
    (model / EVIL).unlink()
    (model / ("x" + EVIL)).write_text("extra\n")
    r = qsafe("verify", model, "--key", ws / "signer.pub", code=12, cwd=ws)
    lines = r.stderr.splitlines()
    assert f"qsafe: error: missing: {SHOWN}" in lines and f"qsafe: error: extra: x{SHOWN}" in lines


def test_sign_refuses_a_hostile_symlink_and_key_path_escaped(ws: Path) -> None:
    before = snapshot(ws / "model")
    os.symlink(ws / "nowhere", ws / "model" / (EVIL + ".safetensors"))
    r = qsafe("sign", ws / "model", "--key", ws / "signer.key", "--signature", ws / "new.sig", code=2, cwd=ws)
    assert SHOWN in r.stderr and not (ws / "new.sig").exists()
    (ws / "model" / (EVIL + ".safetensors")).unlink()
    assert snapshot(ws / "model") == before
    bad_key = ws / ("k" + EVIL + ".key")
    bad_key.write_text("not a key\n")
    r = qsafe("sign", ws / "model", "--key", bad_key, "--signature", ws / "new.sig", code=4, cwd=ws)
    assert not (ws / "new.sig").exists()
    r = qsafe("verify", ws / "model", "--key", bad_key, code=4, cwd=ws)
    assert SHOWN in r.stderr


def test_bundle_evidence_policy_and_encrypted_inputs_with_hostile_names(ws: Path) -> None:
    garbage = ws / ("g" + EVIL)
    garbage.write_text('{"not": "what was expected"\n')

    def named(r: subprocess.CompletedProcess[str]) -> bool:  # escaped by the error, or quoted with repr
        return printable(garbage) in r.stderr or repr(str(garbage))[1:-1] in r.stderr

    assert named(qsafe("verify", ws / "model", "--key", ws / "signer.pub", "--signature", garbage, code=3, cwd=ws))
    assert named(qsafe("inspect", garbage, code=3, cwd=ws))
    assert named(qsafe("attest", "verify", garbage, "--policy", "nvidia-hopper-cc", "--nonce", HOPPER_NONCE, code=3,
                       cwd=ws))
    assert named(qsafe("attest", "verify", HOPPER, "--policy", garbage, "--nonce", HOPPER_NONCE, code=3, cwd=ws))
    assert named(qsafe("load", ws / "model", "--key", ws / "signer.pub", "--policy", garbage, "--evidence", HOPPER,
                       "--nonce", HOPPER_NONCE, code=3, cwd=ws))
    qsafe("evidence", "verify", garbage, "--evaluator-key", ws / "signer.pub", "--model-digest", "sha256:" + "0" * 64,
          code=3, cwd=ws)
    qsafe("keygen", "--alg", "ml-kem-768-x25519", "--out", ws / "age", "--no-passphrase", code=0, cwd=ws)
    qsafe("decrypt", garbage, "-i", ws / "age.key", "-o", ws / "out.bin", code=3, cwd=ws)
    r = qsafe("encrypt", ws / ("missing" + EVIL), "-R", ws / "age.pub", "-o", ws / "out.age", code=2, cwd=ws)
    assert SHOWN in r.stderr
    qsafe("encrypt", ws / "model" / "config.json", "-R", garbage, "-o", ws / "out.age", code=4, cwd=ws)
    assert not (ws / "out.bin").exists() and not (ws / "out.age").exists()


def test_fl_aggregate_names_a_hostile_update_file_escaped(tmp_path: Path) -> None:
    pytest.importorskip("tenseal")
    import numpy as np

    from qsafe import keys
    from qsafe.federated import HEContext, encrypt_update

    ctx = HEContext.generate()
    ctx.save_public(tmp_path / "public.ctx")
    key = keys.generate("ml-dsa-44")
    (tmp_path / "clients").mkdir()
    (tmp_path / "clients" / "c.pub").write_bytes(key.public_key().to_pem())
    update = encrypt_update({"w": np.zeros(4, np.float32)}, HEContext.from_bytes(ctx.public().public_bytes()), key, 1)
    (tmp_path / "ok.qfl").write_bytes(update.to_bytes())
    bad = tmp_path / (EVIL + ".qfl")
    bad.write_bytes(b"QSAFE-NOT-AN-UPDATE" + bytes(64))
    args = ["fl", "aggregate", tmp_path / "ok.qfl", bad, "--context", tmp_path / "public.ctx", "--clients",
            tmp_path / "clients", "--round", 1, "-o", tmp_path / "agg.qfl"]
    r = qsafe(*args, code=16, cwd=tmp_path)
    assert [line for line in r.stderr.splitlines() if line.startswith("qsafe: error: refused ") and SHOWN in line]
    r = qsafe(*args[:-1], tmp_path / "agg2.qfl", "--json", code=16, cwd=tmp_path)
    assert [x["source"] for x in json.loads(r.stdout)["refused"]] == [str(bad)]


def test_inspect_of_a_bundle_with_a_newline_in_its_model_name(ws: Path) -> None:
    from .test_terminal import _rewrite_statement

    bad = ws / "bad.sig"
    _rewrite_statement(ws / "model" / "model.sig", bad,
                       lambda p: p.replace('"name": "model"', '"name": ' + json.dumps(EVIL), 1))
    r = qsafe("inspect", bad, code=0, cwd=ws)
    assert f"model:     {SHOWN}  root sha256:" in r.stdout and "\x1b" not in r.stdout
    assert not [line for line in r.stdout.splitlines() if line.startswith("qsafe: error: forged")]
    r = qsafe("inspect", bad, "--json", code=0, cwd=ws)
    assert json.loads(r.stdout)["model_name"] == EVIL


def test_no_message_is_built_with_newlines_in_a_string() -> None:
    """A message given as a string is one line (its newlines are escaped, so a name cannot forge a line): a message
    of several lines must be a list. Any raise that joins lines into one string would print them as ``\\x0a``."""
    import ast

    repo = Path(__file__).resolve().parents[2]
    sources = [*(repo / "qsafe").rglob("*.py"), *(repo / "plugins").glob("*/qsafe_*/**/*.py")]
    assert len(sources) > 50

    def has_newline(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return "\n" in node.value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join":
            return has_newline(node.func.value)
        if isinstance(node, (ast.JoinedStr, ast.BinOp)):
            return any(has_newline(child) for child in ast.iter_child_nodes(node))
        return False

    found = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and node.args and has_newline(node.args[0]):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name.endswith("Error"):
                    found.append(f"{path.relative_to(repo)}:{node.lineno}")
    assert not found, found


def test_fl_report_of_a_results_file_with_a_hostile_defense_name(tmp_path: Path) -> None:
    """`fl report` renders a results file someone else may have written: its names never forge a line."""
    repo = Path(__file__).resolve().parents[2]
    data = json.loads((repo / "examples" / "federated_backdoor" / "results" / "matrix_replace.json").read_text())
    data["runs"][0]["config"]["defense"] = EVIL
    (tmp_path / "r.json").write_text(json.dumps(data))
    for extra in ([], ["--matrix"]):
        r = qsafe("fl", "report", tmp_path / "r.json", *extra, code=0, cwd=tmp_path)
        assert "\x1b" not in r.stdout and "\x07" not in r.stdout and SHOWN in r.stdout
        assert not [line for line in r.stdout.splitlines() if line.startswith("qsafe: error: forged")]
