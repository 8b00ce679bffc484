"""``qsafe attest``: collect evidence, import recorded evidence, appraise it against a policy, check results."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any

import click

from qsafe._io import atomic_output, check_writable, refuse_same_file
from qsafe.cli._common import emit_json, load_private_key, read_input
from qsafe.cli._options import add_error_fields, json_option, passphrase_file_option, policy_option
from qsafe.errors import UnavailableError, UsageError

_PATH = click.Path(dir_okay=False, path_type=Path)
_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)


def _hex(value: str | None, what: str) -> bytes | None:
    if value is None:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise UsageError(f"{what} must be hex") from exc


def parse_time_option(value: str | None, option: str = "--at") -> dt.datetime | None:
    """Parse a time given on the command line; a bad one is the caller's usage error, not a malformed file."""
    from qsafe.attestation.evidence import parse_time
    from qsafe.errors import FormatError

    try:
        return parse_time(value) if value else None
    except FormatError as exc:
        raise UsageError(f"{option}: {exc}", hint="give an ISO-8601 time, e.g. 2024-05-01T00:01:00Z") from exc


def _json_file(path: Path, what: str) -> Any:
    from qsafe import _json

    return _json.load_file(path, what)


def _write(path: Path | None, data: bytes, inputs: tuple[Path, ...] = ()) -> None:
    if path is None or str(path) == "-":
        click.echo(data.decode(), nl=False)
        return
    with atomic_output(path, inputs=inputs) as handle:
        handle.write(data)


_EVIDENCE_JSON_HELP = ("With -o: print a summary as JSON (output, item kinds, nonce). Without -o the evidence "
                       "itself is printed, which is JSON already.")


def _write_evidence(output: Path | None, evidence: Any, inputs: tuple[Path, ...], as_json: bool) -> None:
    """The evidence to -o (or stdout); with --json and -o, a summary on stdout."""
    _write(output, evidence.to_bytes(), inputs=inputs)
    if as_json and output is not None and str(output) != "-":
        emit_json({"output": str(output), "kinds": [item.get("kind") for item in evidence.items],
                   "items": len(evidence.items), "nonce": evidence.nonce.hex() if evidence.nonce else None,
                   "collected_at": evidence.collected_at.isoformat()})


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def attest() -> None:
    """Collect attestation evidence and appraise it against a policy (exit 15 on deny)."""


@attest.command()
@json_option("Print {\"nonce\": HEX}.")
def nonce(as_json: bool) -> None:
    """Print a fresh random 32-byte nonce (hex) for `attest collect --nonce` / `attest verify --nonce`."""
    value = secrets.token_hex(32)
    emit_json({"nonce": value}) if as_json else click.echo(value)


@attest.command(name="verifiers")
@json_option("Print the verifiers as a JSON list.")
def verifiers_cmd(as_json: bool) -> None:
    """List the installed evidence verifiers (registry qsafe.verifiers): kind, policy prefix, what each proves."""
    from qsafe.attestation.verifiers import verifiers
    from qsafe.plugins import VERIFIERS_GROUP, registry

    entries = registry(VERIFIERS_GROUP).entries()
    rows: list[dict[str, Any]] = [{"kind": v.kind, "prefix": v.prefix, "signed": v.signed, "proves": v.proves,
             "from": entries[kind].distribution} for kind, v in verifiers().items()]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['kind']:12} {r['prefix'] + '.*':8} {'signed' if r['signed'] else 'unsigned':9} "
                   f"{r['proves']} [{r['from']}]")


@attest.command()
@click.option("-c", "--collector", "names", multiple=True, default=("software", "nvidia-gpu"), show_default=True,
              help="Collector to run (repeat). Built-in: software, nvidia-gpu, tsm; plugins add more.")
