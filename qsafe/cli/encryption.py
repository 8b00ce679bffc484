"""``qsafe encrypt`` and ``qsafe decrypt``: age-format files, streams and model directories."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import click

from qsafe.cli._common import emit_json, progress, read_passphrase
from qsafe.cli._options import json_option, passphrase_file_option
from qsafe.errors import IntegrityError, NoIdentityMatchedError, UsageError

_IN = click.argument("input", required=False, type=click.Path(path_type=Path, allow_dash=True))
_OUT = click.option("-o", "--output", type=click.Path(path_type=Path, allow_dash=True),
                    help="Output file (default: standard output).")
_PASSFILE = passphrase_file_option()


def _stdin() -> BinaryIO:
    # Unbuffered: the pipeline reads a pipe on a helper thread (so SIGINT/SIGTERM end the command even while the
    # writer pauses), and an unbuffered file holds no lock that the interpreter's shutdown would wait for.
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # a test runner's in-memory stdin
        return sys.stdin.buffer
    return open(fd, "rb", buffering=0, closefd=False)


def _stdout() -> BinaryIO:
    return sys.stdout.buffer


def _source(input: Path | None) -> Path | BinaryIO:
    return _stdin() if input is None or str(input) == "-" else input


def _target(output: Path | None, *, binary: bool) -> Path | BinaryIO:
    if output is None or str(output) == "-":
        if binary and sys.stdout.isatty():
            raise UsageError("refusing to write binary data to a terminal", hint="use -o FILE, or --armor")
        return _stdout()
    return output


def _size(source: Path | BinaryIO) -> int:
    return source.stat().st_size if isinstance(source, Path) and source.is_file() else 0


_JSON_HELP = "Print a JSON summary on stdout (needs -o FILE: stdout cannot carry both the data and the summary)."


def _json_needs_file(as_json: bool, output: Path | None) -> None:
    if as_json and (output is None or str(output) == "-"):
        raise UsageError("--json prints a summary on standard output: give -o FILE for the data")


def _name(path: Path | None) -> str:
    return "-" if path is None else str(path)


@click.command(short_help="Encrypt a file or model directory to age recipients.")
@click.option("-r", "--recipient", "recipients", multiple=True, metavar="RECIPIENT",
              help="age1pq1… (post-quantum, recommended) or age1… recipient; repeatable.")
@click.option("-R", "--recipients-file", "recipients_files", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path), help="File of recipients, one per line; repeatable.")
@click.option("-p", "--passphrase", "use_passphrase", is_flag=True, help="Encrypt to a passphrase (scrypt) instead.")
@_PASSFILE
@click.option("--work-factor", type=click.IntRange(10, 22), default=18, show_default=True,
              help="scrypt work factor (log2 N) for -p.")
@click.option("-a", "--armor", is_flag=True, help="Write ASCII armor (PEM-like text).")
@_OUT
@json_option(_JSON_HELP)
@_IN
def encrypt(recipients: tuple[str, ...], recipients_files: tuple[Path, ...], use_passphrase: bool,
            passphrase_file: Path | None, work_factor: int, armor: bool, output: Path | None, as_json: bool,
            input: Path | None) -> None:
    """Encrypt INPUT (a file, a model directory, or standard input) in the age format.

    Post-quantum (age1pq1…) and classical (age1…) recipients are never mixed in one file; a passphrase (-p)
    must be the only recipient. A directory is packed as one deterministic tar stream; decrypt it with
    `qsafe decrypt --extract DIR`.
    """
    from qsafe.encryption import encrypt as encrypt_file

    if use_passphrase and (recipients or recipients_files):
        raise UsageError("-p cannot be combined with -r/-R (age's rule: a passphrase is the only recipient)")
    _json_needs_file(as_json, output)
    passphrase = read_passphrase(passphrase_file, confirm=True) if use_passphrase else None
    source = _source(input)
    with progress(_size(source), "encrypting") as advance:
        encrypt_file(source, _target(output, binary=not armor), recipients=recipients,
                     recipients_files=recipients_files, passphrase=passphrase, work_factor=work_factor,
                     armor=armor, progress=advance)
    if as_json:
        assert output is not None
        emit_json({"input": _name(input), "output": str(output), "bytes": output.stat().st_size, "armor": armor,
                   "directory": isinstance(source, Path) and source.is_dir(),
                   "recipients": len(recipients), "recipients_files": [str(f) for f in recipients_files],
                   "passphrase": use_passphrase})


@click.command(short_help="Decrypt an age file (or extract an encrypted directory).")
@click.option("-i", "--identity", "identity_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Identity file (AGE-SECRET-KEY-…; may itself be passphrase-protected); repeatable.")
@_PASSFILE
@click.option("--extract", "extract_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The file holds an encrypted directory: extract it into this new folder.")
@_OUT
@json_option(_JSON_HELP.replace("-o FILE", "-o FILE or --extract DIR"))
@_IN
def decrypt(identity_files: tuple[Path, ...], passphrase_file: Path | None, extract_dir: Path | None,
            output: Path | None, as_json: bool, input: Path | None) -> None:
    """Decrypt INPUT (an age file, binary or armored, or standard input).

    Without -i the file must be passphrase-encrypted. Output files appear only after the last chunk
    authenticated; on standard output only authenticated chunks are released. Exit codes: 13 no identity
    matched, 14 modified or truncated, 3 not a valid age file.
    """
    from qsafe.encryption import decrypt as decrypt_file

    if extract_dir is not None and output is not None:
        raise UsageError("--extract and -o are exclusive")
    if extract_dir is None:
        _json_needs_file(as_json, output)
    ask_identity: Callable[[], bytes] = lambda: read_passphrase(passphrase_file,
                                                                prompt="Passphrase for the identity file")
    ask_file: Callable[[], bytes] = lambda: read_passphrase(passphrase_file)
    source = _source(input)
    target = None if extract_dir is not None else _target(output, binary=True)
    try:
        with progress(_size(source), "decrypting") as advance:
            decrypt_file(source, target, extract=extract_dir, identity_files=identity_files,
                         passphrase=None if identity_files else ask_file, identity_passphrase=ask_identity,
                         progress=advance)
    except NoIdentityMatchedError as err:
        if not identity_files:
            err.hint = "the file is encrypted to recipients, not a passphrase: pass -i IDENTITY_FILE"
        raise
    except IntegrityError as err:
        if target is not None and not isinstance(target, Path):
            err.hint = "the authenticated part already written to standard output must be discarded"
        raise
    if as_json:
        summary: dict[str, object] = {"input": _name(input), "identity_files": [str(f) for f in identity_files]}
        if extract_dir is not None:
            summary.update(extracted=str(extract_dir),
                           files=sum(1 for f in extract_dir.rglob("*") if f.is_file()))
        else:
            assert output is not None
            summary.update(output=str(output), bytes=output.stat().st_size)
        emit_json(summary)
