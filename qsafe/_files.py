"""Opening input files safely: never block on a FIFO or device, check the kind of file from the open descriptor.

``open(path)`` on a FIFO blocks until a writer appears (forever), and checking ``path.is_file()`` before opening
leaves a gap in which the path can be swapped. :func:`open_regular` opens with ``O_NONBLOCK`` (a FIFO opens at
once, a device does not wait) and ``O_NOCTTY``, then checks ``fstat`` of the descriptor it got: what is read is
the file that was checked.
"""

from __future__ import annotations

import errno
import io
import os
import stat

from qsafe.errors import FormatError, QsafeError

__all__ = ["Readable", "describe_mode", "open_regular", "read_regular"]

#: what :func:`open_regular` returns: buffered (default) or raw (``buffering=0``); both have ``readinto``.
Readable = io.BufferedReader | io.FileIO

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)


def describe_mode(mode: int) -> str:
    """A few words naming the kind of file ``mode`` describes ("a directory", "a FIFO", ...)."""
    for test, words in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                        (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link"),
                        (stat.S_ISREG, "a regular file")):
        if test(mode):
            return words
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], what: str, *, follow_symlinks: bool = True,
                 error: type[QsafeError] = FormatError, buffering: int = -1) -> Readable:
    """Open ``path`` for reading, refusing anything that is not a regular file, without ever blocking.

    Args:
        path: the file to open.
        what: what the file is, for messages ("policy", "signed file model.safetensors").
        follow_symlinks: when False, a symbolic link is refused (``O_NOFOLLOW``).
        error: the error class raised (FormatError for documents; InvalidInputError for files of a model).
        buffering: as for :func:`open` (0: unbuffered).

    Returns:
        A binary file object (blocking mode restored: regular files never block).

    Raises:
        FormatError (or ``error``): the file cannot be opened, or is a directory, FIFO, socket, device, or (with
            ``follow_symlinks=False``) a symbolic link.
    """
    flags = _FLAGS | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise error(f"{what} {os.fsdecode(path)} is a symbolic link; refused",
                        hint="give the file itself, not a link to it") from None
        raise error(f"cannot read {what} {os.fsdecode(path)}: {exc.strerror or exc}",
                    hint="check the path and that the file is readable") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{what} {os.fsdecode(path)} is {describe_mode(mode)}, not a regular file",
                        hint="give a regular file; qsafe never reads from pipes, devices or folders here")
        os.set_blocking(fd, True)
        handle: Readable = os.fdopen(fd, "rb", buffering=buffering)  # type: ignore[assignment]
        return handle
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], what: str, *, max_bytes: int) -> bytes:
    """Read a whole regular file of at most ``max_bytes`` bytes (see :func:`open_regular`).

    Raises:
        FormatError: not a regular file, unreadable, or larger than ``max_bytes``.
    """
    with open_regular(path, what) as handle:
        try:
            # read(n) allocates n bytes up front: ask for what the file holds, not for the cap
            expected = min(os.fstat(handle.fileno()).st_size, max_bytes) + 1
            chunks = [handle.read(expected)]
            total = len(chunks[0])
            while total <= max_bytes and chunks[-1]:  # the file grew after fstat: go on, in bounded steps
                chunks.append(handle.read(min(1 << 20, max_bytes + 1 - total)))
                total += len(chunks[-1])
            data = b"".join(chunks) if len(chunks) > 1 else chunks[0]
        except OSError as exc:
            raise FormatError(f"cannot read {what} {os.fsdecode(path)}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise FormatError(f"{what} {os.fsdecode(path)} is larger than {max_bytes} bytes",
                          hint="this is not a file qsafe reads, or it was inflated by an attacker")
    return data
