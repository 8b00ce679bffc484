"""Reports of backdoor simulations: several defenses on one scenario, the defenses x attackers matrix, plots.

Every run of one report shares the prepared data and one attack-free FedAvg reference (same seed), so the
reference's accuracy and ASR floor apply to every row.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsafe._io import atomic_output
from qsafe.errors import FormatError
from qsafe.federated._model import ModelSpec
from qsafe.federated.attacks import AttackSpec
from qsafe.federated.simulation import (
    Progress,
    RoundMetrics,
    RunResult,
    SimulationConfig,
    SimulationResult,
    prepare,
    simulate,
)

__all__ = ["Report", "matrix_markdown", "plot_report", "run_report"]


@dataclass(frozen=True)
class Report:
    """Results of several scenarios that differ only in defense and attacker count."""

    results: tuple[SimulationResult, ...]
    reference: RunResult | None
    audit_public_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: every run (per-round and final metrics) and the reference."""
        ref = self.results[0].to_json()["reference"]
        return {"version": "qsafe-fl-sim/v1", "reference": ref,
                "runs": [{**r.to_json(), "reference": None} for r in self.results]}


def run_report(base: SimulationConfig, defenses: Sequence[str], attacker_counts: Sequence[int], *,
               params: dict[str, dict[str, Any]] | None = None, reference: bool = True,
               simulate_one: Callable[..., SimulationResult] = simulate, progress: Progress | None = None) -> Report:
    """Run every (defense, attackers) pair on ``base``, plus one attack-free reference.

    Args:
        base: the scenario (its ``defense`` and ``attackers`` are replaced per run).
        defenses: defense names.
        attacker_counts: attacker counts.
        params: per-defense parameters (``defense_params``).
        reference: run the attack-free FedAvg reference once.
        simulate_one: :func:`~qsafe.federated.simulation.simulate` or a wrapper of it (encrypted mode).
        progress: called with 1 per round of every run.

    Returns:
        The report.
    """
    configs = [dataclasses.replace(base, defense=defense, attackers=count,
                                   defense_params=(params or {}).get(defense, {}))
               for count in attacker_counts for defense in defenses]
    for config in configs:  # refuse impossible settings before the first long run
        config.check()
    prep = prepare(base)
    results: list[SimulationResult] = []
    for config in configs:
        results.append(simulate_one(config, prep=prep, reference=reference and not results, progress=progress))
    return Report(tuple(results), results[0].reference)


def _run_from_json(data: dict[str, Any]) -> RunResult:
    return RunResult(data["defense"], tuple(data["attackers"]), tuple(RoundMetrics(**m) for m in data["rounds"]))


def report_from_json(data: dict[str, Any]) -> Report:
    """Rebuild a report from what :meth:`Report.to_json` wrote (to re-plot or re-tabulate without re-running).

    Raises:
        FormatError: not a ``qsafe-fl-sim/v1`` document.
    """
    if not isinstance(data, dict) or data.get("version") != "qsafe-fl-sim/v1":
        raise FormatError("not a qsafe-fl-sim/v1 results file")
    try:
        results = []
        for run in data["runs"]:
            cfg = dict(run["config"])
            cfg["attack"], cfg["model"] = AttackSpec(**cfg["attack"]), ModelSpec(**cfg["model"])
            results.append(SimulationResult(SimulationConfig(**cfg), _run_from_json(run), None, run["parameters"],
                                            run["train_size"], run["test_size"], run["seconds"],
                                            {k: run[k] for k in ("privacy", "encrypted") if k in run}))
        reference = _run_from_json(data["reference"]) if data.get("reference") else None
    except (KeyError, TypeError) as exc:
        raise FormatError(f"malformed results file: {exc}") from exc
    return Report(tuple(results), reference)


def matrix_markdown(report: Report) -> str:
    """The defenses x attackers table: final ASR (raw ASR) and clean accuracy per cell, as Markdown."""
    counts = sorted({r.config.attackers for r in report.results})
    defenses = list(dict.fromkeys(r.config.defense for r in report.results))
    cell = {(r.config.defense, r.config.attackers): r.run.final for r in report.results}
    first = report.results[0].config
    lines = [
        (f"Attack `{first.attack.kind}`, {first.clients} clients ({first.partition}), {first.rounds} rounds, "
         f"seed {first.seed}. Cells: ASR (raw ASR) / clean accuracy after the last round."),
    ]
    if report.reference is not None:
        ref = report.reference.final
        lines.append(f"Attack-free FedAvg: accuracy {ref.accuracy:.2%}, ASR floor {ref.asr:.1%} "
                     f"(raw {ref.raw_asr:.1%}).")
    lines += [
        "",
        "| defense | " + " | ".join(f"{k} attacker{'s' if k != 1 else ''}" for k in counts) + " |",
        "|---|" + "---|" * len(counts),
    ]
    for defense in defenses:
        row = []
        for k in counts:
            m = cell.get((defense, k))
            row.append("—" if m is None else f"{m.asr:.1%} ({m.raw_asr:.1%}) / {m.accuracy:.2%}")
        lines.append(f"| {defense} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot_report(report: Report, path: str | Path) -> None:
    """Draw clean accuracy and ASR per round, one line per run, the reference dashed (PNG, matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and never a GUI backend from a library call
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_asr) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=90)
    counts = sorted({r.config.attackers for r in report.results})
    # one line per defense: with several attacker counts (a matrix), draw the default count (2) or the first
    shown = 2 if 2 in counts else counts[0]
    for result in (r for r in report.results if r.config.attackers == shown):
        label = result.config.defense
        rounds = [m.round for m in result.run.rounds]
        ax_acc.plot(rounds, [m.accuracy for m in result.run.rounds], label=label, linewidth=1.2)
        ax_asr.plot(rounds, [m.asr for m in result.run.rounds], label=label, linewidth=1.2)
    if report.reference is not None:
        ref_rounds = [m.round for m in report.reference.rounds]
        ax_acc.plot(ref_rounds, [m.accuracy for m in report.reference.rounds], "k--", label="attack-free FedAvg")
        ax_asr.plot(ref_rounds, [m.asr for m in report.reference.rounds], "k--", label="attack-free FedAvg")
    first = report.results[0].config
    ax_acc.set(title="clean accuracy", xlabel="round", ylim=(0.85, 1.0))
    ax_asr.set(title=f"attack success rate ({first.attack.kind}, {shown} of {first.clients} attackers)",
               xlabel="round", ylim=(-0.02, 1.02))
    for ax in (ax_acc, ax_asr):
        ax.grid(alpha=0.3)
    ax_asr.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    with atomic_output(path) as handle:
        handle.write(buffer.getvalue())
