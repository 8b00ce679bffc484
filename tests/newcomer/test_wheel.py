"""The wheel is complete (issue 13 item 1): build it from the tracked files, install it into a fresh virtual
environment outside the repository, and run the README tour there, verbatim, with the doc-block runner.

Slow (it installs the dependencies into a new venv: about a minute here). torch is left out of that venv, so the
tour's `load` runs on numpy there (the dev venv's doc test runs it on torch) and the torch-only simulation block
(slow) is not run there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from doc_blocks import runner

REPO = runner.REPO


def _tracked_copy(dest: Path) -> Path:
    """The working tree's tracked files only (what a clean checkout has), symlinks kept as links."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src, dst = REPO / name, dest / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    return dest


def _run(argv: list[str], cwd: Path, timeout: float = 600) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_built_wheel_runs_the_readme_tour_in_a_fresh_venv(tmp_path: Path) -> None:
    src = _tracked_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
         cwd=tmp_path)
    (wheel,) = dist.glob("qsafe-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for policy in ("nvidia-hopper-cc", "nvidia-blackwell-cc", "amd-sev-snp", "intel-tdx", "unsafe-development-replay"):
        assert f"qsafe/attestation/data/policies/{policy}.json" in names
    assert "qsafe/attestation/data/evidence/hopper-h100.evidence.json" in names
    assert not any(n.startswith(("tests/", "attestations/", "examples/")) for n in names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
          f"qsafe[he,safetensors,nvidia,plot] @ {wheel.as_uri()}"], cwd=tmp_path, timeout=900)
    where = _run([str(venv / "bin" / "python"), "-c", ("import qsafe, qsafe.attestation.shipped as s; "
                  "print(qsafe.__file__); print(s.POLICY_DIR)")], cwd=tmp_path)
    assert all(Path(line).resolve().is_relative_to(venv.resolve()) for line in where.split()), where

    # the extras README's install section names (torch left out: see the module docstring)
    outcomes = runner.run_document(REPO / "README.md", tmp_path / "tour", venv / "bin", include_slow=False)
    failed = [o for o in outcomes if not o.ok]
    assert not failed, "README tour failed in the wheel's venv:\n" + failed[0].describe()
    ran = [o.block for o in outcomes]
    expected = [b for b in runner.parse_file(REPO / "README.md") if b.skip is None and not b.slow]
    assert ran == expected and len(ran) >= 4
