"""One CLI vocabulary (issue 10 item 5): ``--json`` is a boolean flag on every command, one JSON shape for errors,
shared option definitions, renamed options kept as deprecated aliases."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from qsafe.cli import main

ERROR_KEYS = {"error", "exit_code", "message", "hint"}


def _leaves(group: click.Group, path: tuple[str, ...] = ("qsafe",)) -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            yield from _leaves(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def test_every_command_has_a_boolean_json_flag() -> None:
    """Walks the whole command tree (lazy commands included): each leaf has --json, a flag that never takes a path
    (fl simulate's also accepts its deprecated `--json FILE` form, but `--json` alone is the flag)."""
    leaves = dict(_leaves(main))
    assert len(leaves) >= 33 and "qsafe fl simulate" in leaves and "qsafe encrypt" in leaves
    for name, command in leaves.items():
        options = [p for p in command.params if isinstance(p, click.Option) and "--json" in p.opts]
        assert len(options) == 1, f"{name} has no --json"
        option = options[0]
        assert option.name == "as_json", name
        if name == "qsafe fl simulate":
            assert not option.is_flag and option.flag_value is not None  # --json alone: the flag value
        else:
            assert option.is_flag and isinstance(option.type, click.types.BoolParamType), name
        other = [o for p in command.params if isinstance(p, click.Option) for o in p.opts
                 if o.startswith("--json") and o != "--json"]
        assert other == [], name


def _one_error(result: Any, code: int) -> dict[str, Any]:
    assert result.exit_code == code, (result.stdout, result.stderr)
    obj = json.loads(result.stdout)  # exactly one document on stdout
    assert isinstance(obj, dict) and ERROR_KEYS <= set(obj), obj
    assert obj["exit_code"] == code and obj["message"] and "qsafe: error:" in result.stderr
    return obj


@pytest.fixture
def signed(cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QSAFE_PASSPHRASE", "vocabulary")
    monkeypatch.setenv("QSAFE_SCRYPT_WORK_FACTOR", "10")
    model = tmp_path / "m"
    model.mkdir()
    (model / "a.txt").write_text("weights")
    assert cli(["keygen", "--out", tmp_path / "k"]).exit_code == 0
    assert cli(["sign", model, "--key", tmp_path / "k.key"]).exit_code == 0
    return tmp_path


def test_one_error_shape_on_every_kind_of_failure(cli: Callable[..., Any], signed: Path) -> None:
    """The same object for a qsafe error, a click argument error, a verification failure and a denial, on several
    commands; load --json, which printed nothing on error, prints it too."""
    model, pub = signed / "m", signed / "k.pub"
    (model / "a.txt").write_text("tampered")
    mismatch = _one_error(cli(["verify", model, "--key", pub, "--json"]), 12)
    assert mismatch["error"] == "ModelMismatchError" and mismatch["changed"] == ["a.txt"]
    assert mismatch["verified"] is False  # verify adds its own field to the shape
    no_trust = _one_error(cli(["verify", model, "--json"]), 2)
    assert no_trust["error"] == "UsageError" and "trust" in no_trust["message"]
    load = _one_error(cli(["load", model, "--key", pub, "--unsafe-skip-attestation", "--json"]), 3)
    assert load["error"] == "FormatError" and "safetensors" in load["message"] and "verified" not in load
    bad_choice = _one_error(cli(["keygen", "--alg", "no-such-alg", "--json"]), 2)  # click's own error
    assert bad_choice["error"] == "UsageError" and "no-such-alg" in bad_choice["message"]
    assert bad_choice["hint"].endswith("keygen --help`")  # in-process the program is "main"
    garbage = signed / "garbage.sig"
    garbage.write_text("not a bundle")
    assert _one_error(cli(["inspect", garbage, "--json"]), 3)["error"] == "FormatError"
    assert _one_error(cli(["decrypt", garbage, "-o", signed / "out", "--json"]), 3)["error"] == "FormatError"
    assert not (signed / "out").exists()
    ctx = _one_error(cli(["fl", "encrypt", "--context", garbage, "--key", signed / "k.key", "--round", "1",
                          "-o", signed / "u.qfl", "--json", garbage]), 3)
    assert ctx["error"] == "FormatError" and "HE context" in ctx["message"]
    # a denial carries what was appraised
    assert cli(["attest", "recorded", "hopper-h100", "-o", signed / "ev.json"]).exit_code == 0
    denied = _one_error(cli(["attest", "verify", signed / "ev.json", "--policy", "nvidia-hopper-cc", "--json"]), 15)
    assert denied["error"] == "AttestationError" and denied["failed_claims"] and denied["result"]["verdict"] == "deny"


def test_without_json_no_object_is_printed(cli: Callable[..., Any], signed: Path) -> None:
    result = cli(["verify", signed / "m", "--key", signed / "missing.pub"])
    assert result.exit_code == 2 and result.stdout == "" and "qsafe: error:" in result.stderr


def test_inspect_names_algorithms_as_verify_does(cli: Callable[..., Any], signed: Path) -> None:
    data = json.loads(cli(["inspect", signed / "m" / "model.sig", "--json"]).stdout)
    report = json.loads(cli(["verify", signed / "m", "--key", signed / "k.pub", "--json"]).stdout)
    assert data["signer"]["algorithm"] == report["algorithm"] == "ml-dsa-65"
    assert data["signer"]["key_details"] == "ML_DSA_65"  # Sigstore's name stays, under its own key
    assert "algorithm ml-dsa-65" in cli(["inspect", signed / "m" / "model.sig"]).stdout


def test_encrypt_and_decrypt_print_json(cli: Callable[..., Any], signed: Path) -> None:
    plain, box, back = signed / "m" / "a.txt", signed / "a.age", signed / "a.out"
    enc = cli(["encrypt", "-p", "-o", box, "--json", plain])
    assert enc.exit_code == 0, enc.stderr
    summary = json.loads(enc.stdout)
    assert summary["output"] == str(box) and summary["bytes"] == box.stat().st_size and summary["passphrase"] is True
    dec = json.loads(cli(["decrypt", "-o", back, "--json", box]).stdout)
    assert dec["bytes"] == plain.stat().st_size and back.read_bytes() == plain.read_bytes()
    refused = _one_error(cli(["encrypt", "-p", "--json", plain]), 2)  # stdout cannot hold data and summary
    assert "-o FILE" in refused["message"]


def test_attest_collect_json_summary(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli(["attest", "collect", "-c", "software", "-o", tmp_path / "ev.json", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["kinds"] == ["software"] and len(summary["nonce"]) == 64
    assert json.loads((tmp_path / "ev.json").read_text())["items"][0]["kind"] == "software"


def test_fl_simulate_json_is_a_flag_and_the_old_path_form_a_deprecated_alias(cli: Callable[..., Any],
                                                                             tmp_path: Path) -> None:
    old = cli(["fl", "simulate", "--rounds", "1000", "--json", tmp_path / "missing" / "r.json"])
    assert old.exit_code == 2 and old.stdout == ""  # the old form still names an output, checked before the work
    assert "qsafe: deprecated: --json" in old.stderr and "--results" in old.stderr
    both = cli(["fl", "simulate", "--json", tmp_path / "a.json", "--results", tmp_path / "b.json"])
    assert both.exit_code == 2 and "give one of them" in both.stderr
    results = tmp_path / "r.json"
    run = cli(["fl", "simulate", "--clients", "4", "--attackers", "1", "--rounds", "1", "--no-reference", "--json",
               "--results", results])
    assert run.exit_code == 0, run.stderr
    printed = json.loads(run.stdout)  # only the results on stdout; progress stays on stderr
    assert printed == json.loads(results.read_text()) and printed["runs"][0]["rounds"][0]["round"] == 1
    again = cli(["fl", "report", results, "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["runs"] == printed["runs"]


def test_shared_options_are_defined_once() -> None:
    """--passphrase-file and --json are defined in qsafe/cli/_options.py only (the command modules use it)."""
    cli_dir = Path(__import__("qsafe.cli", fromlist=["x"]).__file__).parent
    for module in sorted(cli_dir.glob("*.py")):
        if module.name == "_options.py":
            continue
        text = module.read_text()
        assert 'click.option("--json"' not in text and 'click.option("--passphrase-file"' not in text, module.name
