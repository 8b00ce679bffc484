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

from qsafe import _limits
from qsafe._files import describe_mode
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

    The walk is iterative and bounded (:data:`qsafe._limits.MODEL_MAX_DEPTH` levels,
    :data:`qsafe._limits.MODEL_MAX_FILES` files): a hostile folder cannot exhaust the stack or memory.

    Args:
        model: the model directory or file.
        ignore_paths: relative paths (files or directories) to skip, relative to the model root.
        allow_symlinks: follow symlinks that stay inside the model root (default: refuse every symlink).

    Raises:
        InvalidInputError: a refused, dangling, looping or escaping symlink, a special file (FIFO, socket,
            device), a folder nested too deep, too many files, or an unreadable folder.
        FormatError: an ignore path that is absolute or contains ``..``.
    """
    ignored = tuple(check_resource_path(p, what="ignore path") for p in ignore_paths)
    if model.is_symlink() and not allow_symlinks:
        raise InvalidInputError(f"{model} is a symlink; pass --allow-symlinks to follow it")
    st = _stat(model, "model ")
    if stat.S_ISREG(st.st_mode):
        return [ModelFile(".", model, st.st_size)]
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInputError(f"{model} is {describe_mode(st.st_mode)}, neither a regular file nor a directory")
    root_real = os.path.realpath(model)
    files: list[ModelFile] = []
    # (directory, its relative path, real paths of the directories above it: a symlink back up is a loop)
    stack: list[tuple[Path, PurePosixPath, frozenset[str]]] = [(model, PurePosixPath(), frozenset({root_real}))]
    while stack:
        directory, rel, seen = stack.pop()
        if len(rel.parts) >= _limits.MODEL_MAX_DEPTH:
            raise InvalidInputError(f"{directory} is nested more than {_limits.MODEL_MAX_DEPTH} folders deep; refused",
                                    hint="a model folder this deep is not a model; check what was put there")
        for entry in _entries(directory):
            _check_name(entry.name, directory)
            child_rel = rel / entry.name
            if _is_ignored(child_rel, ignored):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                _check_symlink(path, root_real, allow_symlinks)
            st = _stat(path)  # follows an (allowed, inside) symlink
            if stat.S_ISDIR(st.st_mode):
                real = os.path.realpath(path)
                if real in seen:
                    raise InvalidInputError(f"symlink loop at {path}")
                stack.append((path, child_rel, seen | {real}))
            elif stat.S_ISREG(st.st_mode):
                files.append(ModelFile(child_rel.as_posix(), path, st.st_size))
                if len(files) > _limits.MODEL_MAX_FILES:
                    raise InvalidInputError(f"{model} holds more than {_limits.MODEL_MAX_FILES} files; refused")
            else:
                raise InvalidInputError(f"{path} is a special file ({describe_mode(st.st_mode)}); refused")
    files.sort(key=lambda f: order_key(f.name))
    return files


def _check_name(name: str, directory: Path) -> None:
    """A resource name must be valid UTF-8: the bundle is JSON, and a byte Python carries as a lone surrogate
    would make a bundle that verify (rightly) refuses."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        from qsafe._text import printable

        raise InvalidInputError(f"the file name '{printable(name)}' in {printable(directory)} is not valid UTF-8; "
                                "refused", hint="rename the file (model files are named in UTF-8)") from None


def _stat(path: Path, what: str = "") -> os.stat_result:
    try:
        return path.stat()
    except OSError as exc:  # dangling or looping symlink, permission, name too long
        raise InvalidInputError(f"cannot read {what}{path}: {exc.strerror or exc}") from None


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError as exc:
        raise InvalidInputError(f"cannot list {directory}: {exc.strerror or exc}") from None


def _check_symlink(path: Path, root_real: str, allow_symlinks: bool) -> None:
    if not allow_symlinks:
        raise InvalidInputError(f"{path} is a symlink; symlinks are refused unless --allow-symlinks")
    try:
        target = os.path.realpath(path, strict=True)
    except OSError as exc:  # dangling, or a loop of links
        raise InvalidInputError(f"symlink {path} cannot be followed: {exc.strerror or exc}") from None
    if not _inside(root_real, target):
        raise InvalidInputError(f"symlink {path} points outside the model root ({target}); refused")
