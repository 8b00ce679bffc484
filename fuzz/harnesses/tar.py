"""Directory extraction (``qsafe decrypt --extract``): the decrypted tar stream is extracted into a fresh folder.

The input is the tar stream itself (the age layer has its own harness). The bytes that land on disk must stay
within a small multiple of the input (file data is in the tar; tmpfs allocates 4 KiB pages): more is an
amplification (sparse entries). The driver's RLIMIT_FSIZE also turns any single write past 64 MiB into a crash.
"""

from __future__ import annotations

import io
import os

from fuzz._common import scratch_dir
from qsafe._age._tar import extract


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
            if written > 8 * len(data) + (1 << 20):
                raise AmplificationError(f"{len(data)} input bytes wrote {written} bytes to disk")