@click.option("--nonce", "nonce_hex", help="The verifier's 32-byte nonce (hex). Default: a fresh random one.")
@policy_option("Bind to this policy (and --model-digest): binding-hash mode.")
@click.option("--model-digest", help="Model digest (sha256:HEX) to bind the evidence to (needs --policy).")
@click.option("--tsm-root", type=click.Path(file_okay=False, path_type=Path), help="configfs-tsm report directory.")
@click.option("--tdx-collateral", type=_EXISTING, help="dcap-qvl collateral JSON to attach to a TDX quote.")
@click.option("--include-torch", is_flag=True, help="Import torch to record torch/CUDA versions.")
@click.option("-o", "--output", type=_PATH, help="Write the evidence here (default: stdout).")
@json_option(_EVIDENCE_JSON_HELP)
def collect(names: tuple[str, ...], nonce_hex: str | None, policy: Path | None, model_digest: str | None,
            tsm_root: Path | None, tdx_collateral: Path | None, include_torch: bool, output: Path | None,
            as_json: bool) -> None:
    """Collect evidence on this machine (exit 6 when a device is absent: never a fake pass)."""
    from qsafe.attestation import collect as run_collect
    from qsafe.attestation import load_policy

    if model_digest and not policy:
        raise UsageError("--model-digest needs --policy (the binding covers both)")
    value = _hex(nonce_hex, "--nonce") or secrets.token_bytes(32)
    options: dict[str, dict[str, Any]] = {"software": {"include_torch": include_torch}}
    options["tsm"] = {"root": tsm_root,
                      "tdx_collateral": _json_file(tdx_collateral, "--tdx-collateral") if tdx_collateral else None}
    inputs = tuple(p for p in (policy, tdx_collateral) if p is not None)
    if output is not None:  # refuse a bad --output before touching any device
        refuse_same_file(output, *inputs)
        check_writable(output)
    try:
        evidence = run_collect(list(names), nonce=value, policy=load_policy(policy) if policy else None,
                               model_digest=model_digest, options=options)
    except UnavailableError as err:
        err.hint = ("run it on the machine that has the device, or leave its collector out (-c software records "
                    "only the software environment); `qsafe attest recorded` lists recorded real evidence")
        raise
    _write_evidence(output, evidence, inputs, as_json)


@attest.command(name="import")
@click.argument("kind", type=click.Choice(["nvidia-report", "nvidia-json", "sev-snp", "tdx"]))
@click.argument("files", nargs=-1, required=True, type=_EXISTING)
@click.option("--collected-at", required=True, help="When the evidence was recorded (ISO-8601).")
@click.option("--provenance", help="Where the recording comes from (stored on every item).")
@click.option("--nonce", "nonce_hex", help="The challenge nonce (hex) the report was made for, recorded in the "
                                          "file's nonce field so readers can replay it (never trusted by appraisal).")
@click.option("-o", "--output", type=_PATH, help="Write the evidence here (default: stdout).")
@json_option(_EVIDENCE_JSON_HELP)
def import_cmd(kind: str, files: tuple[Path, ...], collected_at: str, provenance: str | None, nonce_hex: str | None,
               output: Path | None, as_json: bool) -> None:
    """Convert recorded evidence (native formats) into a qsafe evidence file.

    \b
    nvidia-report REPORT CHAIN    hex SPDM report + PEM chain (nvtrust samples, NVML dumps)
    nvidia-json   FILE...         NVIDIA JSON evidence lists ([{evidence, certificate}])
    sev-snp       REPORT CERT...  raw report + VCEK/VLEK and ASK/ASVK(+ARK) certificates
    tdx           QUOTE COLLATERAL  raw quote + dcap-qvl collateral JSON
    """
    from qsafe.attestation.recorded import import_recorded

    when = parse_time_option(collected_at, "--collected-at") or dt.datetime.now(dt.timezone.utc)
    evidence = import_recorded(kind, files, collected_at=when, provenance=provenance)
    nonce = _hex(nonce_hex, "--nonce")
    if nonce is not None:
        import dataclasses

        evidence = dataclasses.replace(evidence, nonce=nonce)
    _write_evidence(output, evidence, files, as_json)


@attest.command()
@click.argument("evidence", type=_EXISTING)
@policy_option("The attestation policy: a shipped name (`qsafe attest policies`) or a file.", required=True)
@click.option("--nonce", "nonce_hex", help="The nonce you issued for this evidence (hex).")
@click.option("--model-digest", help="The model digest the evidence should be bound to.")
@click.option("--at", "at", help="Verification time (ISO-8601; default now). Recorded evidence needs one.")
@click.option("-o", "--output", type=_PATH, help="Write the ML-DSA-signed result (in-toto Statement) here.")
@click.option("--key", type=_EXISTING, help="Signing key for --output.")
@passphrase_file_option("Passphrase of a protected --key (first line).", exists=True)
@json_option("Print the result predicate as JSON.")
def verify(evidence: Path, policy: Path, nonce_hex: str | None, model_digest: str | None, at: str | None,
           output: Path | None, key: Path | None, passphrase_file: Path | None, as_json: bool) -> None:
    """Appraise EVIDENCE against --policy; silent on allow, exit 15 naming every failed claim on deny."""
    from qsafe.attestation import appraise, load_evidence, load_policy, sign_result
    from qsafe.attestation.appraisal import denial

    if (output is None) != (key is None):
        raise UsageError("--output and --key go together (the result is always signed)")
    inputs = tuple(p for p in (evidence, policy, key, passphrase_file) if p is not None)
    if output is not None:  # refuse a bad --output before the passphrase and the appraisal
        refuse_same_file(output, *inputs)
        check_writable(output)
    signing_key = load_private_key(key, passphrase_file) if key else None
    result = appraise(load_evidence(evidence), load_policy(policy), at=parse_time_option(at),
                      nonce=_hex(nonce_hex, "--nonce"), model_digest=model_digest)
    if output is not None and signing_key is not None:
        with atomic_output(output, inputs=inputs) as handle:
            handle.write(sign_result(result, signing_key))
    if not result.allowed:
        add_error_fields(result=result.predicate())  # --json: the error object carries the (deny) predicate
        err = denial(result)
        err.hint = "the environment this evidence describes is not one the policy allows: do not trust it with work"
        raise err
    if as_json:
        emit_json(result.predicate())


