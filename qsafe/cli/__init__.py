"""The ``qsafe`` command line. The only package that imports click.

Commands are loaded lazily: ``qsafe verify`` imports the signing modules only, never torch or tenseal.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from qsafe import __version__
from qsafe.errors import QsafeError

# command name -> "module:attribute"; each module is imported only when its command runs.
COMMANDS: dict[str, str] = {
    "keygen": "qsafe.cli.keys:keygen",
    "sign": "qsafe.cli.signing:sign",
    "verify": "qsafe.cli.signing:verify",
    "inspect": "qsafe.cli.signing:inspect_cmd",
    "encrypt": "qsafe.cli.encryption:encrypt",
    "decrypt": "qsafe.cli.encryption:decrypt",
    "fl": "qsafe.cli.federated:fl",
    "attest": "qsafe.cli.attestation:attest",
    "load": "qsafe.cli.loading:load",
    "evidence": "qsafe.cli.evidence:evidence",
    "pki": "qsafe.cli.pki:pki",
    "robust": "qsafe.cli.robust:robust",
    "pipeline": "qsafe.cli.pipeline:pipeline",
    "dataset": "qsafe.cli.pipeline:dataset",
}

# One-line help shown by `qsafe --help` without importing any command module.
SHORT_HELP: dict[str, str] = {
    "keygen": "Generate a signing key pair or an encryption identity.",
    "sign": "Sign a model file or directory (writes model.sig).",
    "verify": "Verify a model against its signature; silent on success.",
    "inspect": "Show a signature bundle's signers, algorithms and digests.",
    "encrypt": "Encrypt a file or model directory to age recipients.",
    "decrypt": "Decrypt an age file (or extract an encrypted directory).",
    "fl": "Homomorphically encrypted federated updates and robust aggregation.",
    "attest": "Collect and appraise attestation evidence against a policy.",
    "load": "Verify, attest, then load a model's tensors (the gate).",
    "evidence": "Sign and check signed model evidence (evaluations, model cards).",
    "pki": "A small post-quantum CA: root, intermediate and code-signing certificates.",
    "robust": "Attack, harden and certify a classifier; sign the evaluation.",
    "pipeline": "Run the hardened fraud pipeline: signed data, audits, DP-SGD, theft defenses, gated release.",
    "dataset": "Sign a dataset's row-level manifest or verify a copy against it (changed rows named).",
}


DEBUG_ENV = "QSAFE_DEBUG"
# click >= 8.2 raises this UsageError to print a group's help when no subcommand is given.
_NO_ARGS_IS_HELP: tuple[type[Exception], ...] = tuple(
    cls for cls in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if cls is not None)


def render_error(err: QsafeError) -> None:
    """Write ``qsafe: error: …`` and ``qsafe: hint: …`` to stderr, every line terminal-safe (messages carry
    untrusted names: control characters and separators are escaped; only ``\n`` separates lines)."""
    from qsafe._text import printable, printable_lines

    for line in printable_lines(str(err).strip("\n")) if str(err).strip("\n") else [type(err).__name__]:
        click.echo(f"qsafe: error: {line}", err=True)
    if err.hint:
        click.echo(f"qsafe: hint: {printable(err.hint)}", err=True)


def render_usage_error(err: click.UsageError) -> None:
    """Click's own argument errors (missing file, bad choice) in qsafe's ``error:``/``hint:`` form, exit 2."""
    render_error(_usage_error(err))


def render_internal_error(exc: Exception) -> None:
    """An unexpected exception is a bug: one clear line naming it and where it happened, never a bare traceback.

    The bug stays visible (exit 1, a code no QsafeError uses; "this is a bug" in the hint; the innermost frame
    is named) and ``QSAFE_DEBUG=1`` re-raises it for the full traceback.
    """
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    message = str(exc).splitlines()[0] if str(exc) else ""
    render_error(QsafeError(f"internal error: {type(exc).__name__}{': ' + message if message else ''}{where}",
                            hint=f"this is a bug in qsafe; please report it with the output of {DEBUG_ENV}=1 "
                                 "and the same command"))


ARGS_META = "qsafe.args"


def _usage_error(err: click.UsageError) -> QsafeError:
    """Click's own argument error as the QsafeError it is rendered as (exit 2)."""
    from qsafe.errors import UsageError

    command = err.ctx.command_path if err.ctx is not None else "qsafe"
    return UsageError(err.format_message(), hint=f"run `{command} --help`")


