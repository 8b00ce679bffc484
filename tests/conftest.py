"""Shared fixtures. Tests never read ../shared: every vector and fixture lives in the repository."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO / "tests" / "vectors"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    stdout_bytes: bytes


@pytest.fixture()
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Run ``qsafe ARGS`` in-process; returns exit code, stdout and stderr separately."""
    from qsafe.cli import main

    def run(args: Sequence[str], *, input: bytes | str | None = None, env: dict[str, str] | None = None) -> CliResult:
        runner = CliRunner()
        result = runner.invoke(main, list(map(str, args)), input=input, env=env, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr, result.stdout_bytes)

    return run