@attest.command()
@click.argument("name", required=False)
@json_option("Print the list (or the policy) as JSON.")
def policies(name: str | None, as_json: bool) -> None:
    """List the shipped policies, or print policy NAME (copy it to make your own).

    Use one by name anywhere a policy is taken: `--policy nvidia-hopper-cc`.
    """
    import json

    from qsafe.attestation.shipped import policy_names, policy_path

    if name is not None:
        text = read_input(policy_path(name), "policy").decode("utf-8")
        emit_json(json.loads(text)) if as_json else click.echo(text, nl=False)
        return
    rows = []
    for policy_name in policy_names():
        doc = json.loads(policy_path(policy_name).read_text(encoding="utf-8"))
        rows.append({"name": policy_name, "description": doc.get("description", ""), "require": doc["require"],
                     "freshness": doc["freshness"]["accept"], "path": str(policy_path(policy_name))})
    if as_json:
        emit_json(rows)
        return
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        summary = str(row["description"]).split(": ")[0].split(". ")[0]
        click.echo(f"{row['name']:<{width}}  requires {', '.join(row['require']) or '-'}; {summary}")
    click.echo(f"\nUse one by name: --policy {rows[0]['name']}. Print one: qsafe attest policies NAME.")


@attest.command()
@click.argument("name", required=False)
@click.option("-o", "--output", type=_PATH, help="Write the evidence here (default: stdout).")
@json_option("Print the list as JSON.")
def recorded(name: str | None, output: Path | None, as_json: bool) -> None:
    """List the recorded real evidence shipped with qsafe, or write evidence NAME (to -o FILE or stdout).

    Each entry shows the challenge nonce its report was made for and a verification time at which its
    certificates were valid: replaying it with both shows the appraisal on a machine without the device.
    """
    from qsafe.attestation.evidence import format_time
    from qsafe.attestation.shipped import recorded as recorded_one
    from qsafe.attestation.shipped import recorded_evidence

    if name is not None:
        item = recorded_one(name)
        data = read_input(item.path, "recorded evidence")
        if output is not None:
            refuse_same_file(output, item.path)
        _write(output, data)
        return
    if output is not None:
        raise UsageError("-o needs a NAME (which recorded evidence to write)")
    items = recorded_evidence()
    if as_json:
        emit_json([{"name": i.name, "description": i.description, "kinds": i.kinds, "nonce": i.nonce,
                    "policy": i.policy, "at": format_time(i.at)} for i in items])
        return
    for i in items:
        kinds = ", ".join(f"{i.kinds.count(k)}x {k}" for k in dict.fromkeys(i.kinds))
        click.echo(f"{i.name}: {i.description} ({kinds})\n"
                   f"  nonce {i.nonce}\n"
                   f"  qsafe attest recorded {i.name} -o {i.name}.json\n"
                   f"  qsafe attest verify {i.name}.json --policy {i.policy} --nonce {i.nonce} --at {format_time(i.at)}")


@attest.command(name="check-result")
@click.argument("result", type=_EXISTING)
@click.option("--key", type=_EXISTING, required=True, help="Public key(s) of the appraiser.")
@json_option("Print the verified statement.")
def check_result(result: Path, key: Path, as_json: bool) -> None:
    """Verify a signed appraisal result; exit 15 if its verdict is deny."""
    from qsafe import keys
    from qsafe.attestation import verify_result
    from qsafe.errors import AttestationError

    statement = verify_result(read_input(result, "result"), keys.load_public_keys(key), what=f"result {str(result)!r}")
    predicate = statement["predicate"]
    if predicate.get("verdict") != "allow":
        add_error_fields(statement=statement)  # --json: the error object carries the verified (deny) statement
        raise AttestationError(["the signed result's verdict is deny:", *(f"  {f}" for f in predicate.get("failed", []))],
                               failed_claims=[str(f).split(":", 1)[0] for f in predicate.get("failed", [])])
    if as_json:
        emit_json(statement)
