"""The CLI's error surface: click's argument errors and unexpected bugs in qsafe's form; --help stays light."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_robustness.conftest import REPO


def test_missing_input_file_in_qsafe_form(cli, ws: Path) -> None:
    r = cli(["inspect", "nope.sig"])
    assert r.exit_code == 2
    assert r.stderr.splitlines() == ["qsafe: error: Invalid value for 'SIGNATURE': File 'nope.sig' does not exist.",
                                     "qsafe: hint: run `main inspect --help`"]


def test_nested_group_bad_choice_and_range(cli, ws: Path) -> None:
    r = cli(["attest", "import", "nope", "x", "--collected-at", "2024-01-01"])
    assert r.exit_code == 2 and "qsafe: error: Invalid value for '{nvidia-report|" in r.stderr
    r = cli(["fl", "decrypt", "x", "--secret", "x", "-o", "y", "--min-clients", "-1"])
    assert r.exit_code == 2 and r.stderr.startswith("qsafe: error: ")


def test_unknown_command_in_qsafe_form(cli, ws: Path) -> None:
    r = cli(["sigh", "model"])
    assert r.exit_code == 2
    assert "qsafe: error: No such command 'sigh'" in r.stderr and "qsafe: hint: run `main --help`" in r.stderr


def _explode(*_args: object, **_kwargs: object) -> None:
    raise ValueError("boom\nsecond line")


def test_unexpected_exception_is_reported_as_a_bug_not_a_traceback(cli, ws: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qsafe.cli.signing._inspect_data", _explode)
    (ws / "x.sig").write_text("{}")
    r = cli(["inspect", "x.sig"])
    assert r.exit_code == 1  # no QsafeError uses 1: a script can tell a bug from a refusal
    lines = r.stderr.splitlines()
    assert lines[0].startswith("qsafe: error: internal error: ValueError: boom (at test_cli_errors.py:")
    assert lines[1] == ("qsafe: hint: this is a bug in qsafe; please report it with the output of QSAFE_DEBUG=1 "
                        "and the same command")
    assert len(lines) == 2 and "Traceback" not in r.stderr


def test_qsafe_debug_shows_the_real_exception(cli, ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qsafe.cli.signing._inspect_data", _explode)
    monkeypatch.setenv("QSAFE_DEBUG", "1")
    (ws / "x.sig").write_text("{}")
    with pytest.raises(ValueError, match="boom"):  # the fixture does not catch: the traceback reaches the user
        cli(["inspect", "x.sig"])


_HELP_SCRIPT = """
import sys, click
from qsafe.cli import main
def run(args):
    try:
        main.main(args, prog_name="qsafe")
    except SystemExit as e:
        assert e.code in (0, None), (args, e.code)
ctx = click.Context(main)
paths = []
def walk(group, prefix):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        paths.append(prefix + [name])
        if isinstance(cmd, click.Group):
            walk(cmd, prefix + [name])
run(["--version"]); run(["--help"]); walk(main, [])
for p in paths:
    run(p + ["--help"])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "tenseal", "matplotlib"))
print(len(paths), " ".join(heavy))
"""


def test_version_and_every_help_import_no_heavy_dependency() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _HELP_SCRIPT], capture_output=True, text=True, env=env, cwd=REPO,
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    count, *heavy = proc.stdout.strip().splitlines()[-1].split(" ")
    assert heavy == [] and int(count) >= 20  # every command and subcommand, nested groups included


def test_unknown_top_level_option_in_qsafe_form(cli, ws: Path) -> None:
    r = cli(["--bogus"])
    assert r.exit_code == 2
    assert r.stderr.splitlines() == ["qsafe: error: No such option '--bogus'.", "qsafe: hint: run `main --help`"]


def test_group_without_subcommand_prints_its_help_not_an_error(cli, ws: Path) -> None:
    for group in (["fl"], ["attest"], ["fl", "audit"]):
        r = cli(group)
        assert "Usage:" in r.stdout + r.stderr and "Commands:" in r.stdout + r.stderr
        assert "qsafe: error" not in r.stderr
