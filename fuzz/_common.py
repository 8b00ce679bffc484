"""Helpers shared by the harnesses (no atheris here)."""

from __future__ import annotations

import atexit
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
# Every verifier takes an explicit time; the recorded evidence and collateral are judged at this instant.
AT = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)


_SCRATCH: Path | None = None


def _scratch_base() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


@contextmanager
def memfile(data: bytes, name: str = "input") -> Iterator[Path]:
    """``data`` as a regular file the parsers can open (on tmpfs when there is one), removed afterwards."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = Path(tempfile.mkdtemp(prefix="qsafe-fuzz-", dir=_scratch_base()))
        atexit.register(shutil.rmtree, _SCRATCH, True)
    path = _SCRATCH / name
    path.write_bytes(data)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A fresh empty directory (under /dev/shm when it exists), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="qsafe-fuzz-", dir=_scratch_base()) as tmp:
        yield Path(tmp)
