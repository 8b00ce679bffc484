"""Where a passphrase comes from, in the library: bytes, a string, a callable asked only when a secret turns out
to be protected, or a file's first line. The library reads no environment variable and never prompts; the CLI
adds ``$QSAFE_PASSPHRASE`` and the prompt (:func:`qsafe.cli._common.read_passphrase`) by passing a callable.

Every loader of a protected secret (signing keys, age identity files, secret HE contexts) takes a
:data:`PassphraseSource` and calls :func:`resolve` only after it saw that the file is protected.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from qsafe.errors import UsageError

__all__ = ["PassphraseSource", "read_passphrase_file", "resolve"]

PassphraseSource: TypeAlias = "bytes | str | Callable[[], bytes | str] | None"


def read_passphrase_file(path: str | os.PathLike[str]) -> bytes:
    """The first line of a passphrase file (UTF-8, without its line ending).

    Raises:
        UsageError: the file cannot be read or is not UTF-8 text.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read passphrase file {os.fspath(path)}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"passphrase file {os.fspath(path)} is not UTF-8 text",
                         hint="write the passphrase as UTF-8 text on the file's first line") from exc
    return lines[0].encode("utf-8") if lines else b""


def resolve(source: PassphraseSource, passphrase_file: str | os.PathLike[str] | None = None) -> bytes | None:
    """The passphrase ``source`` or ``passphrase_file`` gives (None when neither does). Call it only once the
    secret is known to be protected: a callable source may prompt.

    Raises:
        UsageError: both were given, or the file cannot be read.
        TypeError: ``source`` is not bytes, str, a callable returning one, or None.
    """
    if source is not None and passphrase_file is not None:
        raise UsageError("give passphrase or passphrase_file, not both")
    if passphrase_file is not None:
        return read_passphrase_file(passphrase_file)
    value = source() if callable(source) else source
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"passphrase must be bytes, str or a callable returning one, not {type(value).__name__}")
