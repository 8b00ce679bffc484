"""liboqs is found without importing oqs; without it, qsafe exits 5 with an install hint and never lets
liboqs-python start its download-and-build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from qsafe_liboqs import liboqs


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def _without_liboqs(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OQS_INSTALL_PATH", "LD_LIBRARY_PATH")}
    return {**env, "OQS_INSTALL_PATH": str(tmp_path / "nowhere"), "HOME": str(tmp_path)}


def test_found_where_liboqs_python_looks() -> None:
    path = liboqs.find_library()
    assert path is not None and path.name.startswith("liboqs.so")
    assert liboqs.require() == path


def test_no_liboqs_is_exit_5_with_a_hint_and_no_download(tmp_path: Path) -> None:
    env = _without_liboqs(tmp_path)
    code = ("import sys\nfrom qsafe.cli import run\nsys.argv = ['qsafe', 'keygen', '--alg', 'slh-dsa-sha2-128f', "
            f"'--out', {str(tmp_path / 'k')!r}, '--no-passphrase']\nrun()")
    proc = _run(code, env)
    assert proc.returncode == 5, proc.stderr
    assert "liboqs C library was not found" in proc.stderr and "make liboqs" in proc.stderr
    assert "Cloning" not in proc.stderr + proc.stdout and "Installing" not in proc.stderr + proc.stdout
    assert not (tmp_path / "_oqs").exists()  # liboqs-python's auto-install never started
    assert not (tmp_path / "k.key").exists()


def test_listing_and_parsing_import_no_oqs(tmp_path: Path) -> None:
    env = _without_liboqs(tmp_path)
    code = ("import sys, json\nfrom qsafe import keys\nnames = keys.signature_algorithms()\n"
            "print(json.dumps({'names': names, 'oqs': 'oqs' in sys.modules}))")
    proc = _run(code, env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "falcon-512" in out["names"] and out["oqs"] is False
