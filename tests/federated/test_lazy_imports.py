"""``import qsafe``, ``import qsafe.federated`` and ``qsafe fl --help`` must never import tenseal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _modules_after(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, env=env, check=True)
    return out.stdout


def test_import_qsafe_federated_does_not_load_tenseal() -> None:
    loaded = _modules_after("import qsafe, qsafe.federated; qsafe.federated.HEContext")
    assert "qsafe.federated.aggregation" in loaded
    assert "tenseal" not in loaded.split()


def test_fl_help_does_not_load_tenseal() -> None:
    code = ("from click.testing import CliRunner\nfrom qsafe.cli import main\n"
            "for args in (['fl', '--help'], ['fl', 'encrypt', '--help'], ['fl', 'aggregate', '--help']):\n"
            "    r = CliRunner().invoke(main, args)\n    assert r.exit_code == 0, r.output")
    loaded = _modules_after(code)
    assert "qsafe.cli.federated" in loaded
    assert "tenseal" not in loaded.split()
