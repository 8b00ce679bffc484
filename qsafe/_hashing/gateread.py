"""The load gate's one pass over a model: every file of the signed manifest is read once, hashed as it is read,
and compared with the signed manifest exactly as ``verify`` compares it (changed, missing and extra files).

- Signed ``.safetensors`` files: each tensor's bytes go into their own buffer and are hashed chunk by chunk
  (:func:`~qsafe._hashing.tensorload.read_verified`); the arrays later share those buffers.
- Other files (config, tokenizer, vocabulary, ...): read whole into memory and hashed; the verified bytes are
  returned (``LoadedModel.files``), so a framework never has to read them again from a path an attacker can
  change. Files larger than :data:`qsafe._limits.LOAD_KEEP_MAX_BYTES` (weights in other formats, say) and
  safetensors files not selected for loading are verified by a streaming hash and not kept.
- Optionally every verified file is written into a fresh private directory (mode 0700, files 0600) for
  ``from_pretrained(path)``-style loaders; it is removed again when anything fails.

Hash updates run on a helper thread while the next chunk is read (both cores at work). Nothing is returned
unless every file verified.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from qsafe import _limits
from qsafe._files import open_regular
from qsafe._hashing.compare import mismatch_message
from qsafe._hashing.engines import READ_CHUNK, Hasher, new_hasher
from qsafe._hashing.offload import Offload
from qsafe._hashing.tensorload import read_verified_file
from qsafe._hashing.walk import ModelFile, list_model_files
from qsafe.errors import FormatError, InvalidInputError, ModelMismatchError, OutputExistsError, UsageError
from qsafe.manifest import Manifest

__all__ = ["GateRead", "is_tensor_file", "make_private_dir", "read_model"]


@dataclass
class GateRead:
    """What one verified pass over a model produced."""

    pairs: list[tuple[Any, Any]] = field(default_factory=list)  # (TensorInfo, uint8 buffer) of loaded tensors
    tensor_files: dict[str, bytes] = field(default_factory=dict)  # loaded safetensors file -> its raw header
    files: dict[str, bytes] = field(default_factory=dict)  # verified bytes of the other files (size-capped)
    verified: list[str] = field(default_factory=list)  # every file of the manifest, all verified
    directory: Path | None = None  # the private directory holding every verified file, when asked


def is_tensor_file(name: str, model: Path) -> bool:
    """A file the gate loads tensors from (as signing records tensor digests for it)."""
    return name.lower().endswith(".safetensors") or (name == "." and model.name.lower().endswith(".safetensors"))


def make_private_dir(where: bool | str | os.PathLike[str], model: Path) -> Path:
    """Create a fresh directory only this user can enter (0700) for the verified copies.

    Args:
        where: True for a new temporary directory, or the path of a directory to create (it must not exist).
        model: the model (the directory may not be inside it: it would become an extra file of the model).

    Raises:
        OutputExistsError: the path exists, or lies inside the model directory.
        UsageError: its parent folder does not exist or cannot be written.
    """
    if where is True:
        return Path(tempfile.mkdtemp(prefix="qsafe-verified-"))
    path = Path(os.fsdecode(where))  # type: ignore[arg-type]
    if model.is_dir() and Path(os.path.realpath(path.parent)).is_relative_to(os.path.realpath(model)):
        raise OutputExistsError(f"{path} is inside the model {model}; writing it would change the model")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        raise OutputExistsError(f"{path} exists; the verified copy goes into a new directory",
                                hint="name a directory that does not exist yet") from None
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror or exc}") from None
    os.chmod(path, 0o700)  # whatever the umask
    return path


def _ranges(name: str, size: int, manifest: Manifest) -> list[tuple[str, int, int]]:
    """The resources ``hash_model`` would make of a file of ``size`` bytes: (resource name, start, end)."""
    ser = manifest.serialization
    if ser.method != "shards":
        return [(name, 0, size)]
    step = ser.shard_size or 1
    return [(f"{name}:{s}:{min(s + step, size)}", s, min(s + step, size)) for s in range(0, size, step)]


class _Check:
    """The digests of one file's resources, fed in order; compared with the manifest after the pass."""

    def __init__(self, name: str, size: int, manifest: Manifest) -> None:
        self.name = name
        self.ranges = _ranges(name, size, manifest)
        self.hashers: list[Hasher] = [new_hasher(manifest.serialization.hash_type) for _ in self.ranges]

    def feed(self, offset: int, chunk: memoryview, offload: Offload) -> None:
        stop = offset + len(chunk)
        for (_, begin, end), hasher in zip(self.ranges, self.hashers):
            lo, hi = max(begin, offset), min(end, stop)
            if lo < hi:
                offload.submit(hasher.update, chunk[lo - offset : hi - offset])

    def digests(self) -> dict[str, str]:
        return {r[0]: h.digest().hex() for r, h in zip(self.ranges, self.hashers)}


