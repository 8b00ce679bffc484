"""Opening input files safely: never block on a FIFO or device, check the kind of file from the open descriptor.

``open(path)`` on a FIFO blocks until a writer appears (forever), and checking ``path.is_file()`` before opening
leaves a gap in which the path can be swapped. :func:`open_regular` opens with ``O_NONBLOCK`` (a FIFO opens at
once, a device does not wait) and ``O_NOCTTY``, then checks ``fstat`` of the descriptor it got: what is read is
the file that was checked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from qsafe.errors import FormatError

__all__ = ["describe_mode", "open_regular", "read_regular"]

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


def open_regular(path: str | os.PathLike[str], what: str, *, follow_symlinks: bool = True) -> BinaryIO:
    """Open ``path`` for reading, refusing anything that is not a regular file, without ever blocking.

    Args:
        path: the file to open.
        what: what the file is, for messages ("policy", "signed file model.safetensors").
        follow_symlinks: when False, a symbolic link is refused (``O_NOFOLLOW``).

    Returns:
        A buffered binary file object (blocking mode restored: regular files never block).

    Raises:
        FormatError: the file cannot be opened, or is a directory, FIFO, socket or device.
    """
    flags = _FLAGS | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FormatError(f"cannot read {what} {os.fsdecode(path)!r}: {exc.strerror or exc}",
                          hint="check the path and that the file is readable") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FormatError(f"{what} {os.fsdecode(path)!r} is {describe_mode(mode)}, not a regular file",
                              hint="give a regular file; qsafe never reads from pipes, devices or folders here")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
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
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise FormatError(f"cannot read {what} {os.fsdecode(path)!r}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise FormatError(f"{what} {Path(path).name!r} is larger than {max_bytes} bytes",
                          hint="this is not a file qsafe reads, or it was inflated by an attacker")
    return data
