"""How a model is hashed: algorithm (SHA-256 default, BLAKE3 option), granularity, ignores, symlinks.

Hashing streams every file in bounded chunks (constant memory) and runs in parallel over files and over shards
of large files, on as many threads as there are cores (hashlib and blake3 release the GIL).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qsafe._hashing.engines import ALGORITHMS, DEFAULT_ALGORITHM, default_workers, hash_range
from qsafe._hashing.walk import GIT_PATHS, check_resource_path
from qsafe.errors import FormatError, UsageError

__all__ = [
    "DEFAULT_HASH_ALGORITHM",
    "DEFAULT_SHARD_SIZE",
    "GIT_PATHS",
    "HASH_ALGORITHMS",
    "METHODS",
    "HashingConfig",
    "Progress",
    "hash_file",
]

HASH_ALGORITHMS = ALGORITHMS
DEFAULT_HASH_ALGORITHM = DEFAULT_ALGORITHM
DEFAULT_SHARD_SIZE = 1_000_000_000  # model-signing's default
METHODS: tuple[str, ...] = ("files", "shards")

Progress = Callable[[int, int], None]
"""A progress callback ``(advance_bytes, total_bytes)``; called from worker threads, serialized by a lock."""


@dataclass(frozen=True)
class HashingConfig:
    """Parameters of one model hashing; recorded in the bundle's ``serialization`` so verify can redo it.

    Attributes:
        algorithm: ``sha256`` (default), ``blake3`` or ``blake2b``.
        method: ``files`` (one digest per file) or ``shards`` (one per ``shard_size`` byte range).
        shard_size: shard length in bytes for ``shards``.
        allow_symlinks: follow symlinks that stay inside the model root (default: refuse all symlinks).
        ignore_paths: extra relative paths to leave out (files or directories).
        ignore_git_paths: leave out ``.git``, ``.gitattributes``, ``.github``, ``.gitignore`` at the root.
        tensor_digests: also compute per-tensor digests of ``.safetensors`` files.
        workers: threads to hash with (default: one per core).
    """

    algorithm: str = DEFAULT_HASH_ALGORITHM
    method: str = "files"
    shard_size: int = DEFAULT_SHARD_SIZE
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = field(default_factory=tuple)
    ignore_git_paths: bool = True
    tensor_digests: bool = True
    workers: int = field(default_factory=default_workers)

    def __post_init__(self) -> None:
        if self.algorithm not in HASH_ALGORITHMS:
            raise UsageError(f"unknown hash algorithm {self.algorithm!r}; choose one of {', '.join(HASH_ALGORITHMS)}")
        if self.method not in METHODS:
            raise UsageError(f"unknown serialization method {self.method!r}; choose files or shards")
        if self.shard_size <= 0 or self.workers <= 0:
            raise UsageError("shard size and worker count must be positive")
        for path in self.ignore_paths:
            try:
                check_resource_path(path.rstrip("/"), what="ignore path")
            except FormatError as exc:  # a caller's argument, not a malformed file
                raise UsageError(str(exc), hint="an ignore path is relative to the model root, e.g. logs or "
                                 "data/cache.bin") from exc

    def all_ignored(self) -> tuple[str, ...]:
        """The ignore list as recorded in the bundle (git paths first, then the caller's, deduplicated)."""
        paths = [*(GIT_PATHS if self.ignore_git_paths else ()), *self.ignore_paths]
        return tuple(dict.fromkeys(p.rstrip("/") for p in paths))


def hash_file(path: str | Path, algorithm: str = DEFAULT_HASH_ALGORITHM) -> str:
    """Hex digest of a whole file, streamed in bounded chunks.

    Args:
        path: the file.
        algorithm: one of :data:`HASH_ALGORITHMS`.

    Returns:
        The lowercase hex digest.

    Raises:
        UsageError: unknown algorithm.
        OSError: the file cannot be read.
    """
    p = Path(path)
    return hash_range(p, 0, p.stat().st_size, algorithm).hex()
