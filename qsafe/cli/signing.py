"""``qsafe sign``, ``qsafe verify`` and ``qsafe inspect``: thin wrappers over qsafe.signing / qsafe.verifying.

This module must stay light: ``qsafe verify`` never imports torch or tenseal (a test checks sys.modules).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from qsafe.cli._common import PASSPHRASE_ENV, emit_json, policy_option, progress, read_passphrase
from qsafe.errors import AttestationError, ModelMismatchError, QsafeError, UsageError


@contextlib.contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A library progress callback ``(advance, total)`` drawing a bar on a terminal, opened on first use."""
    stack = contextlib.ExitStack()
    state: dict[str, Callable[[int], None]] = {}

    def callback(advance: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = stack.enter_context(progress(total, label))
        state["bar"](advance)

    with stack:
        yield callback


def _load_private_key(path: Path, passphrase_file: Path | None) -> Any:
    from qsafe import keys

    if keys.is_protected_key_file(path):
        return keys.load_private_key(path, passphrase=read_passphrase(passphrase_file, prompt="Key passphrase"))
    return keys.load_private_key(path)


@click.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Private key file (PREFIX.key).")
@click.option("--signature", type=click.Path(path_type=Path),
              help="Where to write the bundle [default: model.sig in the model dir / beside the file].")
@click.option("--hash", "algorithm", type=click.Choice(["sha256", "blake3"]), default="sha256", show_default=True,
              help="Digest algorithm for files, shards and tensors.")
@click.option("--method", type=click.Choice(["files", "shards"]), default="files", show_default=True,
              help="One digest per file, or per shard of --shard-size bytes (as model-signing).")
@click.option("--shard-size", type=click.IntRange(min=1), default=1_000_000_000, show_default=True)
@click.option("--ignore-path", "ignore_paths", multiple=True, help="Relative path to leave out (repeatable).")
@click.option("--no-ignore-git-paths", is_flag=True, help="Also sign .git, .gitattributes, .github, .gitignore.")
@click.option("--allow-symlinks", is_flag=True, help="Follow symlinks that stay inside the model root.")
@click.option("--no-tensor-digests", is_flag=True, help="Do not record per-tensor digests of .safetensors files.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              help=f"Passphrase of a protected key (first line). Also: ${PASSPHRASE_ENV}, or a prompt.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def sign(model: Path, key_path: Path, signature: Path | None, algorithm: str, method: str, shard_size: int,
         ignore_paths: tuple[str, ...], no_ignore_git_paths: bool, allow_symlinks: bool, no_tensor_digests: bool,
         passphrase_file: Path | None, as_json: bool) -> None:
    """Sign MODEL (a directory or a file) with a post-quantum (or composite, or ECDSA) key."""
    from qsafe.hashing import HashingConfig
    from qsafe.signing import default_signature_path
    from qsafe.signing import sign as sign_model

    key = _load_private_key(key_path, passphrase_file)
    config = HashingConfig(algorithm=algorithm, method=method, shard_size=shard_size,
                           ignore_paths=tuple(p.rstrip("/") for p in ignore_paths),
                           ignore_git_paths=not no_ignore_git_paths, allow_symlinks=allow_symlinks,
                           tensor_digests=not no_tensor_digests)
    target = signature or default_signature_path(model)
    with _progress_bar("hashing") as bar:
        manifest = sign_model(model, key, signature=target, config=config, progress=bar)
    if as_json:
        emit_json({"signature": str(target), "algorithm": key.algorithm, "key_id": key.public_key().key_id,
                   "root_digest": manifest.root_digest, "resources": len(manifest.resources),
                   "tensor_files": sorted(manifest.tensors)})
    else:
        click.echo(f"{target}")


def _report(verification: Any) -> dict[str, Any]:
    m = verification.manifest
    return {"verified": True, "key_id": verification.key_id, "algorithm": verification.algorithm,
            "post_quantum": verification.post_quantum, "model_name": m.model_name, "root_digest": m.root_digest,
            "files": len(m.files()), "tensors": sum(len(t.tensors) for t in m.tensors.values()),
            "model_evidence": [e.summary() for e in verification.model_evidence]}


def _failure(err: QsafeError) -> dict[str, Any]:
    out: dict[str, Any] = {"verified": False, "error": type(err).__name__, "exit_code": err.exit_code,
                           "message": str(err)}
    if isinstance(err, ModelMismatchError):
        out.update(changed=err.changed, missing=err.missing, extra=err.extra, changed_tensors=err.changed_tensors)
    if isinstance(err, AttestationError):
        out["failed_claims"] = err.failed_claims
    return out


@click.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--signature", type=click.Path(path_type=Path),
              help="The bundle [default: model.sig in the model dir / beside the file].")
@click.option("--key", "key_paths", multiple=True, required=True, type=click.Path(exists=True, path_type=Path),
              help="Trusted public key file or directory of *.pub (repeatable).")
@click.option("--allow-classical", is_flag=True, help="Accept classical-only (ECDSA, model-signing) signatures.")
@click.option("--allow-symlinks", is_flag=True, help="Follow in-root symlinks (only if the signer allowed them).")
@click.option("--evaluation", "evaluations", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Signed model evidence about MODEL (e.g. from `qsafe robust report --sign`; repeatable).")
@click.option("--evaluator-key", "evaluator_keys", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Trusted public key of the evaluator(s) that signed --evaluation (file or directory; repeatable).")
@policy_option("Policy whose model.* rules the evidence must satisfy (deny: exit 15).")
@click.option("--at", "at", help="Time for the policy's rules (ISO-8601; default now).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report (success and failure).")
def verify(model: Path, signature: Path | None, key_paths: tuple[Path, ...], allow_classical: bool,
           allow_symlinks: bool, evaluations: tuple[Path, ...], evaluator_keys: tuple[Path, ...],
           policy: Path | None, at: str | None, as_json: bool) -> None:
    """Verify MODEL against its signature (and its signed evidence against --policy). Silent on success."""
    from qsafe.bundle import default_signature_path
    from qsafe.policy import VerificationPolicy
    from qsafe.verifying import verify as verify_model

    if evaluations and not evaluator_keys:
        raise UsageError("--evaluation needs --evaluator-key (the evaluator's public key)")
    if evaluator_keys and not evaluations and policy is None:
        raise UsageError("--evaluator-key needs --evaluation FILE")
    when = None
    if at is not None:
        from qsafe.cli.attestation import parse_time_option

        when = parse_time_option(at)
    sig_policy = VerificationPolicy(allow_classical=allow_classical)
    try:
        with _progress_bar("verifying") as bar:
            result = verify_model(model, signature or default_signature_path(model), list(key_paths),
                                  policy=sig_policy, allow_symlinks=allow_symlinks, progress=bar,
                                  evaluations=list(evaluations), evaluator_keys=list(evaluator_keys) or None,
                                  evidence_policy=policy, at=when)
    except QsafeError as err:
        if as_json:
            emit_json(_failure(err))
        raise
    if as_json:
        emit_json(_report(result))


def _inspect_data(path: Path) -> dict[str, Any]:
    from qsafe.bundle import manifest_from_statement, read_bundle

    bundle = read_bundle(path)
    manifest = manifest_from_statement(bundle.statement())
    return {
        "verified": False,
        "signer": {"key_hint": bundle.key_hint, "key_id": bundle.keyid, "algorithm": bundle.key_details},
        "model_name": manifest.model_name,
        "root_digest": {"sha256": manifest.root_digest},
        "serialization": manifest.serialization.to_dict(),
        "resources": [{"name": r.name, "algorithm": r.algorithm, "digest": r.digest} for r in manifest.resources],
        "tensors": {f: {"header": d.header, "tensors": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape),
                                                          "digest": t.digest} for t in d.tensors]}
                    for f, d in manifest.tensors.items()},
    }


