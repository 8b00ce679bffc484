"""Directory mode: a model directory encrypts as one deterministic tar stream, and extracts safely.

The tar is reproducible (sorted POSIX paths, mtime 0, uid/gid 0, no owner names, modes 0644/0755, PAX
format), holds only regular files and directories (symlinks and special files are refused when writing), and
is produced lazily so encryption stays in constant memory. Extraction refuses absolute paths, ``..``, links and
special entries, and writes into a fresh temporary directory renamed to DIR only after the whole stream (the
last chunk included) authenticated.

Extraction cannot amplify: sparse entries of every GNU/PAX variant (old GNU ``S`` type, PAX 0.0, 0.1 and 1.0
``GNU.sparse.*`` records) are refused, since a few bytes can declare gigabytes of holes; and the bytes written
are counted against the bytes of tar stream consumed, which must always be the larger. Entries nested deeper
than :data:`qsafe._limits.ARCHIVE_MAX_DEPTH` folders, or named with more than
:data:`qsafe._limits.ARCHIVE_MAX_NAME_BYTES` bytes, are refused before anything is created.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from qsafe import _limits
from qsafe.errors import FormatError, OutputExistsError, UsageError

BLOCK = 512
_READ = 1 << 20


def _entries(root: Path) -> Iterator[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            path = base / name
            mode = path.lstat().st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise UsageError(f"{path} is a link or special file; directory mode packs only files and folders")
            yield path.relative_to(root).as_posix(), path


def _info(name: str, path: Path) -> tarfile.TarInfo:
    st = path.lstat()
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISDIR(st.st_mode):
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = st.st_size, 0o755 if st.st_mode & 0o100 else 0o644
    return info


def tar_stream(root: Path) -> Iterator[bytes]:
    """Yield a deterministic tar of directory ``root`` block by block.

    Raises:
        UsageError: ``root`` holds a symlink or special file, or a file changed size while being read.
    """
    for name, path in sorted(_entries(root)):
        info = _info(name, path)
        yield info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")
        if info.isdir():
            continue
        left = info.size
        with open(path, "rb") as handle:
            while left:
                data = handle.read(min(_READ, left))
                if not data:
                    raise UsageError(f"{path} shrank while it was being encrypted")
                left -= len(data)
                yield data
        if info.size % BLOCK:
            yield b"\0" * (BLOCK - info.size % BLOCK)
    yield b"\0" * (2 * BLOCK)


class _Counted:
    """The decrypted tar stream, counting the bytes tarfile consumed from it."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.consumed += len(data)
        return data


def _is_sparse(member: tarfile.TarInfo) -> bool:
    # tarfile turns every sparse variant into member.sparse; the type and the raw PAX keys are checked too, so a
    # variant tarfile does not decode (or decodes differently in another version) is refused all the same.
    return (member.type == tarfile.GNUTYPE_SPARSE or member.sparse is not None
            or any(key.startswith("GNU.sparse.") for key in member.pax_headers))


def _safe_target(base: Path, member: tarfile.TarInfo) -> Path:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or not name.parts or "\\" in member.name:
        raise FormatError(f"the archive entry {member.name!r} would land outside the extraction directory")
    if _is_sparse(member):
        raise FormatError(f"the archive entry {member.name[:200]!r} is a sparse file; refused (a few bytes could "
                          "declare any size of holes)", hint="qsafe writes directory archives without sparse files")
    if not (member.isfile() or member.isdir()):
        raise FormatError(f"the archive entry {member.name[:200]!r} is a link or special file; refused")
    if len(name.parts) > _limits.ARCHIVE_MAX_DEPTH or len(member.name.encode("utf-8", "surrogateescape")) > (
            _limits.ARCHIVE_MAX_NAME_BYTES):
        raise FormatError(f"the archive entry {member.name[:200]!r}... is nested more than "
                          f"{_limits.ARCHIVE_MAX_DEPTH} folders deep or its name is longer than "
                          f"{_limits.ARCHIVE_MAX_NAME_BYTES} bytes; refused")
    target = base.joinpath(*name.parts)
    if os.path.commonpath([base, target.resolve()]) != str(base):
        raise FormatError(f"the archive entry {member.name!r} would land outside the extraction directory")
    return target


class _Budget:
    """Bytes written so far must never exceed the bytes of tar stream consumed (no amplification)."""

    def __init__(self, counted: _Counted) -> None:
        self.counted, self.written = counted, 0

    def spend(self, n: int, name: str) -> None:
        self.written += n
        if self.written > self.counted.consumed:
            raise FormatError(f"extracting {name[:200]!r} would write more bytes than the archive holds; refused")


def _extract_member(tar: tarfile.TarFile, base: Path, member: tarfile.TarInfo, budget: _Budget) -> None:
    target = _safe_target(base, member)
    try:
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is None:
            raise FormatError(f"the archive entry {member.name[:200]!r} has no data")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     0o755 if member.mode & 0o100 else 0o644)
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(_READ):
                budget.spend(len(chunk), member.name)
                out.write(chunk)
    except OSError as exc:
        _entry_error(member, exc)


def _entry_error(member: tarfile.TarInfo, exc: OSError) -> None:
    """An entry that cannot be created: its name is the archive's fault; a full disk is not."""
    if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL):
        raise FormatError(f"the archive entry {member.name[:200]!r} cannot be extracted ({exc.strerror}): "
                          "it repeats or collides with another entry, or its name is unusable") from None
    raise UsageError(f"cannot write the extracted entry {member.name[:200]!r}: {exc.strerror or exc}",
                     hint="check the free space and permissions of the extraction folder; nothing was kept") from None


def extract(stream: BinaryIO, destination: Path, drain: Iterator[bytes] | None = None) -> None:
    """Extract a tar read from ``stream`` into ``destination`` (which must not exist, or be an empty folder).

    Args:
        stream: the decrypted tar stream (it raises IntegrityError if the ciphertext was modified).
        destination: the folder to create; it appears only after the whole stream authenticated.
        drain: the chunk iterator behind ``stream``, exhausted after the tar ends so the final chunk is checked.

    Raises:
        OutputExistsError: ``destination`` exists and is not empty.
        FormatError: an entry is unsafe (absolute, ``..``, link, special file) or the tar is malformed.
    """
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise OutputExistsError(f"{destination} exists and is not an empty directory")
    parent = destination.resolve().parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".qsafe-tmp", dir=parent)).resolve()
    counted = _Counted(stream)
    budget = _Budget(counted)
    try:
        try:
            with tarfile.open(fileobj=counted, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    _extract_member(tar, tmp, member, budget)
        except (tarfile.TarError, UnicodeError, ValueError, OverflowError) as exc:
            raise FormatError(f"the decrypted data is not a valid tar archive: {exc}") from None
        for _ in drain or ():
            pass
        tmp.chmod(0o755)  # mkdtemp's 0700 kept unauthenticated contents private until now
        with contextlib.suppress(FileNotFoundError):
            destination.rmdir()
        os.replace(tmp, destination)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
