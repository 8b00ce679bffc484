"""The manifest of a model: every file (or shard) with its digest, plus tensor digests of safetensors files.

Resource names, their order and the root digest are exactly those of model-signing 1.1.1 (``files`` and
``shards`` serialization), so a manifest signed by either tool is checked by the other. On top of that, for each
``.safetensors`` file qsafe records a **header digest** and one **tensor digest** per tensor (see
:func:`tensor_digest`), so a loader can verify exactly the bytes it loads and a verifier can name the tensors
that changed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qsafe import _limits
from qsafe._files import open_regular
from qsafe._hashing.engines import hash_range
from qsafe._hashing.safetensors import (
    SafetensorsHeader,
    TensorDigester,
    TensorInfo,
    digest_safetensors,
    read_header,
)
from qsafe._hashing.walk import ModelFile, check_resource_path, list_model_files, order_key
from qsafe.errors import FormatError, InvalidInputError
from qsafe.hashing import HashingConfig, Progress

__all__ = [
    "Manifest",
    "Resource",
    "SafetensorsDigests",
    "SafetensorsHeader",
    "Serialization",
    "TensorDigest",
    "TensorDigester",
    "TensorInfo",
    "hash_model",
    "read_safetensors_header",
    "resource_file",
    "tensor_digest",
]


@dataclass(frozen=True)
class Resource:
    """One manifest entry: a file (``files``) or a byte range ``path:start:end`` (``shards``)."""

    name: str
    algorithm: str
    digest: str  # lowercase hex


@dataclass(frozen=True)
class TensorDigest:
    """A tensor's name, dtype, shape and the digest of (name, dtype, shape, data bytes)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    digest: str


@dataclass(frozen=True)
class SafetensorsDigests:
    """The header digest and tensor digests of one ``.safetensors`` file."""

    header: str
    tensors: tuple[TensorDigest, ...]

    def by_name(self) -> dict[str, TensorDigest]:
        return {t.name: t for t in self.tensors}


@dataclass(frozen=True)
class Serialization:
    """How the manifest was computed (model-signing's ``predicate.serialization``)."""

    method: str
    hash_type: str
    allow_symlinks: bool
    shard_size: int | None = None
    ignore_paths: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "hash_type": self.hash_type}
        if self.method == "shards":
            out["shard_size"] = self.shard_size
        out["allow_symlinks"] = self.allow_symlinks
        if self.ignore_paths:
            out["ignore_paths"] = list(self.ignore_paths)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Serialization:
        """Parse and check a ``serialization`` object.

        Raises:
            FormatError: unknown method or hash, wrong types, unsafe ignore paths.
        """
        if not isinstance(data, dict) or data.get("method") not in ("files", "shards"):
            raise FormatError("predicate.serialization.method must be 'files' or 'shards'")
        hash_type, allow = data.get("hash_type"), data.get("allow_symlinks")
        shard = _shard_size(data.get("shard_size")) if data["method"] == "shards" else None
        if shard is not None and isinstance(hash_type, str) and hash_type.endswith(f"-sharded-{shard}"):
            hash_type = hash_type[: -len(f"-sharded-{shard}")]  # model-signing 0.3 named the shard algorithm here
        if hash_type not in ("sha256", "blake3", "blake2b") or not isinstance(allow, bool):
            raise FormatError("predicate.serialization needs a known hash_type and a boolean allow_symlinks")
        ignores = data.get("ignore_paths", [])
        if not isinstance(ignores, list) or not all(isinstance(p, str) for p in ignores):
            raise FormatError("predicate.serialization.ignore_paths must be a list of strings")
        for p in ignores:
            check_resource_path(p.rstrip("/"), what="ignore path")
        return cls(data["method"], hash_type, allow, shard, tuple(ignores))

    def hashing_config(self, *, allow_symlinks: bool, tensor_digests: bool = False) -> HashingConfig:
        """The configuration that recomputes this manifest (symlinks only if the caller also allows them)."""
        return HashingConfig(
            algorithm=self.hash_type, method=self.method, shard_size=self.shard_size or 1,
            allow_symlinks=allow_symlinks and self.allow_symlinks,
            ignore_paths=tuple(p.rstrip("/") for p in self.ignore_paths), ignore_git_paths=False,
            tensor_digests=tensor_digests,
        )


