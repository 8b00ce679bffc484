"""The options that several commands share, defined once: ``--json``, the passphrase sources, ``--policy``, and
the deprecated spellings of renamed options. Commands import them from here; nothing else defines them.

``--json`` is a boolean flag on every command: it never takes a path. With it, stdout holds exactly one JSON
document: the command's result on success, or on failure the error object of :func:`error_object`
(``{"error", "exit_code", "message", "hint", ...}``, see README "JSON output"), which the command group prints when
the command fails (the human ``qsafe: error:`` lines still go to stderr).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from qsafe.errors import QsafeError

F = TypeVar("F", bound=Callable[..., Any])

PASSPHRASE_ENV = "QSAFE_PASSPHRASE"
JSON_META = "qsafe.json"  # ctx.meta: True once a command's --json was parsed
JSON_ERROR_FIELDS = "qsafe.json_error_fields"  # ctx.meta: fields a command adds to its error object
JSON_LEGACY = "qsafe.json_legacy"  # ctx.meta: --json was the deprecated `--json FILE` (not a request for JSON)


def _remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[JSON_META] = True
    return value


def json_option(help: str = "Print the result as JSON on stdout (on failure: the error object).",
                **error_fields: Any) -> Callable[[F], F]:
    """``--json`` (the parameter ``as_json``): a boolean flag. ``error_fields`` are added to the command's error
    object (``verify``: ``verified=False``)."""

    def decorate(func: F) -> F:
        def remember(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
            if value and error_fields:
                ctx.meta.setdefault(JSON_ERROR_FIELDS, {}).update(error_fields)
            return _remember_json(ctx, param, value)

        return click.option("--json", "as_json", is_flag=True, is_eager=True, callback=remember, help=help)(func)

    return decorate


def add_error_fields(**fields: Any) -> None:
    """Add ``fields`` to the error object printed if the running command fails with ``--json`` (e.g. the signed
    result a denied appraisal produced)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta.setdefault(JSON_ERROR_FIELDS, {}).update(fields)


def json_requested(ctx: click.Context, args: list[str]) -> bool:
    """Whether the failing command was asked for JSON: its ``--json`` was parsed, or (click refused the command
    line before it got there) ``--json`` is among its arguments, before any ``--``."""
    if ctx.meta.get(JSON_META):
        return True
    if ctx.meta.get(JSON_LEGACY):
        return False
    options = args[: args.index("--")] if "--" in args else args
    return "--json" in options


def error_object(err: QsafeError, **extra: Any) -> dict[str, Any]:
    """The one JSON shape of a failure: ``error`` (the class name, see README "Exit codes"), ``exit_code``,
    ``message``, ``hint`` (or null), then what the error carries (a verification's changed files, an appraisal's
    failed claims) and what the command added."""
    from qsafe.errors import AttestationError, ModelMismatchError

    out: dict[str, Any] = {"error": type(err).__name__, "exit_code": err.exit_code,
                           "message": getattr(err, "exact_message", str(err)),  # names exact: JSON escapes them
                           "hint": err.hint or None}
    if isinstance(err, ModelMismatchError):
        out.update(changed=err.changed, missing=err.missing, extra=err.extra, changed_tensors=err.changed_tensors)
    if isinstance(err, AttestationError):
        out["failed_claims"] = err.failed_claims
    out.update(extra)
    return out


def print_error_object(ctx: click.Context, err: QsafeError) -> None:
    """Print the error object on stdout (the command group calls this when a ``--json`` command fails)."""
    import json

    fields = dict(ctx.meta.get(JSON_ERROR_FIELDS, {}))
    try:
        click.echo(json.dumps(error_object(err, **fields), indent=2, sort_keys=True, default=str))
    except OSError:  # stdout gone (a closed pipe): the stderr lines and the exit code still tell
        pass


def deprecated_alias(old: str, new: str) -> None:
    """One line on stderr: ``old`` still works, for now, as ``new``."""
    click.echo(f"qsafe: deprecated: {old} is now {new}; the old spelling will be removed in a later release",
               err=True)


class InternalError(QsafeError):
    """A bug (an unexpected exception), as its error object names it; exit 1, which nothing else uses."""

    exit_code = 1


def passphrase_file_option(help: str = f"Read the passphrase from this file (first line). Also: ${PASSPHRASE_ENV}, "
                                       "or a prompt.", *, exists: bool = False) -> Callable[[F], F]:
    """``--passphrase-file FILE`` (the parameter ``passphrase_file``): secrets never come from argv."""
    return click.option("--passphrase-file", type=click.Path(dir_okay=False, exists=exists, path_type=Path),
                        help=help)


def passphrase_options(func: F) -> F:
    """Add ``--passphrase-file`` and ``--no-passphrase``: for commands that write a secret."""
    func = click.option(
        "--no-passphrase",
        is_flag=True,
        help="Write the secret unprotected (explicit opt-out; the default protects it with a passphrase).",
    )(func)
    return passphrase_file_option()(func)


def _policy_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    """``--policy NAME|FILE``: a shipped policy's name (``nvidia-hopper-cc``) or a policy file's path.

    An argument without a path separator that does not end in ``.json`` is a name (see
    :mod:`qsafe.attestation.shipped`); the value handed on is always a path.
    """
    if value is None:
        return None
    from qsafe.attestation.shipped import is_policy_name, policy_names, policy_path

    if is_policy_name(value):
        if value not in policy_names():
            raise click.BadParameter(f"no shipped policy is named {value!r} (shipped: {', '.join(policy_names())}; "
                                     f"see `qsafe attest policies`); for a file of that name write ./{value}",
                                     ctx, param)
        return policy_path(value)
    path = Path(value)
    if not path.is_file():
        raise click.BadParameter(f"policy file {value!r} does not exist" if not path.exists()
                                 else f"{value!r} is not a file", ctx, param)
    return path


def policy_option(help: str, *, required: bool = False) -> Callable[[F], F]:
    """``--policy NAME|FILE`` (a shipped policy by name, or a file); the command receives a Path or None."""
    return click.option("--policy", metavar="NAME|FILE", required=required, callback=_policy_callback, help=help)


_FLAG = "\0json-flag"  # what --json holds when given without a value


def json_flag_or_legacy_path(replacement: str, help: str) -> Callable[[F], F]:
    """``--json`` as the flag every command has, still accepting the old ``--json FILE`` of a command that once
    wrote a file with it: the command receives ``as_json`` as True, False, or (deprecated) the Path, and a
    deprecation line naming ``replacement`` is printed on stderr when the old form is used."""

    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> bool | Path:
        if value is None:
            return False
        if value == _FLAG:
            ctx.meta[JSON_META] = True
            return True
        ctx.meta[JSON_LEGACY] = True
        deprecated_alias(f"--json {value}", f"{replacement} {value}")
        return Path(value)

    def decorate(func: F) -> F:
        return click.option("--json", "as_json", is_flag=False, flag_value=_FLAG, default=None, metavar="",
                            callback=convert, help=help)(func)

    return decorate
