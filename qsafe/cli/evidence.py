"""``qsafe evidence``: sign and check model evidence (in-toto Statements about a model's manifest root digest).

Light: imports neither torch nor tenseal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from qsafe.cli._common import echo, emit_json
from qsafe.cli._options import json_option, passphrase_file_option
from qsafe.errors import UsageError

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_KEYS = click.Path(exists=True, path_type=Path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def evidence() -> None:
    """Signed model evidence (evaluations, model cards, certificates) that `qsafe verify`/`load` can require."""


def model_digest_options(func: Any) -> Any:
    """``--model-digest`` or ``--model`` + ``--model-key`` (+ ``--signature``)."""
    func = click.option("--signature", type=_FILE, help="The model's signature bundle (default MODEL/model.sig).")(func)
    func = click.option("--model-key", "model_keys", multiple=True, type=_KEYS,
                        help="The model signer's public key (to verify MODEL before naming it).")(func)
    func = click.option("--model", type=click.Path(exists=True, path_type=Path),
                        help="The signed model the evidence is about (verified, then its root digest is used).")(func)
    func = click.option("--model-digest", help="The model's manifest root digest (sha256:HEX).")(func)
    return func


def resolve_model_digest(model_digest: str | None, model: Path | None, model_keys: tuple[Path, ...],
                         signature: Path | None) -> str:
    """The digest from ``--model-digest``, or by verifying ``--model`` with ``--model-key``."""
    from qsafe.bundle import default_signature_path
    from qsafe.model_evidence import model_digest_of

    if (model_digest is None) == (model is None):
        raise UsageError("give exactly one of --model-digest D or --model MODEL (with --model-key)")
    if model_digest is not None:
        return model_digest
    assert model is not None
    if not model_keys:
        raise UsageError("--model needs --model-key (the model must verify before evidence names it)")
    return model_digest_of(model, signature or default_signature_path(model), list(model_keys))


@evidence.command("sign")
@model_digest_options
@click.option("--predicate-type", required=True, help="Predicate type URI, e.g. https://qsafe.dev/model-card/v1.")
@click.option("--predicate", "predicate_path", type=_FILE, required=True, help="The predicate (a JSON object).")
@click.option("--key", "key_path", type=_FILE, required=True, help="The evaluator's private key.")
@passphrase_file_option("Passphrase of a protected --key.", exists=True)
@click.option("--model-name", default="model", show_default=True, help="Subject name (informational).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@json_option("Print the claims as JSON.")
def sign_cmd(model_digest: str | None, model: Path | None, model_keys: tuple[Path, ...], signature: Path | None,
             predicate_type: str, predicate_path: Path, key_path: Path, passphrase_file: Path | None,
             model_name: str, output: Path, as_json: bool) -> None:
    """Sign PREDICATE as evidence about a model (DSSE, ML-DSA)."""
    from qsafe._io import atomic_output, check_writable, refuse_same_file
    from qsafe.cli._common import load_private_key
    from qsafe.model_evidence import claims_of, read_predicate, sign_model_evidence

    refuse_same_file(output, predicate_path, key_path, *model_keys,
                     *(p for p in (signature, passphrase_file) if p is not None))
    check_writable(output)
    digest = resolve_model_digest(model_digest, model, model_keys, signature)
    predicate = read_predicate(predicate_path)
    key = load_private_key(key_path, passphrase_file)
    data = sign_model_evidence(digest, predicate_type, predicate, key, model_name=model_name)
    with atomic_output(output) as handle:
        handle.write(data)
    if as_json:
        emit_json({"output": str(output), "modelDigest": digest, "predicateType": predicate_type,
                   "signer": key.public_key().key_id, "claims": claims_of(predicate_type, predicate)})
    else:  # a creator reports what it wrote (README: "what the CLI prints")
        echo(str(output))


@evidence.command("verify")
@click.argument("evaluation", type=_FILE)
@click.option("--evaluator-key", "evaluator_keys", multiple=True, type=_KEYS, required=True,
              help="Trusted public key(s) of the evaluator.")
@model_digest_options
@json_option("Print the verified claims as JSON.")
def verify_cmd(evaluation: Path, evaluator_keys: tuple[Path, ...], model_digest: str | None, model: Path | None,
               model_keys: tuple[Path, ...], signature: Path | None, as_json: bool) -> None:
    """Verify EVALUATION's signature and that it is about the model; silent on success unless --json."""
    from qsafe.model_evidence import verify_model_evidence

    digest = resolve_model_digest(model_digest, model, model_keys, signature)
    ev = verify_model_evidence(evaluation, list(evaluator_keys), model_digest=digest)
    if as_json:
        emit_json(ev.summary())


@evidence.command("inspect")
@click.argument("evaluation", type=_FILE)
@json_option("Print the statement as JSON.")
def inspect_cmd(evaluation: Path, as_json: bool) -> None:
    """Show EVALUATION's statement and claims WITHOUT verifying it (use `qsafe evidence verify`)."""
    from qsafe.model_evidence import claims_of, parse_model_evidence

    st = parse_model_evidence(evaluation)
    claims = claims_of(st["predicateType"], st["predicate"])
    if as_json:
        emit_json({"verified": False, "statement": st, "claims": claims})
        return
    echo(f"unverified contents of {evaluation} (run `qsafe evidence verify` to check them)")
    echo(f"subject:   {st['subject'][0].get('name')} sha256:{st['subject'][0]['digest']['sha256']}")
    echo(f"predicate: {st['predicateType']}")
    for name, value in sorted(claims.items()):
        echo(f"  {name} = {value}")
