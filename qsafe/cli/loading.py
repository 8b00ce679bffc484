"""``qsafe load``: the gate. Verify the signature, appraise the environment, load the verified tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from qsafe.cli._common import echo, emit_json, load_private_key, progress
from qsafe.cli._options import json_option, passphrase_file_option, policy_option
from qsafe.cli.attestation import parse_time_option
from qsafe.errors import AttestationError, UnavailableError, UsageError

_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)

UNSAFE_SKIP_WARNING = (
    "qsafe: WARNING: --unsafe-skip-attestation: the environment was NOT attested. The signature was verified, "
    "but nothing says this machine is the one a policy allows."
)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--signature", type=_EXISTING, help="The signature bundle (default: MODEL/model.sig).")
@click.option("--key", "key", type=click.Path(exists=True, path_type=Path), required=True,
              help="Signer's public key(s): a .pub file or a directory of them.")
@policy_option("Attestation policy: a shipped name or a file (required unless --unsafe-skip-attestation).")
@click.option("--evidence", type=_EXISTING, help="Recorded evidence to appraise.")
@click.option("--collect", "do_collect", is_flag=True, help="Collect evidence now, bound to this model and policy.")
@click.option("-c", "--collector", "collectors", multiple=True, help="Collector for --collect (repeat).")
@click.option("--nonce", "nonce_hex", help="The nonce --evidence was collected for (hex).")
@click.option("--at", "at", help="Verification time (ISO-8601; default now).")
@click.option("--device", help="Put torch tensors here, e.g. cuda:0.")
@click.option("--framework", type=click.Choice(["torch", "numpy"]), help="Default: torch when installed.")
@click.option("--allow-classical", is_flag=True, help="Accept a classical-only (ECDSA) model signature.")
@click.option("--evaluation", "evaluations", multiple=True, type=_EXISTING,
              help="Signed model evidence about MODEL for the policy's model.* rules (repeatable).")
@click.option("--evaluator-key", "evaluator_keys", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Trusted public key of the evaluator(s) that signed --evaluation (repeatable).")
@click.option("--unsafe-skip-attestation", is_flag=True, help="UNSAFE: load without appraising any evidence.")
@click.option("--result", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the ML-DSA-signed appraisal result here (also on deny).")
@click.option("--result-key", type=_EXISTING, help="Signing key for --result.")
@passphrase_file_option("Passphrase of a protected --result-key.", exists=True)
@click.option("--verified-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write every verified file into this new private directory (0700), for loaders that "
                   "read a path (from_pretrained). It must not exist yet.")
@json_option("Print what was loaded and the appraisal as JSON.")
def load(model: Path, signature: Path | None, key: Path, policy: Path | None, evidence: Path | None,
         do_collect: bool, collectors: tuple[str, ...], nonce_hex: str | None, at: str | None, device: str | None,
         framework: str | None, allow_classical: bool, evaluations: tuple[Path, ...],
         evaluator_keys: tuple[Path, ...], unsafe_skip_attestation: bool, result: Path | None,
         result_key: Path | None, passphrase_file: Path | None, verified_dir: Path | None, as_json: bool) -> None:
    """Verify MODEL's signature, appraise the environment, then load its tensors; silent on success."""
    from qsafe.loading import load_model
    from qsafe.policy import VerificationPolicy

    if (result is None) != (result_key is None):
        raise UsageError("--result and --result-key go together (the result is always signed)")
    if unsafe_skip_attestation:
        if result is not None:
            raise UsageError("--result needs an appraisal; it cannot be combined with --unsafe-skip-attestation")
        if evidence or do_collect or policy or evaluations:
            raise UsageError("--unsafe-skip-attestation cannot be combined with --policy, --evidence, --collect or "
                             "--evaluation")
    elif policy is None:
        raise UsageError("--policy is required: a shipped policy name or a policy file",
                         hint="`qsafe attest policies` lists the shipped ones, e.g. --policy nvidia-hopper-cc")
    elif bool(evidence) == bool(do_collect):
        raise UsageError("give exactly one of --evidence FILE or --collect")
    if evaluations and not evaluator_keys:
        raise UsageError("--evaluation needs --evaluator-key (the evaluator's public key)")
    if evaluator_keys and not evaluations:
        raise UsageError("--evaluator-key needs --evaluation FILE")
    sig = signature or (model / "model.sig" if model.is_dir() else None)
    if sig is None or not sig.exists():
        raise UsageError("no signature: pass --signature (MODEL/model.sig does not exist)")
    try:
        nonce = bytes.fromhex(nonce_hex) if nonce_hex else None
    except ValueError as exc:
        raise UsageError("--nonce must be hex") from exc
    if result is not None:  # refuse a bad --result before the passphrase, the hashing and the appraisal
        _check_result_path(result, model, sig, key, policy, evidence, result_key, passphrase_file, *evaluations)
    if verified_dir is not None:
        _check_new_dir(verified_dir, model)
    when = parse_time_option(at)
    signing_key = load_private_key(result_key, passphrase_file) if result_key else None
    total = _model_size(model)
    try:
        with progress(total, "Loading") as advance:
            loaded = load_model(
                model, sig, key, policy, evidence=evidence, collect=list(collectors) or True if do_collect else False,
                nonce=nonce, at=when, device=device, framework=framework,
                signature_policy=VerificationPolicy(allow_classical=allow_classical),
                unsafe_skip_attestation=unsafe_skip_attestation, progress=advance,
                evaluations=list(evaluations), evaluator_keys=list(evaluator_keys) or None,
                verified_dir=verified_dir,
            )
    except AttestationError as err:
        if result is not None and getattr(err, "result", None) is not None:
            _write_result(result, err.result, signing_key)  # type: ignore[attr-defined]
        err.hint = "the environment (or the model's evidence) is not what the policy allows: the model was not loaded"
        raise
    except UnavailableError as err:
        err.hint = ("run this on the machine that has the device, or appraise evidence recorded there: "
                    "--evidence FILE --nonce N (`qsafe attest recorded` lists recorded real evidence)")
        raise
    if unsafe_skip_attestation:  # only now: the warning says the signature was verified
        click.echo(UNSAFE_SKIP_WARNING, err=True)
    appraisal = loaded.attestation
    if result is not None and appraisal is not None:
        _write_result(result, appraisal, signing_key)
    if appraisal is not None and appraisal.freshness.get("replayedEvidenceAccepted"):
        echo(f"qsafe: WARNING: policy {appraisal.policy_name} accepted replayed evidence with no freshness "
             "(development only)", err=True)
    if as_json:
        emit_json(_summary(loaded))


