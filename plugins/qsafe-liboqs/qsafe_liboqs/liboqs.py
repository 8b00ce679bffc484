"""Find the liboqs C library WITHOUT importing ``oqs``, then import ``oqs`` quietly.

liboqs-python's ``import oqs`` looks for ``liboqs.so`` (``ctypes.util.find_library``, then
``$OQS_INSTALL_PATH/lib`` or ``~/_oqs/lib``); when it finds none it starts a countdown, tries to ``git clone``
and build liboqs, and raises ``SystemExit``. So this module looks first, in the same places, and raises
:class:`qsafe.errors.MissingDependencyError` (exit 5) with an install hint when there is no library.
It also keeps ``oqs``'s import-time log line ("faulthandler is disabled") off stdout, where ``--json`` output goes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from qsafe.errors import MissingDependencyError

__all__ = ["INSTALL_HINT", "enabled", "find_library", "fixed_randomness", "oqs", "randomness", "require"]

INSTALL_HINT = ("build liboqs 0.16.0 (in a qsafe checkout: `make liboqs`, which installs it into build/oqs-prefix) "
                "and set OQS_INSTALL_PATH to that prefix, or install liboqs 0.16 system-wide")

_lock = threading.Lock()
_module: ModuleType | None = None


def _candidates() -> list[Path]:
    prefixes = []
    if os.environ.get("OQS_INSTALL_PATH"):
        prefixes.append(Path(os.environ["OQS_INSTALL_PATH"]))
    prefixes.append(Path.home() / "_oqs")
    return [p / lib / "liboqs.so" for p in prefixes for lib in ("lib", "lib64")]


def find_library() -> Path | None:
    """Where liboqs is: ``$OQS_INSTALL_PATH/lib{,64}``, ``~/_oqs/lib{,64}``, or the system library path."""
    for path in _candidates():
        if path.is_file():
            return path
    found = ctypes.util.find_library("oqs")
    return Path(found) if found else None


def require() -> Path:
    """The liboqs library path, checked to load.

    Raises:
        MissingDependencyError: liboqs is not installed where liboqs-python looks, or does not load (exit 5).
    """
    path = find_library()
    if path is None:
        raise MissingDependencyError(
            "the liboqs C library was not found ($OQS_INSTALL_PATH/lib, ~/_oqs/lib, or the system library path); "
            "the qsafe-liboqs plugin needs it", hint=INSTALL_HINT)
    try:
        ctypes.CDLL(str(path))
    except OSError as exc:
        raise MissingDependencyError(f"liboqs at {path} does not load: {exc}", hint=INSTALL_HINT) from exc
    return path


def oqs() -> ModuleType:
    """The ``oqs`` module (liboqs-python), imported only once liboqs was found.

    Raises:
        MissingDependencyError: no liboqs, liboqs-python missing, or it refused the library (exit 5).
    """
    global _module
    with _lock:
        if _module is not None:
            return _module
        path = require()
        if path.parent.name in ("lib", "lib64") and not os.environ.get("OQS_INSTALL_PATH"):
            # found in ~/_oqs or a system prefix: tell liboqs-python the same place, so it never goes looking
            os.environ["OQS_INSTALL_PATH"] = str(path.parent.parent)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                import oqs as module  # guard: only after require() found and loaded liboqs
        except ImportError as exc:
            raise MissingDependencyError(f"liboqs-python is not installed: {exc}",
                                         hint="pip install liboqs-python==0.16.0.1") from exc
        except SystemExit as exc:  # liboqs-python gave up on the library after all
            raise MissingDependencyError(f"liboqs-python could not load liboqs at {path}: {exc}",
                                         hint=INSTALL_HINT) from None
        log = logging.getLogger(module.oqs.__name__)
        log.handlers.clear()
        log.setLevel(logging.WARNING)
        loaded: ModuleType = module
        _module = loaded
        return loaded


def enabled(oqs_name: str) -> None:
    """Check that the loaded liboqs was built with ``oqs_name``.

    Raises:
        MissingDependencyError: it was not (a minimal build without that algorithm).
    """
    mod = oqs()
    if oqs_name not in mod.get_enabled_sig_mechanisms():
        raise MissingDependencyError(f"liboqs at {find_library()} was built without {oqs_name}",
                                     hint="rebuild it with that algorithm (qsafe's `make liboqs` enables every "
                                          "algorithm this plugin registers)")


_RNG_LOCK = threading.Lock()
_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)


@contextlib.contextmanager
def randomness(source: Callable[[int], bytes]) -> Iterator[list[int]]:
    """liboqs's random bytes come from ``source(n)`` inside the block; yields [bytes drawn so far].

    A process-wide switch (``OQS_randombytes_custom_algorithm``), held under a lock and put back to the system
    source afterwards: for key generation from a seed and for known-answer tests, never for signing.
    """
    native = oqs().oqs.native()
    drawn = [0]

    def fill(buffer: Any, length: int) -> None:
        chunk = source(length)
        ctypes.memmove(buffer, chunk, length)
        drawn[0] += length

    callback = _CALLBACK(fill)
    with _RNG_LOCK:
        native.OQS_randombytes_custom_algorithm(callback)
        try:
            yield drawn
        finally:
            native.OQS_randombytes_switch_algorithm(ctypes.c_char_p(b"system"))


@contextlib.contextmanager
def fixed_randomness(data: bytes) -> Iterator[list[int]]:
    """:func:`randomness` from the bytes ``data`` in order.

    Raises:
        RuntimeError: after the block, when liboqs asked for more than ``data`` holds (it was then given zeros:
            throw that output away).
    """
    pos, overrun = [0], [False]

    def take(length: int) -> bytes:
        chunk = data[pos[0]:pos[0] + length]
        pos[0] += length
        overrun[0] = overrun[0] or len(chunk) < length
        return chunk.ljust(length, b"\x00")

    with randomness(take) as drawn:
        yield drawn
    if overrun[0]:
        raise RuntimeError(f"liboqs drew {drawn[0]} random bytes, more than the {len(data)} given")
