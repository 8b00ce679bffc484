"""``qsafe pipeline``: the hardened fraud pipeline; ``qsafe dataset``: signed dataset manifests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from qsafe import _limits
from qsafe.cli._common import echo, emit_json, load_private_key, read_passphrase
from qsafe.cli._options import json_option, passphrase_file_option
from qsafe.errors import UsageError

_CTX = {"help_option_names": ["-h", "--help"]}
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
OVERRIDE_WARNING = ("qsafe: WARNING: --unsafe-train-on-failed-audit: a dataset that FAILED its poisoning audit may be "
                    "trained on; the model card will say so.")


@click.group(context_settings=_CTX)
def pipeline() -> None:
    """Run the security-hardened fraud pipeline (signed data, audits, DP-SGD, theft defenses, gated release)."""


@pipeline.command("run", context_settings=_CTX)
@click.argument("config", type=_FILE)
@click.option("--force", "force", multiple=True, metavar="STAGE", help="Re-run this stage even if up to date (repeat).")
@click.option("--until", "until", metavar="STAGE", help="Stop after this stage.")
@click.option("--unsafe-train-on-failed-audit", is_flag=True,
              help="UNSAFE: train even when the poisoning audit failed (recorded in the model card).")
@passphrase_file_option("Read the passphrase of protected keys ([keys] protect = true) from this file. Also: "
                        "$QSAFE_PASSPHRASE.", exists=True)
@json_option("Print each stage's summary and the goal table as JSON.")
def run_cmd(config: Path, force: tuple[str, ...], until: str | None, unsafe_train_on_failed_audit: bool,
            passphrase_file: Path | None, as_json: bool) -> None:
    """Run (or resume) the pipeline described by CONFIG; writes the evidence and WORKDIR/report/report.md."""
    from qsafe.fraud.pipeline import load_config, run_pipeline

    cfg = load_config(config)
    if unsafe_train_on_failed_audit:
        click.echo(OVERRIDE_WARNING, err=True)
        sections = dict(cfg.sections)
        sections["training"] = {**sections["training"], "unsafe_train_on_failed_audit": True}
        cfg = dataclasses.replace(cfg, sections=sections)
    passphrase = read_passphrase(passphrase_file) if cfg["keys"]["protect"] else None

    def progress(stage: str, line: str) -> None:
        echo(f"qsafe: pipeline: {stage}: {line}", err=True)

    result = run_pipeline(cfg, force=force, only=[until] if until else [], passphrase=passphrase, progress=progress)
    if as_json:
        emit_json(result.as_dict())
        return
    goals = result.stages.get("report", {}).get("summary", {}).get("goals", {})
    for goal, g in goals.items():
        echo(f"{'met    ' if g['met'] else 'NOT MET'}  {goal}: {g['measured']}")
    if result.report:
        echo(f"report: {result.report}")
    click.echo(f"{result.seconds:.0f} s wall, {result.cpu_seconds:.0f} s CPU", err=True)


@pipeline.command("stages", context_settings=_CTX)
@json_option("Print the stages as JSON.")
def stages_cmd(as_json: bool) -> None:
    """List the pipeline's stages in the order they run."""
    from qsafe.fraud.stages import STAGES

    rows = [{"stage": s.name, "what": s.doc, "writes": list(s.outputs)} for s in STAGES]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['stage']:20s} {r['what']}")


@click.group(context_settings=_CTX)
def dataset() -> None:
    """Signed dataset manifests: a Merkle root over rows; a tampered copy is refused with its rows named."""


@dataset.command("sign", context_settings=_CTX)
@click.argument("csv", type=_FILE)
@click.option("--key", "key", type=_FILE, required=True, help="The data owner's private signing key.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the signed manifest (the leaf file goes to OUTPUT.leaves).")
@passphrase_file_option(exists=True)
@json_option("Print the manifest's summary as JSON.")
def dataset_sign(csv: Path, key: Path, output: Path, passphrase_file: Path | None, as_json: bool) -> None:
    """Sign CSV's manifest (file digest, header digest, Merkle root over rows, class counts)."""
    from qsafe._files import read_regular
    from qsafe._io import atomic_output
    from qsafe.fraud.data import MAX_CSV_BYTES, parse_csv
    from qsafe.fraud.dataset import build_manifest, sign_manifest

    leaves = Path(str(output) + ".leaves")
    for target in (output, leaves):
        if target.resolve() == csv.resolve() or target.resolve() == key.resolve():
            raise UsageError(f"output {target} is an input; qsafe never overwrites its input")
    secret = load_private_key(key, passphrase_file)
    raw = read_regular(csv, "dataset", max_bytes=MAX_CSV_BYTES)
    manifest = build_manifest(parse_csv(raw, str(csv)), raw, name=csv.name)
    with atomic_output(leaves, inputs=(csv, key)) as out:
        out.write(b"".join(manifest.leaves))
    with atomic_output(output, inputs=(csv, key)) as out:
        out.write(sign_manifest(manifest, secret))
    if as_json:
        emit_json({"manifest": str(output), "leaves": str(leaves), "digest": manifest.digest, "rows": manifest.rows,
                   "class_counts": manifest.class_counts})


@dataset.command("verify", context_settings=_CTX)
@click.argument("csv", type=_FILE)
@click.option("--manifest", "manifest", type=_FILE, required=True, help="The signed manifest.")
@click.option("--key", "key", type=click.Path(exists=True, path_type=Path), required=True,
              help="The data owner's public key (a .pub file or a directory of them).")
@click.option("--leaves", type=_FILE, help="The signed data's leaf file (default MANIFEST.leaves if present): names "
                                           "the changed rows.")
@json_option("Print the verified manifest as JSON.")
def dataset_verify(csv: Path, manifest: Path, key: Path, leaves: Path | None, as_json: bool) -> None:
    """Verify CSV against its signed manifest; silent on success, names changed/inserted/deleted rows (exit 12)."""
    from qsafe._files import read_regular
    from qsafe.fraud.dataset import verify_dataset
    from qsafe.keys import load_public_keys

    default = Path(str(manifest) + ".leaves")
    leaves = leaves or (default if default.is_file() else None)
    signed_manifest = read_regular(manifest, "dataset manifest", max_bytes=_limits.DATASET_STATEMENT_MAX_BYTES)
    leaf_bytes = read_regular(leaves, "leaf file", max_bytes=_limits.DATASET_LEAVES_MAX_BYTES) if leaves else None
    _, signed = verify_dataset(csv, signed_manifest, load_public_keys(key), leaves=leaf_bytes)
    if as_json:
        emit_json({"digest": signed.digest, "rows": signed.rows, "file_sha256": signed.file_sha256,
                   "class_counts": signed.class_counts, "provenance": signed.provenance})