# Shard sizes are byte counts; a JSON number past 2**53 could not even be represented exactly as a float.
_MAX_SHARD_SIZE = _limits.MODEL_MAX_SHARD_SIZE


def _shard_size(value: Any) -> int:
    """A positive integer shard size. model-signing writes it through a protobuf ``Struct``, whose numbers are
    doubles, so its bundles say ``1000.0``: an integral float is the same integer; ``1000.5``, ``NaN``, booleans,
    strings and non-positive values are refused."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_SHARD_SIZE:
        raise FormatError("predicate.serialization.shard_size must be a positive integer for shards "
                          f"(got {value!r})")
    return value


def resource_file(name: str, method: str) -> str:
    """The file a resource belongs to (``path`` of ``path:start:end`` for shards)."""
    if method != "shards":
        return name
    path, _, _ = name.rsplit(":", 2)
    return path


def _check_shard_name(name: str) -> None:
    parts = name.rsplit(":", 2)
    if len(parts) != 3 or not all(p.isdigit() and p.isascii() for p in parts[1:]) or int(parts[1]) >= int(parts[2]):
        raise FormatError(f"shard resource name {name!r} is not 'path:start:end' with start < end")
    if parts[0] != ".":
        check_resource_path(parts[0])


def _check_limits(resources: tuple[Resource, ...], tensors: Mapping[str, SafetensorsDigests]) -> None:
    """The same bounds whether the manifest was just hashed (sign) or read from a signed bundle (verify, load)."""
    if len(resources) > _limits.MODEL_MAX_RESOURCES:
        raise FormatError(f"the manifest has {len(resources)} resources, more than {_limits.MODEL_MAX_RESOURCES}")
    total = 0
    for name, digests in tensors.items():
        if len(digests.tensors) > _limits.SAFETENSORS_MAX_TENSORS:
            raise FormatError(f"the manifest lists more than {_limits.SAFETENSORS_MAX_TENSORS} tensors of {name!r}")
        total += len(digests.tensors)
    if total > _limits.MODEL_MAX_TENSORS:
        raise FormatError(f"the manifest lists {total} tensor digests, more than {_limits.MODEL_MAX_TENSORS}",
                          hint="sign very large models with --no-tensor-digests (whole-file digests)")


@dataclass(frozen=True)
class Manifest:
    """A model's signed (or freshly computed) manifest."""

    model_name: str
    serialization: Serialization
    resources: tuple[Resource, ...]
    tensors: Mapping[str, SafetensorsDigests] = field(default_factory=dict)
    legacy: bool = False  # model-signing 0.2's Digests/v0.1 predicate: no root digest was signed

    def __post_init__(self) -> None:
        _check_limits(self.resources, self.tensors)
        names = [r.name for r in self.resources]
        if len(set(names)) != len(names):
            raise FormatError("manifest lists a resource twice")
        for name in names:
            if self.serialization.method == "shards":
                _check_shard_name(name)
            elif name != "." or len(names) != 1:
                check_resource_path(name)
        files = {self.file_of(n) for n in names}
        if not set(self.tensors) <= files:
            raise FormatError("tensor digests name a file that is not in the manifest")

    def file_of(self, resource_name: str) -> str:
        return resource_file(resource_name, self.serialization.method)

    @property
    def root_digest(self) -> str:
        """SHA-256 over the raw resource digests in listed order (model-signing's subject digest)."""
        h = hashlib.sha256()
        for r in self.resources:
            h.update(bytes.fromhex(r.digest))
        return h.hexdigest()

    def files(self) -> dict[str, dict[str, str]]:
        """file path -> {resource name: digest}."""
        out: dict[str, dict[str, str]] = {}
        for r in self.resources:
            out.setdefault(self.file_of(r.name), {})[r.name] = r.digest
        return out


