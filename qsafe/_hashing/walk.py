"""Enumerate a model's files the way model-signing 1.1.1 does, with qsafe's stricter path rules.

model-signing hashes every regular file under the model root (``glob("**/*")``), skipping ignored paths, and
orders resources by path *components* (``PurePosixPath`` ordering: ``a/b`` sorts before ``a.txt``). A single-file
model has one resource named ``"."``. We refuse symlinks unless allowed, and even then never follow one out of
the model root; special files (FIFOs, sockets, devices) are always refused.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from qsafe.errors import FormatError, InvalidInputError

# Ignored by default at the model root, as model-signing does (--ignore-git-paths).
GIT_PATHS: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")


@dataclass(frozen=True)
class ModelFile:
    """A file to hash: its resource name (relative POSIX path, or "." for a single-file model) and size."""

    name: str
    path: Path
    size: int


def check_resource_path(name: str, *, what: str = "resource name") -> PurePosixPath:
    """Parse a relative POSIX path from a manifest or an ignore list, refusing anything that could escape.

    Raises:
        FormatError: absolute, empty, ``..``/``.`` components, backslashes or NUL.
    """
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or name.endswith("/"):
        raise FormatError(f"{what} {name!r} is not a relative POSIX path inside the model")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise FormatError(f"{what} {name!r} has an empty, '.' or '..' component; refusing it")
    return PurePosixPath(name)


def order_key(name: str) -> tuple[str, ...]:
    """model-signing's resource order: by path components (``"."`` -> ``()``)."""
    return PurePosixPath(name).parts


def _is_ignored(rel: PurePosixPath, ignored: tuple[PurePosixPath, ...]) -> bool:
    return any(rel == ig or rel.is_relative_to(ig) for ig in ignored)


def _inside(root_real: str, target: str) -> bool:
    return target == root_real or target.startswith(root_real.rstrip(os.sep) + os.sep)


def list_model_files(
    model: Path, *, ignore_paths: tuple[str, ...] = (), allow_symlinks: bool = False
) -> list[ModelFile]:
    """Every regular file of ``model`` (a directory or a single file), in model-signing's resource order.

    Args:
        model: the model directory or file.
        ignore_paths: relative paths (files or directories) to skip, relative to the model root.
        allow_symlinks: follow symlinks that stay inside the model root (default: refuse every symlink).

    Raises:
        InvalidInputError: a refused symlink, a symlink escaping the root, or a special file.
        FormatError: an ignore path that is absolute or contains ``..``.
    """
    ignored = tuple(check_resource_path(p, what="ignore path") for p in ignore_paths)
    if model.is_symlink() and not allow_symlinks:
        raise InvalidInputError(f"{model} is a symlink; pass --allow-symlinks to follow it")
    try:
        st = model.stat()
    except OSError as exc:
        raise InvalidInputError(f"cannot read model {model}: {exc.strerror or exc}") from None
    if stat.S_ISREG(st.st_mode):
        return [ModelFile(".", model, st.st_size)]
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInputError(f"{model} is neither a regular file nor a directory")
    root_real = os.path.realpath(model)
    files: list[ModelFile] = []
    _walk(model, PurePosixPath(), root_real, ignored, allow_symlinks, files, {root_real})
    files.sort(key=lambda f: order_key(f.name))
    return files


def _walk(
    directory: Path,
    rel: PurePosixPath,
    root_real: str,
    ignored: tuple[PurePosixPath, ...],
    allow_symlinks: bool,
    out: list[ModelFile],
    seen_dirs: set[str],
) -> None:
    with os.scandir(directory) as entries:
        for entry in entries:
            child_rel = rel / entry.name
            if _is_ignored(child_rel, ignored):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                if not allow_symlinks:
                    raise InvalidInputError(f"{path} is a symlink; symlinks are refused unless --allow-symlinks")
                target = os.path.realpath(path)
                if not _inside(root_real, target):
                    raise InvalidInputError(f"symlink {path} points outside the model root ({target}); refused")
            st = path.stat()  # follows an (allowed, inside) symlink
            if stat.S_ISDIR(st.st_mode):
                real = os.path.realpath(path)
                if real in seen_dirs:
                    raise InvalidInputError(f"symlink loop at {path}")
                _walk(path, child_rel, root_real, ignored, allow_symlinks, out, seen_dirs | {real})
            elif stat.S_ISREG(st.st_mode):
                out.append(ModelFile(child_rel.as_posix(), path, st.st_size))
            else:
                raise InvalidInputError(f"{path} is a special file (FIFO, socket or device); refused")
