"""The fuzzing harnesses: every seed and every saved crasher runs clean, and the driver really reports a crash.

Crashers found by the campaign live in tests/vectors/fuzz/HARNESS/; test_regressions.py asserts the specific
error of each. Here every one of them (and every seed) goes through its harness exactly as the fuzzer runs it:
a QsafeError is a clean refusal, anything else fails the test.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qsafe.errors import QsafeError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fuzz.harnesses import HARNESSES

CRASHERS = ROOT / "tests" / "vectors" / "fuzz"


def _inputs() -> list[tuple[str, Path]]:
    out = []
    for name in HARNESSES:
        for folder in (ROOT / "fuzz" / "seeds" / name, CRASHERS / name):
            out += [(name, p) for p in sorted(folder.glob("*")) if p.is_file()] if folder.is_dir() else []
    return out


@pytest.mark.parametrize("name", HARNESSES)
def test_every_harness_has_seeds(name: str) -> None:
    assert any((ROOT / "fuzz" / "seeds" / name).iterdir()), f"fuzz/seeds/{name} is empty"


@pytest.mark.parametrize(("name", "path"), _inputs(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_input_runs_clean(name: str, path: Path) -> None:
    module = importlib.import_module(f"fuzz.harnesses.{name}")
    try:
        module.test_one_input(path.read_bytes())
    except QsafeError:
        pass  # a clean refusal; anything else propagates and fails the test


def _driver(tmp_path: Path, data: bytes) -> subprocess.CompletedProcess[str]:
    case = tmp_path / "input"
    case.write_bytes(data)
    return subprocess.run([sys.executable, "-m", "fuzz", "selftest", "-timeout=10", "-rss_limit_mb=256",
                           f"-artifact_prefix={tmp_path}/", str(case)],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "FUZZ_STRICT": "1"})


def test_driver_reports_an_exception_outside_the_error_tree(tmp_path: Path) -> None:
    proc = _driver(tmp_path, b"crash!")
    assert proc.returncode != 0
    assert "ValueError: an exception outside qsafe's error tree" in proc.stdout + proc.stderr


def test_driver_accepts_a_qsafe_error(tmp_path: Path) -> None:
    proc = _driver(tmp_path, b"qsafe refuses this")
    assert proc.returncode == 0, proc.stdout + proc.stderr
