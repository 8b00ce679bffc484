"""Atomic output: write to a temporary file beside the target, rename into place only on success.

Every command that writes a file goes through :func:`atomic_output`, so a failed or interrupted run leaves no
partial output and never replaces an input.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from qsafe.errors import OutputExistsError, UsageError

__all__ = ["atomic_output", "check_writable", "refuse_same_file"]


def refuse_same_file(output: Path, *inputs: Path) -> None:
    """Raise :class:`OutputExistsError` if ``output`` is one of ``inputs`` (the same file on disk)."""
    if not output.exists():
        return
    for inp in inputs:
        try:
            if inp.exists() and os.path.samefile(output, inp):
                raise OutputExistsError(f"output {output} is the input {inp}; qsafe never overwrites its input")
        except OSError:
            continue


def check_writable(target: Path) -> None:
    """Refuse, before any work, an output path that cannot become a file.

    Raises:
        OutputExistsError: ``target`` is an existing directory.
        UsageError: the folder that would hold ``target`` does not exist or is not a directory.
    """
    if target.is_dir():
        raise OutputExistsError(f"output {target} is a directory", hint="name a file to write, not a directory")
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise UsageError(f"cannot write {target}: the folder {directory} {what}",
                         hint="create the folder first, or choose another output path")


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str], *, inputs: tuple[Path, ...] = (), overwrite: bool = True, mode: int = 0o644
) -> Iterator[BinaryIO]:
    """Open a temporary file next to ``path``; on clean exit fsync and rename it to ``path``.

    Args:
        path: the final output path.
        inputs: paths the output must not be (the input is never overwritten).
        overwrite: when False, an existing ``path`` is an error.
        mode: permission bits of the final file (0o600 for secrets).

    Yields:
        A binary file object to write to.

    Raises:
        OutputExistsError: ``path`` is one of ``inputs``, is a directory, or exists and ``overwrite`` is False.
        UsageError: the output folder does not exist or cannot be written.
    """
    target = Path(path)
    refuse_same_file(target, *inputs)
    if not overwrite and target.exists():
        raise OutputExistsError(f"{target} exists")
    check_writable(target)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".qsafe-tmp", dir=directory)
    except OSError as exc:
        raise UsageError(f"cannot write into {directory}: {exc.strerror}",
                         hint="choose an output path in a folder you can write to") from exc
    os.fchmod(fd, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
