"""``qsafe fl simulate`` (the federated backdoor scenario) and ``qsafe fl audit verify`` (its audit trail)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import click

from qsafe._io import refuse_same_file
from qsafe.cli._common import RegistryChoice, emit_json, read_passphrase, step_progress
from qsafe.cli._options import json_flag_or_legacy_path, json_option, passphrase_options
from qsafe.errors import UsageError

ATTACK_NAMES = ("poison", "replace", "norm")

# The shorthand options of the built-in defenses -> the Strategy keyword they set, for every defense that has
# that keyword (the names of the defenses come from the qsafe.defenses registry, not from here).
_SHORTHANDS = {"norm_bound": "bound", "krum_f": "f", "trim_beta": "beta", "clip_norm": "clip_norm",
               "noise_multiplier": "noise_multiplier", "flame_lambda": "noise_lambda"}


def _defense_names() -> list[str]:
    from qsafe.federated.defenses import defense_names

    return defense_names()


def _value(text: str, default: Any) -> Any:
    """Parse VALUE of --defense-param by the parameter's default type (int, float, bool, str; None: a number)."""
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(default, int):
            return int(text)
        if default is None:
            return int(text) if text.lstrip("-").isdigit() else float(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        kind = type(default).__name__ if default is not None else "number"
        raise UsageError(f"--defense-param: {text!r} is not a valid {kind}") from None
    return text


def _param_spec(spec: str) -> tuple[str, str, str]:
    """``DEFENSE.KEY=VALUE`` or ``KEY=VALUE`` -> (defense or "", key, value)."""
    target, eq, value = spec.partition("=")
    name, _dot, key = target.rpartition(".")
    if not eq or not key or not value:
        raise UsageError(f"--defense-param {spec!r}: expected DEFENSE.KEY=VALUE (or KEY=VALUE for every defense)")
    if name and name not in _defense_names():
        raise UsageError(f"--defense-param {spec!r}: unknown defense {name!r}")
    return name, key, value


def _check_defense_params(defenses: list[str], specs: tuple[str, ...]) -> None:
    """Refuse, before any work, a --defense-param that no chosen defense takes."""
    from qsafe.federated.defenses import defense_parameters

    for spec in specs:
        name, key, _value_text = _param_spec(spec)
        targets = [name] if name else defenses
        if not any(key in defense_parameters(d) for d in targets):
            takes = "; ".join(f"{d}: {', '.join(defense_parameters(d)) or 'none'}" for d in targets)
            raise UsageError(f"--defense-param {spec!r}: no chosen defense takes {key!r} ({takes})")


def _defense_params(defense: str, opts: dict[str, Any]) -> dict[str, Any]:
    from qsafe.federated.defenses import defense_parameters

    accepted = defense_parameters(defense)
    params = {key: opts[opt] for opt, key in _SHORTHANDS.items() if key in accepted}
    for spec in opts.get("defense_params") or ():
        name, key, value = _param_spec(spec)
        if (name and name != defense) or key not in accepted:
            continue
        params[key] = _value(value, accepted[key])
    return params


def _round_lines(result: Any) -> list[str]:
    lines = [(f"defense {result.config.defense}: attack {result.config.attack.kind}, attackers "
              f"{list(result.run.attackers)} of {result.config.clients}")]
    for m in result.run.rounds:
        lines.append(f"  round {m.round:3d}  accuracy {m.accuracy:.4f}  ASR {m.asr:.3f}  raw {m.raw_asr:.3f}  "
                     f"attackers' weight {m.attacker_weight:.3f}")
    return lines


def _summary_lines(result: Any, reference: Any) -> list[str]:
    f = result.run.final
    if reference is None:
        lines = [f"  final: accuracy {f.accuracy:.2%}; ASR {f.asr:.1%}; raw ASR {f.raw_asr:.1%}"]
    else:
        r = reference.final
        lines = [(f"  final: accuracy {f.accuracy:.2%} ({(f.accuracy - r.accuracy) * 100:+.2f} points vs "
                  f"attack-free FedAvg {r.accuracy:.2%}); ASR {f.asr:.1%} (floor {r.asr:.1%}); raw ASR "
                  f"{f.raw_asr:.1%} (attack-free {r.raw_asr:.1%})")]
    privacy = result.extra.get("privacy")
    if privacy:
        rate = privacy.get("sampling_rate", 1)  # results saved before client sampling existed: full participation
        sampling = ("every client in every round (no sampling amplification)" if rate == 1
                    else f"clients Poisson-sampled at rate {rate:g}")
        lines.append(f"  privacy: client-level epsilon = {privacy['epsilon']:.4g} at delta = {privacy['delta']:g} over "
                     f"{privacy['rounds']} rounds, noise multiplier {privacy['noise_multiplier']:g} "
                     f"({privacy['method']}); {sampling}; the aggregator is trusted with the clipped updates")
    encrypted = result.extra.get("encrypted")
    if encrypted:
        phases = ", ".join(f"{k} {v:.2f} s" for k, v in encrypted["seconds_per_round"].items())
        lines.append(f"  encrypted ({encrypted['scheme']}): {encrypted['bytes_per_update'] / 1e6:.2f} MB per update; "
                     f"per round: {phases}")
    return lines


@click.command()
@click.option("--defense", "defenses", multiple=True,
              type=RegistryChoice(lambda: [*_defense_names(), "all"]),
              help="Defense (repeatable; 'all' runs every one). Default: none. Installed plugins add theirs.")
@click.option("--defense-param", "defense_params", multiple=True, metavar="DEFENSE.KEY=VALUE",
              help="Set a defense's keyword parameter (repeatable; KEY=VALUE sets it on every defense that has it).")
@click.option("--attackers", "attacker_counts", multiple=True, type=click.IntRange(0, 9),
              help="Compromised clients (repeatable). Default 2; with --matrix 1, 2 and 4.")
@click.option("--attack", type=click.Choice(ATTACK_NAMES), default="replace", show_default=True,
              help="poison: data poisoning; replace: boosted update; norm: scaled just under the norm bound.")
@click.option("--encrypt", is_flag=True, help="Encrypt every update (HE); only defenses that work blind can run.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rounds", type=click.IntRange(1, 1000), default=30, show_default=True)
@click.option("--clients", type=click.IntRange(3, 200), default=20, show_default=True)
@click.option("--trigger", default=None, help="Trigger word sequence (default: the documented phrase).")
@click.option("--partition", type=click.Choice(["iid", "dirichlet"]), default="iid", show_default=True)
@click.option("--alpha", type=float, default=0.5, show_default=True, help="Dirichlet concentration (non-IID).")
@click.option("--boost", type=float, default=None, help="Attack boost factor (default clients / attackers).")
@click.option("--norm-bound", type=float, default=None, help="norm-bound: fixed L2 bound (default: round median).")
@click.option("--clip-norm", type=float, default=0.5, show_default=True, help="dp: fixed clip norm C.")
@click.option("--noise-multiplier", type=float, default=0.1, show_default=True, help="dp: sigma (std = sigma C / n).")
@click.option("--krum-f", type=int, default=4, show_default=True, help="krum/multi-krum: assumed attackers f.")
@click.option("--trim-beta", type=float, default=0.2, show_default=True, help="trimmed-mean: fraction cut per end.")
@click.option("--flame-lambda", type=float, default=0.001, show_default=True, help="flame: noise / clip bound.")
@click.option("--no-reference", is_flag=True, help="Skip the attack-free FedAvg reference run.")
@click.option("--matrix", is_flag=True, help="Print the defenses x attackers table (Markdown).")
@click.option("--results", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results as JSON to this file (what `fl report` reads).")
@json_flag_or_legacy_path("--results", "Print the results as JSON on stdout instead of the tables (a flag; the old "
                                      "`--json FILE` still works as --results FILE, with a deprecation line).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG plot.")
@click.option("--audit-log", type=click.Path(dir_okay=False, path_type=Path), help="Write the signed audit trail.")
@click.option("--audit-key", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Aggregator's ML-DSA private key for round heads (default: a fresh key, public half in LOG.pub).")
@passphrase_options
def simulate(**opts: Any) -> None:
    """Run the federated backdoor scenario on the SMS Spam Collection; print accuracy and ASR per round."""
    from qsafe.federated_sim import experiment

    if isinstance(opts["as_json"], Path):  # the deprecated `--json FILE` (the option printed the deprecation line)
        if opts["json_path"] is not None:
            raise UsageError("--json FILE is the old spelling of --results FILE: give one of them")
        opts["json_path"], opts["as_json"] = opts["as_json"], False
    defenses = _defense_names() if "all" in opts["defenses"] or (opts["matrix"] and not opts["defenses"]) \
        else list(dict.fromkeys(opts["defenses"] or ("none",)))
    counts = list(opts["attacker_counts"] or ((1, 2, 4) if opts["matrix"] else (2,)))
    _check_defense_params(defenses, opts["defense_params"])
    _check_outputs(opts)
    if opts["audit_log"] is not None and len(defenses) * len(counts) != 1:
        raise UsageError("--audit-log records one run: give one --defense and one --attackers")
    base = experiment.base_config(
        attack=opts["attack"], boost=opts["boost"], seed=opts["seed"], rounds=opts["rounds"], clients=opts["clients"],
        trigger=opts["trigger"], partition=opts["partition"], alpha=opts["alpha"])
    params = {d: _defense_params(d, opts) for d in defenses}
    signer = None
    if opts["audit_log"] is not None and opts["audit_key"] is not None:
        # the log (and LOG.pub) must never replace the key it is signed with
        refuse_same_file(opts["audit_log"], opts["audit_key"])
        refuse_same_file(opts["audit_log"].with_name(opts["audit_log"].name + ".pub"), opts["audit_key"])
        signer = experiment.load_signer(opts["audit_key"], lambda: read_passphrase(opts["passphrase_file"]))
    total = len(defenses) * len(counts) * base.rounds + (0 if opts["no_reference"] else base.rounds)
    with step_progress(total, "simulating") as advance:
        report = experiment.run(base, defenses, counts, params, encrypt=opts["encrypt"],
                                audit_log=opts["audit_log"], signer=signer, reference=not opts["no_reference"],
                                progress=advance)
    _render(report, opts)


def _check_outputs(opts: dict[str, Any]) -> None:
    """Refuse, before a simulation that can take minutes, an output that cannot be written (missing folder, a
    directory) or that two options share."""
    from qsafe._io import check_writable
    from qsafe.errors import OutputExistsError

    outputs = [(name, opts[key]) for name, key in (("--results", "json_path"), ("--plot", "plot_path"),
                                                  ("--audit-log", "audit_log")) if opts.get(key) is not None]
    if opts.get("audit_log") is not None:
        outputs.append(("--audit-log's public key", opts["audit_log"].with_name(opts["audit_log"].name + ".pub")))
    seen: dict[str, str] = {}
    for name, path in outputs:
        check_writable(path)
        real = os.path.realpath(path)
        if real in seen:
            raise OutputExistsError(f"{name} and {seen[real]} name the same file {path}")
        seen[real] = name


def _render(report: Any, opts: dict[str, Any]) -> None:
    from qsafe._text import printable  # `fl report` renders a results file: a defense name is one escaped line
    from qsafe.federated_sim import experiment

    if opts.get("as_json"):  # stdout holds the one JSON document; files are still written
        if opts["json_path"] is not None:
            experiment.write_json(report, opts["json_path"])
        if opts["plot_path"] is not None:
            experiment.plot_report(report, opts["plot_path"])
        click.echo(experiment.report_json_text(report))
        if report.audit_public_key is not None:
            click.echo(f"qsafe: audit log {opts['audit_log']}, public key {report.audit_public_key}", err=True)
        return
    if opts["matrix"]:
        click.echo(experiment.matrix_markdown(report))
    else:
        for result in report.results:
            click.echo("\n".join(map(printable, _round_lines(result) + _summary_lines(result, report.reference))))
    if report.reference is not None and not opts["matrix"]:
        r = report.reference.final
        click.echo(f"attack-free FedAvg (same seed): accuracy {r.accuracy:.2%}, ASR floor {r.asr:.1%}, "
                   f"raw {r.raw_asr:.1%}")
    if opts["json_path"] is not None:
        experiment.write_json(report, opts["json_path"])
    if opts["plot_path"] is not None:
        experiment.plot_report(report, opts["plot_path"])
    if report.audit_public_key is not None:
        click.echo(f"audit log: {opts['audit_log']} (verify: qsafe fl audit verify {opts['audit_log']} "
                   f"--key {report.audit_public_key})")


@click.command()
@click.argument("results", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--matrix", is_flag=True, help="Print the defenses x attackers table (Markdown).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG: lines per round (one attacker count), or the heatmap matrix (several).")
@click.option("--attackers", type=int, help="Only the runs with this many attackers (e.g. one row of a matrix).")
@json_option("Print the (selected) results as JSON on stdout instead of the tables.")
def report(results: Path, matrix: bool, plot_path: Path | None, attackers: int | None, as_json: bool) -> None:
    """Re-tabulate and re-plot RESULTS (`fl simulate --results FILE`) without re-running: seconds, not minutes."""
    from qsafe import _json
    from qsafe.federated_sim.report import report_from_json

    if plot_path is not None:
        refuse_same_file(plot_path, results)
    loaded = report_from_json(_json.load_file(results, "simulation results", max_bytes=256 << 20))
    if attackers is not None:
        kept = tuple(r for r in loaded.results if r.config.attackers == attackers)
        if not kept:
            found = sorted({r.config.attackers for r in loaded.results})
            raise UsageError(f"{results} has no run with {attackers} attackers (it has {found})")
        loaded = dataclasses.replace(loaded, results=kept)
    _render(loaded, {"matrix": matrix, "json_path": None, "plot_path": plot_path, "audit_log": None,
                     "as_json": as_json})


@click.group()
def audit() -> None:
    """Audit trails of federated rounds."""


@audit.command("verify")
@click.argument("log", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The aggregator's ML-DSA public key.")
@json_option("Print what was verified as JSON.")
def verify(log: Path, key_path: Path, as_json: bool) -> None:
    """Check LOG's hash chain and every round head's ML-DSA signature; silent on success.

    A broken log exits 17 and names the first broken record.
    """
    from qsafe.federated.audit import verify_audit_log
    from qsafe.keys import load_public_key

    summary = verify_audit_log(log, load_public_key(key_path))
    if as_json:
        emit_json(dataclasses.asdict(summary))


__all__ = ["audit", "report", "simulate"]