@click.command("inspect")
@click.argument("signature", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the bundle's contents as JSON.")
def inspect_cmd(signature: Path, as_json: bool) -> None:
    """Show a bundle's signer, algorithm and digests (NOT a verification: use `qsafe verify`)."""
    data = _inspect_data(signature)
    if as_json:
        emit_json(data)
        return
    s = data["signer"]
    click.echo("unverified contents of " + str(signature) + " (run `qsafe verify` to check them)")
    click.echo(f"signer:    key hint {s['key_hint'] or '-'}; key id {s['key_id'] or '-'}; "
               f"algorithm {s['algorithm'] or 'unknown (model-signing key bundle: ECDSA)'}")
    click.echo(f"model:     {data['model_name']}  root sha256:{data['root_digest']['sha256']}")
    ser = data["serialization"]
    click.echo(f"hashing:   {ser['method']} {ser['hash_type']}" + (f" shard {ser['shard_size']}" if "shard_size" in ser
                                                                   else ""))
    for r in data["resources"]:
        click.echo(f"  {r['algorithm']}:{r['digest']}  {r['name']}")
    for f, t in data["tensors"].items():
        click.echo(f"tensors of {f}: header {t['header']}")
        for e in t["tensors"]:
            click.echo(f"  {e['digest']}  {e['name']} {e['dtype']}{e['shape']}")