class _Pass:
    """State of one pass: the offload thread, the mismatches found, the private directory."""

    def __init__(self, model: Path, manifest: Manifest, offload: Offload, directory: Path | None,
                 progress: Callable[[int], None] | None) -> None:
        self.model, self.manifest, self.offload, self.directory = model, manifest, offload, directory
        self.progress = progress
        self.want = manifest.files()
        self.checks: list[_Check] = []
        self.changed: list[str] = []
        self.changed_tensors: dict[str, list[str]] = {}
        self.tensor_pairs: dict[str, list[tuple[Any, Any]]] = {}
        self.out = GateRead(directory=directory)

    def _open(self, f: ModelFile) -> Any:
        return open_regular(f.path, "signed file", follow_symlinks=False, error=InvalidInputError, buffering=0)

    def _target(self, name: str) -> BinaryIO | None:
        if self.directory is None:
            return None
        rel = self.model.name if name == "." else name
        dest = self.directory / rel
        os.makedirs(dest.parent, mode=0o700, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        return os.fdopen(fd, "wb")

    def keep(self, f: ModelFile) -> None:
        """Read a whole (small) file into memory; hash it on the helper thread."""
        with self._open(f) as handle:
            data = handle.read(f.size + 1)
        if len(data) != f.size:
            raise InvalidInputError(f"{f.path} changed size while it was being loaded")
        check = _Check(f.name, f.size, self.manifest)
        check.feed(0, memoryview(data), self.offload)
        self.checks.append(check)
        self.out.files[f.name] = data
        if self.progress is not None:
            self.progress(len(data))

    def stream(self, f: ModelFile) -> None:
        """Verify a file by a streaming hash (bounded memory), copying it to the private directory if asked."""
        check = _Check(f.name, f.size, self.manifest)
        inline = Offload(enabled=False)  # the buffer is reused: hash before the next read
        buf = bytearray(min(READ_CHUNK, max(f.size, 1)))
        view = memoryview(buf)
        offset = 0
        with self._open(f) as handle, contextlib.ExitStack() as stack:
            target = self._target(f.name)
            if target is not None:
                stack.enter_context(target)
            while n := handle.readinto(view):
                if offset + n > f.size:
                    raise InvalidInputError(f"{f.path} grew while it was being loaded")
                check.feed(offset, view[:n], inline)
                if target is not None:
                    target.write(view[:n])
                offset += n
                if self.progress is not None:
                    self.progress(n)
        if offset != f.size:
            raise InvalidInputError(f"{f.path} shrank while it was being loaded")
        self.checks.append(check)

    def tensors(self, f: ModelFile) -> None:
        algorithm = self.manifest.serialization.hash_type
        whole = self.want[f.name].get(f.name) if self.manifest.serialization.method == "files" else None
        try:
            raw, pairs = read_verified_file(f.path, self.manifest.tensors.get(f.name), algorithm=algorithm,
                                            file_digest=whole, progress=self.progress, offload=self.offload)
        except ModelMismatchError as exc:
            self.changed.append(f.name)  # named like verify names it: the tensors, or "(header)"
            if f.name in self.manifest.tensors:
                self.changed_tensors[f.name] = exc.changed_tensors.get(f.name) or ["(header)"]
            return
        self.out.pairs += pairs
        self.out.tensor_files[f.name] = raw
        self.tensor_pairs[f.name] = pairs

    def finish(self, missing: list[str], extra: list[str]) -> None:
        self.offload.wait()
        for check in self.checks:
            if check.digests() != self.want[check.name]:
                self.changed.append(check.name)
        changed = sorted(self.changed)
        if changed or missing or extra:
            raise ModelMismatchError(mismatch_message(changed, missing, extra, self.changed_tensors),
                                     changed=changed, missing=missing, extra=extra,
                                     changed_tensors=self.changed_tensors)


def read_model(
    model: Path,
    manifest: Manifest,
    *,
    ignore: Sequence[str] = (),
    select: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    private_dir: bool | str | os.PathLike[str] | None = None,
) -> GateRead:
    """Read and verify every file of ``model`` against ``manifest`` in one pass.

    Args:
        model: the model directory (or single file).
        manifest: the signed manifest (its signature already verified).
        ignore: paths the manifest's signer ignored, plus the signature file when it lies inside the model.
        select: load tensors only from these signed safetensors files (the others are still verified).
        progress: called with bytes read.
        private_dir: also write every verified file into a new private directory (True: a temporary one).

    Raises:
        ModelMismatchError: any file changed, missing or extra (all named, as ``verify`` names them).
        InvalidInputError: a symlink, special file, or a file that changed while read.
        FormatError: malformed safetensors header; nothing to load.
    """
    listing = list_model_files(model, ignore_paths=tuple(ignore) if model.is_dir() else (), allow_symlinks=False)
    got = {f.name: f for f in listing if _ranges(f.name, f.size, manifest)}  # as hash_model: no empty shards
    want = manifest.files()
    signed_tensors = [n for n in want if is_tensor_file(n, model)]
    if select is not None:
        unknown = sorted(set(select) - set(signed_tensors))
        if unknown:
            raise ModelMismatchError(f"not signed safetensors files of this model: {', '.join(unknown)}",
                                     missing=unknown)
    load = [n for n in signed_tensors if select is None or n in set(select)]
    if not load:
        raise FormatError("the signed manifest lists no .safetensors file to load")
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    directory = make_private_dir(private_dir, model) if private_dir else None
    try:
        with Offload() as offload:
            state = _Pass(model, manifest, offload, directory, progress)
            for name in sorted(set(want) & set(got), key=lambda n: -got[n].size):  # largest first
                f = got[name]
                if name in load:
                    state.tensors(f)
                elif is_tensor_file(name, model) or f.size > _limits.LOAD_KEEP_MAX_BYTES:
                    state.stream(f)
                else:
                    state.keep(f)
            state.finish(missing, extra)
        out = state.out
        out.verified = sorted(want)
        _check_unique(out.pairs)
        if directory is not None:
            _write_kept(directory, model, out, state.tensor_pairs)
        return out
    except BaseException:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        raise


def _check_unique(pairs: list[tuple[Any, Any]]) -> None:
    seen: set[str] = set()
    for info, _ in pairs:
        if info.name in seen:
            raise FormatError(f"tensor {info.name!r} appears in more than one file")
        seen.add(info.name)


def _write_kept(directory: Path, model: Path, out: GateRead, tensors: dict[str, list[tuple[Any, Any]]]) -> None:
    """Write the verified in-memory files and safetensors files (header + verified tensor buffers)."""
    def create(name: str) -> BinaryIO:
        dest = directory / (model.name if name == "." else name)
        os.makedirs(dest.parent, mode=0o700, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        return os.fdopen(fd, "wb")

    for name, data in out.files.items():
        with create(name) as handle:
            handle.write(data)
    for name, raw in out.tensor_files.items():
        with create(name) as handle:
            handle.write(raw)
            for _, buffer in tensors[name]:  # file order: header, then the data area tiled by the tensors
                handle.write(buffer.data)