def _json_error(ctx: click.Context, err: QsafeError) -> None:
    """With --json, the failure's error object on stdout (qsafe.cli._options.error_object: one shape for every
    command); the ``qsafe: error:`` lines stay on stderr."""
    from qsafe.cli._options import json_requested, print_error_object

    if json_requested(ctx, ctx.meta.get(ARGS_META, [])):
        print_error_object(ctx, err)


class Terminated(BaseException):
    """SIGTERM (or SIGHUP) arrived. A BaseException, like KeyboardInterrupt, so that no ``except Exception``
    swallows it and every ``finally`` / ``except BaseException`` clean-up runs (atomic outputs delete their
    hidden temporary file, extraction and verified-copy folders are removed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, _frame: Any) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` while a command runs (main thread only), then restore."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, _raise_terminated) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _interrupted(ctx: click.Context, signum: int) -> None:
    """Exit 128 + the signal's number after every clean-up ran (130 for SIGINT, 143 for SIGTERM)."""
    name = signal.Signals(signum).name
    click.echo(f"qsafe: error: interrupted by {name}; no output file was left (outputs appear only when complete)",
               err=True)
    ctx.exit(128 + signum)


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use and whose QsafeErrors become exit codes."""

    def __init__(
        self, *args: Any, lazy: dict[str, str] | None = None, short_help: dict[str, str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})
        self.lazy_help = dict(short_help or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.lazy_help.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attr = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault(ARGS_META, list(args))  # the outermost group's: the whole command line
        return super().parse_args(ctx, args)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as err:  # `qsafe --bogus`: the top-level options, parsed before invoke
            if isinstance(err, _NO_ARGS_IS_HELP):
                raise
            render_usage_error(err)
            raise click.exceptions.Exit(err.exit_code) from err

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _signals():
                return super().invoke(ctx)
        except KeyboardInterrupt:  # SIGINT: not exit 1, which the README reserves for bugs
            _interrupted(ctx, signal.SIGINT)
        except Terminated as term:
            _interrupted(ctx, term.signum)
        except QsafeError as err:
            render_error(err)
            _json_error(ctx, err)
            ctx.exit(err.exit_code)
        except click.UsageError as err:
            if isinstance(err, _NO_ARGS_IS_HELP):
                raise  # `qsafe fl` alone: click prints the group's help, which is not an error message
            render_usage_error(err)
            _json_error(ctx, _usage_error(err))
            ctx.exit(err.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_ENV) or (isinstance(exc, OSError) and exc.errno == errno.EPIPE):
                raise  # QSAFE_DEBUG=1: the full traceback; EPIPE: click's own quiet handling of `| head`
            render_internal_error(exc)
            from qsafe.cli._options import InternalError

            _json_error(ctx, InternalError(f"internal error: {type(exc).__name__}",
                                           hint=f"this is a bug in qsafe; please report it with the output of "
                                                f"{DEBUG_ENV}=1 and the same command"))
            ctx.exit(1)


@click.group(cls=LazyGroup, lazy=COMMANDS, short_help=SHORT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qsafe")
def main() -> None:
    """qsafe: post-quantum model signing, age-format encryption, encrypted federated updates and attested loading.

    Exit codes: 0 ok, 2 usage, 3-6 could not check, 10-19 checked and rejected (see README).
    """


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())  # pragma: no cover
