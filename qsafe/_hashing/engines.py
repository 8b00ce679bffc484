"""Hash engines by name, and the streaming read loop every digest in qsafe goes through.

hashlib and blake3 release the GIL while hashing a buffer, so threads hash files (and shards of files) in
parallel. Reads go into one preallocated buffer per call (``readinto``), so memory stays constant whatever the
file size.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from qsafe._files import open_regular
from qsafe.errors import InvalidInputError, UsageError

# Names as model-signing writes them in `hash_type` / resource `algorithm`.
ALGORITHMS: tuple[str, ...] = ("sha256", "blake3", "blake2b")
DEFAULT_ALGORITHM = "sha256"

# 4 MiB reads: large enough that per-call overhead vanishes and blake3 can use both cores inside one update,
# small enough that two workers stay far below the RSS budget.
READ_CHUNK = 4 << 20


class Hasher(Protocol):
    def update(self, data: Any, /) -> object: ...

    def digest(self) -> bytes: ...


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hash object for ``algorithm``.

    Raises:
        UsageError: unknown algorithm.
    """
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "blake2b":
        return hashlib.blake2b()
    if algorithm == "blake3":
        import blake3  # imported lazily: only needed when chosen

        hasher: Hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        return hasher
    raise UsageError(f"unknown hash algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")


Sink = Callable[[memoryview], object]


def stream_range(
    path: Path,
    start: int,
    end: int,
    sinks: Sequence[Sink],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Feed the bytes ``[start, end)`` of ``path`` to every sink, in order, in bounded chunks.

    Raises:
        InvalidInputError: the file is shorter than ``end`` (it changed while being hashed).
    """
    buf = bytearray(min(READ_CHUNK, max(end - start, 1)))
    view = memoryview(buf)
    # never blocks on a FIFO swapped in after the walk; refuses anything but a regular file
    with open_regular(path, "file", error=InvalidInputError, buffering=0) as handle:
        if start:
            handle.seek(start)
        remaining = end - start
        while remaining > 0:
            n = handle.readinto(view[: min(len(buf), remaining)])
            if not n:
                raise InvalidInputError(f"{path} shrank while it was being hashed")
            chunk = view[:n]
            for sink in sinks:
                sink(chunk)
            remaining -= n
            if progress is not None:
                progress(n)


def hash_range(
    path: Path, start: int, end: int, algorithm: str, progress: Callable[[int], None] | None = None
) -> bytes:
    """Digest of the bytes ``[start, end)`` of ``path``."""
    hasher = new_hasher(algorithm)
    stream_range(path, start, end, [hasher.update], progress)
    return hasher.digest()


def default_workers() -> int:
    """Worker threads: one per core (hashing is CPU-bound once the page cache is warm)."""
    return max(1, min(os.cpu_count() or 1, 16))
