"""The one way every demo step runs the real ``qsafe`` command (``python -m qsafe`` from this checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _shown(arg: object) -> str:
    """Paths relative to the repository or the working directory, so the transcript reads well."""
    return str(arg).replace(str(REPO) + "/", "").replace(str(Path.cwd()) + "/", "")


def qsafe(*args: object, expect: int | None = None, passphrase: str | None = None,
          show: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``qsafe ARGS`` and return the finished process (stdout and stderr as text).

    Args:
        args: the command line after ``qsafe``.
        expect: the exit code the step requires (RuntimeError otherwise); None leaves the check to the caller.
        passphrase: ``$QSAFE_PASSPHRASE`` for this call only; the caller's own variable is never passed on, so
            the demo behaves the same in every shell.
        show: print ``$ qsafe …`` before running it.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("QSAFE_PASSPHRASE", None)
    if passphrase is not None:
        env["QSAFE_PASSPHRASE"] = passphrase
    if show:
        print("$ qsafe " + " ".join(_shown(a) for a in args), flush=True)
    proc = subprocess.run([sys.executable, "-m", "qsafe", *map(str, args)], capture_output=True, text=True, env=env,
                          check=False)
    if expect is not None and proc.returncode != expect:
        raise RuntimeError(f"qsafe {' '.join(map(str, args))} exited {proc.returncode}, expected {expect}:\n"
                           f"{proc.stderr}")
    return proc
