"""Directory extraction (``qsafe decrypt --extract``): the decrypted tar stream is extracted into a fresh folder.

The input is the tar stream itself (the age layer has its own harness). What is written is bounded by the
driver's RLIMIT_FSIZE (a write past it is an OSError, hence a crash), and by :data:`MAX_WRITTEN` in total.
"""

from __future__ import annotations

import io
import os

from fuzz._common import scratch_dir
from qsafe._age._tar import extract

MAX_WRITTEN = 64 << 20


class AmplificationError(AssertionError):
    """More bytes landed on disk than a bound on the input allows."""


def _written(root: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        total += sum(os.lstat(os.path.join(dirpath, f)).st_blocks * 512 for f in files)
    return total


def test_one_input(data: bytes) -> None:
    with scratch_dir() as tmp:
        try:
            extract(io.BytesIO(data), tmp / "out")
        finally:
            written = _written(str(tmp))
            if written > max(MAX_WRITTEN, 4 * len(data) + (1 << 20)):
                raise AmplificationError(f"{len(data)} input bytes wrote {written} bytes to disk")