def tensor_digest(
    name: str,
    dtype: str,
    shape: Iterable[int],
    data: bytes | bytearray | memoryview | Iterable[bytes],
    *,
    nbytes: int | None = None,
    algorithm: str = "sha256",
) -> str:
    """THE definition of a safetensors tensor digest (the loader must use this, or :class:`TensorDigester`).

    digest = H(label || u64(len(name)) || name || u64(len(dtype)) || dtype || u64(ndim) || u64(dim)... ||
    u64(nbytes) || data), u64 little-endian, name UTF-8, dtype ASCII as in the header (e.g. ``F32``), label
    ``qsafe/v1 safetensors-tensor\\n``, H the manifest's hash (SHA-256 by default).

    Args:
        name: tensor name as in the header.
        dtype: dtype string as in the header.
        shape: dimensions.
        data: the tensor's data bytes, or an iterable of chunks (then ``nbytes`` is required).
        nbytes: total data length when ``data`` is an iterable of chunks.
        algorithm: hash algorithm of the manifest.

    Returns:
        Lowercase hex digest.

    Raises:
        FormatError: the chunks do not add up to ``nbytes``.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        chunks: Iterable[bytes | bytearray | memoryview] = [data]
        nbytes = memoryview(data).nbytes
    elif nbytes is None:
        raise TypeError("nbytes is required when data is an iterable of chunks")
    else:
        chunks = data
    digester = TensorDigester(name, dtype, shape, nbytes, algorithm)
    for chunk in chunks:
        digester.update(chunk)
    return digester.hexdigest()


def read_safetensors_header(path: str | Path) -> SafetensorsHeader:
    """Read and bound-check the header of a safetensors file (never unpickles, never loads tensor data).

    Raises:
        FormatError: truncated, oversized, malformed, overlapping or non-covering header.
    """
    with open_regular(path, "safetensors file") as handle:
        return read_header(handle, os.fstat(handle.fileno()).st_size)[1]


def hash_model(model: str | Path, config: HashingConfig | None = None, *, progress: Progress | None = None) -> Manifest:
    """Hash a model directory or single file into a :class:`Manifest` (files in parallel, bounded memory).

    Args:
        model: the model directory or file.
        config: how to hash (default :class:`~qsafe.hashing.HashingConfig`).
        progress: optional ``(advance_bytes, total_bytes)`` callback.

    Returns:
        The manifest, resources in model-signing order.

    Raises:
        InvalidInputError: refused symlink or special file; a file changed while hashed.
        FormatError: a ``.safetensors`` file with a malformed header (when tensor digests are on).
    """
    cfg = config or HashingConfig()
    root = Path(model)
    method = "files" if cfg.algorithm == "blake3" else cfg.method  # as model-signing: blake3 is never sharded
    files = list_model_files(root, ignore_paths=cfg.all_ignored() if root.is_dir() else (),
                             allow_symlinks=cfg.allow_symlinks)
    jobs = _plan(files, cfg, method)
    total = sum(size for size, _ in jobs)
    lock = threading.Lock()

    def advance(n: int) -> None:
        if progress is not None:
            with lock:
                progress(n, total)

    results = _run(jobs, cfg.workers, advance)
    _check_unchanged(files)
    resources: list[Resource] = []
    tensors: dict[str, SafetensorsDigests] = {}
    for result in results:
        resources.extend(result[0])
        if result[1] is not None:
            tensors[result[1][0]] = result[1][1]
    resources.sort(key=lambda r: _resource_key(r.name, method))
    name = root.resolve().name if root.name in ("", "..", ".") else root.name
    serialization = Serialization(method, cfg.algorithm, cfg.allow_symlinks,
                                  cfg.shard_size if method == "shards" else None, cfg.all_ignored())
    return Manifest(name, serialization, tuple(resources), tensors)


def _check_unchanged(files: list[ModelFile]) -> None:
    """Refuse a model whose files changed size while hashed: the digests would describe a prefix of them."""
    for f in files:
        try:
            size = f.path.stat().st_size
        except OSError:
            size = -1
        if size != f.size:
            raise InvalidInputError(f"{f.path} changed while it was being hashed; hash it again when it is stable")


def _resource_key(name: str, method: str) -> tuple[Any, ...]:
    if method != "shards":
        return (order_key(name),)
    path, start, end = name.rsplit(":", 2)
    return (order_key(path), int(start), int(end))


_JobResult = tuple[list[Resource], "tuple[str, SafetensorsDigests] | None"]
_Job = tuple[int, Callable[[Callable[[int], None]], _JobResult]]


def _wants_tensors(f: ModelFile, cfg: HashingConfig) -> bool:
    return cfg.tensor_digests and f.name.lower().endswith(".safetensors") or (
        cfg.tensor_digests and f.name == "." and f.path.name.lower().endswith(".safetensors"))


def _plan(files: list[ModelFile], cfg: HashingConfig, method: str) -> list[_Job]:
    jobs: list[_Job] = []
    alg = cfg.algorithm
    # Fusing a single-shard file's shard digest and tensor digests saves a read but puts both hashes on one
    # thread; do it only when there are enough files to keep every worker busy anyway.
    fuse = len(files) >= cfg.workers
    for f in files:
        tensors = _wants_tensors(f, cfg)
        if method == "files":
            jobs.append((f.size, _file_job(f, alg, tensors)))
            continue
        if tensors and fuse and 0 < f.size <= cfg.shard_size:  # one shard = the whole file: one fused read
            jobs.append((f.size, _file_job(f, alg, True, f"{f.name}:0:{f.size}", f"{alg}-sharded-{cfg.shard_size}")))
            continue
        # Several shards are hashed in parallel; a tensor's digest is sequential and may cross shards, so the
        # tensor digests take a second, separate read of the file here.
        start = 0
        while start < f.size:
            end = min(start + cfg.shard_size, f.size)
            jobs.append((end - start, _shard_job(f, alg, start, end, cfg.shard_size)))
            start = end
        if tensors:
            jobs.append((f.size, _tensor_job(f, alg)))
    jobs.sort(key=lambda j: -j[0])  # largest first: better balance across workers
    return jobs


def _tensors_of(f: ModelFile, alg: str, whole: bool, advance: Callable[[int], None]) -> tuple[bytes | None, SafetensorsDigests]:
    try:
        result = digest_safetensors(f.path, alg, whole_file=whole, progress=advance)
    except FormatError as exc:
        raise FormatError(f"{f.path}: {exc}", hint="fix the file, or sign it as opaque bytes with --no-tensor-digests") from None
    entries = tuple(TensorDigest(t.name, t.dtype, t.shape, d) for t, d in result.tensors)
    return result.file_digest, SafetensorsDigests(result.header_digest, tuple(sorted(entries, key=lambda e: e.name)))


def _file_job(
    f: ModelFile, alg: str, tensors: bool, resource: str | None = None, resource_alg: str | None = None
) -> Callable[[Callable[[int], None]], _JobResult]:
    """Whole-file digest (as ``resource``, default the file's name), plus tensor digests if asked: one read."""
    def job(advance: Callable[[int], None]) -> _JobResult:
        if tensors:
            digest, st = _tensors_of(f, alg, True, advance)
            assert digest is not None
            return [Resource(resource or f.name, resource_alg or alg, digest.hex())], (f.name, st)
        return [Resource(f.name, alg, hash_range(f.path, 0, f.size, alg, advance).hex())], None
    return job


def _shard_job(f: ModelFile, alg: str, start: int, end: int, shard_size: int) -> Callable[[Callable[[int], None]], _JobResult]:
    def job(advance: Callable[[int], None]) -> _JobResult:
        digest = hash_range(f.path, start, end, alg, advance).hex()
        return [Resource(f"{f.name}:{start}:{end}", f"{alg}-sharded-{shard_size}", digest)], None
    return job


def _tensor_job(f: ModelFile, alg: str) -> Callable[[Callable[[int], None]], _JobResult]:
    def job(advance: Callable[[int], None]) -> _JobResult:
        return [], (f.name, _tensors_of(f, alg, False, advance)[1])
    return job


def _run(jobs: list[_Job], workers: int, advance: Callable[[int], None]) -> list[_JobResult]:
    """Run jobs on ``workers`` threads, results in job order; the first error stops the rest and is raised.

    A plain thread loop rather than concurrent.futures: that module imports logging, which costs start-up time
    on every ``qsafe verify``.
    """
    if workers == 1 or len(jobs) <= 1:
        return [job(advance) for _, job in jobs]
    results: list[_JobResult | None] = [None] * len(jobs)
    errors: list[BaseException] = []
    pending = iter(enumerate(jobs))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if errors:
                    return
                try:
                    index, (_, job) = next(pending)
                except StopIteration:
                    return
            try:
                results[index] = job(advance)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread below
                with lock:
                    errors.append(exc)
                return

    threads = [threading.Thread(target=worker, name=f"qsafe-hash-{i}", daemon=True)
               for i in range(min(workers, len(jobs)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]
