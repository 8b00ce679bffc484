"""Helpers shared by the CLI modules: passphrases, JSON output, progress bars. Click lives only here.

The options several commands share (``--json``, ``--passphrase-file``, ``--policy``) are defined in
:mod:`qsafe.cli._options`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

# the option definitions live in _options; these two names stay importable from here for older imports
from qsafe.cli._options import PASSPHRASE_ENV, passphrase_options, policy_option  # noqa: F401
from qsafe.errors import FormatError, UsageError

F = TypeVar("F", bound=Callable[..., Any])



def read_passphrase(
    passphrase_file: Path | None, *, confirm: bool = False, prompt: str = "Passphrase"
) -> bytes:
    """Get a passphrase from ``--passphrase-file``, ``$QSAFE_PASSPHRASE`` or an interactive prompt.

    Raises:
        UsageError: no source is available (no file, no variable, no terminal) or the passphrase is empty.
    """
    if passphrase_file is not None:
        from qsafe._passphrase import read_passphrase_file

        value = read_passphrase_file(passphrase_file).decode("utf-8")
    elif os.environ.get(PASSPHRASE_ENV):
        value = os.environ[PASSPHRASE_ENV]
    elif sys.stdin.isatty() and sys.stderr.isatty():
        value = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
    else:
        raise UsageError(
            "a passphrase is needed but none was given",
            hint=f"use --passphrase-file FILE or set {PASSPHRASE_ENV} (or --no-passphrase when writing)",
        )
    if not value:
        raise UsageError("the passphrase is empty")
    return value.encode("utf-8")


def load_private_key(path: Path, passphrase_file: Path | None, *, prompt: str = "Key passphrase") -> Any:
    """The private key file at ``path`` (a :class:`qsafe.keys.PrivateKey`): the one way commands open a key. The
    passphrase (``--passphrase-file``, ``$QSAFE_PASSPHRASE`` or a prompt) is asked only when the file is protected.

    Raises:
        KeyFileError, WrongPassphraseError, IntegrityError: see :func:`qsafe.keys.load_private_key`.
        UsageError: the key is protected and no passphrase source is available.
    """
    from qsafe import keys

    return keys.load_private_key(path, lambda: read_passphrase(passphrase_file, prompt=prompt))


def read_input(path: Path, what: str, *, limit: int | None = None) -> bytes:
    """Read an input file named on the command line (all of it, or its first ``limit`` bytes).

    Raises:
        FormatError: the file cannot be read (permissions, I/O error, a directory), named with ``what``.
    """
    try:
        with path.open("rb") as handle:
            return handle.read() if limit is None else handle.read(limit)
    except OSError as exc:
        raise FormatError(f"cannot read {what} {path}: {exc.strerror or exc}",
                          hint="check the path and that the file is readable") from exc


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """``click.echo`` for human-readable output that may carry untrusted names (file and tensor names, model
    names, subjects, client ids): ONE line per call, its control characters (newlines included), separators and bidi
    controls escaped, so a name can neither forge a line nor drive the terminal."""
    from qsafe._text import printable

    click.echo(printable(text), err=err, nl=nl)


def emit_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout (one document, sorted keys)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@contextlib.contextmanager
def progress(total: int, label: str, *, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A progress callback ``advance(n)``; draws a bar on stderr only when stderr is a terminal."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda n: None
        return
    # The bar (and so its clock) starts at the first step, not before the work's setup: click's ETA divides the
    # time since the bar started by the steps done, so seconds of imports and key loading before the first step
    # made a 13-second job show an ETA of 1 h 28 min. The first step is drawn as progress, not timed.
    with contextlib.ExitStack() as stack:
        bars: list[Any] = []

        def advance(n: int) -> None:
            if not bars:
                bars.append(stack.enter_context(click.progressbar(length=total, label=label, file=sys.stderr)))
            bars[0].update(n)

        yield advance


class RegistryChoice(click.Choice):  # type: ignore[type-arg]
    """A choice among what a registry holds *when the command runs* (plugins installed since count).

    ``names`` returns the current names; ``missing`` (optional) turns a value into the error to raise instead of
    click's "invalid choice" (e.g. an algorithm whose plugin is not installed: exit 5 naming the plugin).
    """

    def __init__(self, names: Callable[[], list[str]], missing: Callable[[str], Exception | None] | None = None) -> None:
        self._names, self._missing = names, missing
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> list[str]:
        return list(self._names())

    @choices.setter
    def choices(self, value: Any) -> None:  # click.Choice.__init__ assigns it; the registry is the source
        pass

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if self._missing is not None and isinstance(value, str) and value not in self.choices:
            error = self._missing(value)
            if error is not None:
                raise error
        return super().convert(value, param, ctx)


@contextlib.contextmanager
def step_progress(total: int, label: str, *, unit: str = "round") -> Iterator[Callable[[int], None]]:
    """Progress of long work counted in steps (rounds): a bar on a terminal; otherwise one line per step on
    stderr (``qsafe: LABEL: round 3/60, 12 s elapsed, about 228 s left``), so logs and CI show it is alive."""
    if sys.stderr.isatty():
        with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
            yield bar.update
        return
    start = time.monotonic()
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        elapsed = time.monotonic() - start
        left = f", about {elapsed / done * (total - done):.0f} s left" if 0 < done < total else ""
        click.echo(f"qsafe: {label}: {unit} {done}/{total}, {elapsed:.0f} s elapsed{left}", err=True)

    yield advance
