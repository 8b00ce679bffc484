"""Fixtures for the qsafe-liboqs tests. liboqs is found as the plugin finds it ($OQS_INSTALL_PATH, ~/_oqs, system);
`make test` builds it into build/oqs-prefix and points OQS_INSTALL_PATH there."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pytest
from click.testing import CliRunner


@pytest.fixture(autouse=True, scope="session")
def _liboqs() -> None:
    from qsafe_liboqs import liboqs

    if liboqs.find_library() is None:
        pytest.skip("liboqs is not installed (make liboqs builds it; OQS_INSTALL_PATH=build/oqs-prefix)")
    os.environ.setdefault("QSAFE_SCRYPT_WORK_FACTOR", "10")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture()
def cli() -> Callable[..., CliResult]:
    """Run ``qsafe ARGS`` in-process; returns exit code, stdout and stderr separately."""
    from qsafe.cli import main

    def run(args: Sequence[object], *, input: str | None = None) -> CliResult:
        result = CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under QSAFE_REQUIRE_PEERS=1 (make test, CI) a skipped test fails: a missing liboqs must not pass quietly."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and os.environ.get("QSAFE_REQUIRE_PEERS") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped, but QSAFE_REQUIRE_PEERS=1 requires liboqs and every peer: {report.longrepr}"