def _inside(path: Path, model: Path) -> bool:
    import os

    return model.is_dir() and Path(os.path.realpath(path)).is_relative_to(os.path.realpath(model))


def _check_result_path(result: Path, model: Path, *inputs: Path | None) -> None:
    """Refuse a --result that is an input, or lies inside the model folder (a new file there is an extra file:
    the model would no longer verify)."""
    from qsafe._io import check_writable, refuse_same_file
    from qsafe.errors import OutputExistsError

    refuse_same_file(result, model, *(p for p in inputs if p is not None))
    if _inside(result, model):
        raise OutputExistsError(f"--result {result} is a file of the model {model} (inside its folder); writing it "
                                "would change the model",
                                hint="write the result outside the model folder")
    check_writable(result)


def _check_new_dir(path: Path, model: Path) -> None:
    from qsafe.errors import OutputExistsError

    if path.exists() or path.is_symlink():
        raise OutputExistsError(f"--verified-dir {path} exists; the verified copy goes into a new directory")
    if _inside(path, model):
        raise OutputExistsError(f"--verified-dir {path} is inside the model {model}; writing it would change the "
                                "model", hint="choose a directory outside the model folder")
    if not path.parent.is_dir():
        raise UsageError(f"--verified-dir {path}: the folder {path.parent} does not exist")


def _model_size(model: Path) -> int:
    """Bytes to read, for the progress bar (0 when the folder cannot be listed: load_model names the problem)."""
    from qsafe._hashing.walk import list_model_files

    try:
        return sum(f.size for f in list_model_files(model))
    except Exception:  # noqa: BLE001 - the same listing inside load_model raises the real, typed error
        return 0


def _write_result(path: Path, appraisal: Any, key: Any) -> None:
    from qsafe._io import atomic_output
    from qsafe.attestation import sign_result

    with atomic_output(path) as handle:
        handle.write(sign_result(appraisal, key))


def _summary(loaded: Any) -> dict[str, Any]:
    return {
        "modelDigest": loaded.model_digest,
        "keyId": loaded.key_id,
        "files": loaded.verified_files,
        "tensorFiles": loaded.tensor_files,
        "verifiedDir": None if loaded.directory is None else str(loaded.directory),
        "framework": loaded.framework,
        "tensors": {name: {"shape": list(t.shape), "dtype": str(t.dtype)} for name, t in sorted(loaded.tensors.items())},
        "attestation": None if loaded.attestation is None else loaded.attestation.predicate(),
        "attestationSkipped": loaded.attestation_skipped,
    }
