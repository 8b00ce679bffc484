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
from qsafe.federated_sim.attacks import AttackSpec
from qsafe.federated_sim.model import ModelSpec
from qsafe.federated_sim.simulation import (
    RoundMetrics,
    RoundProgress,
    RunResult,
    SimulationConfig,
    SimulationResult,
    prepare,
    simulate,
)

__all__ = ["Report", "matrix_markdown", "plot_matrix", "plot_report", "report_from_json", "run_report"]


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
               simulate_one: Callable[..., SimulationResult] = simulate, progress: RoundProgress | None = None) -> Report:
    """Run every (defense, attackers) pair on ``base``, plus one attack-free reference.

    Args:
        base: the scenario (its ``defense`` and ``attackers`` are replaced per run).
        defenses: defense names.
        attacker_counts: attacker counts.
        params: per-defense parameters (``defense_params``).
        reference: run the attack-free FedAvg reference once.
        simulate_one: :func:`~qsafe.federated_sim.simulation.simulate` or a wrapper of it (encrypted mode).
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
    from qsafe._text import printable  # names come from a results file: each line stays one escaped line

    return "\n".join(map(printable, lines)) + "\n"


_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "h", "<", ">")


def _save(fig: Any, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    with atomic_output(path) as handle:
        handle.write(buffer.getvalue())


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and never a GUI backend from a library call
    import matplotlib.pyplot as plt

    return plt


def plot_report(report: Report, path: str | Path) -> None:
    """Draw the report as a PNG (matplotlib Agg).

    One attacker count: clean accuracy and ASR per round, one line per defense. The attack-free reference is drawn
    first, wide and light, so a defense that matches it (ASR at the floor) stays visible on top of it; each
    defense has its own line style and markers, and its legend entry gives its final ASR and accuracy, so lines
    that coincide can still be told apart. Several attacker counts (a matrix): :func:`plot_matrix`.
    """
    counts = sorted({r.config.attackers for r in report.results})
    if len(counts) > 1:
        plot_matrix(report, path)
        return
    plt = _pyplot()
    fig, (ax_acc, ax_asr) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=90)
    if report.reference is not None:
        ref_rounds = [m.round for m in report.reference.rounds]
        for ax, values in ((ax_acc, [m.accuracy for m in report.reference.rounds]),
                           (ax_asr, [m.asr for m in report.reference.rounds])):
            ax.plot(ref_rounds, values, color="0.75", linewidth=5, solid_capstyle="round", zorder=1,
                    label="attack-free FedAvg (reference)")
    results = list(report.results)
    # ASR lines of several defenses often coincide (all at the floor, or all at 100%): each has its own line style,
    # and its markers start at a different round, so coinciding lines still show every marker shape
    for n, result in enumerate(results):
        final = result.run.final
        label = f"{result.config.defense}: ASR {final.asr:.0%}, acc {final.accuracy:.1%}"
        rounds = [m.round for m in result.run.rounds]
        every = max(1, min(len(results), len(rounds) // 4))
        style = {"linestyle": _STYLES[n % len(_STYLES)], "marker": _MARKERS[n % len(_MARKERS)],
                 "markevery": (n % every, every), "markersize": 4.5, "linewidth": 1.3, "zorder": 3 + n}
        ax_acc.plot(rounds, [m.accuracy for m in result.run.rounds], label=label, **style)
        ax_asr.plot(rounds, [m.asr for m in result.run.rounds], label=label, **style)
    first = report.results[0].config
    ax_acc.set(title="clean accuracy", xlabel="round", ylim=(0.85, 1.0))
    ax_asr.set(title=f"attack success rate ({first.attack.kind}, {counts[0]} of {first.clients} attackers)",
               xlabel="round", ylim=(-0.04, 1.04))
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_acc, ax_asr):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_asr.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title="final values", title_fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def plot_matrix(report: Report, path: str | Path) -> None:
    """The defenses x attackers matrix as two annotated heatmaps: final ASR (red is bad) and clean accuracy
    (points below the attack-free reference, when there is one), PNG."""
    import numpy as np

    plt = _pyplot()
    counts = sorted({r.config.attackers for r in report.results})
    defenses = list(dict.fromkeys(r.config.defense for r in report.results))
    cell = {(r.config.defense, r.config.attackers): r.run.final for r in report.results}
    asr = np.full((len(defenses), len(counts)), np.nan)
    acc = np.full_like(asr, np.nan)
    for i, d in enumerate(defenses):
        for j, k in enumerate(counts):
            if (d, k) in cell:
                asr[i, j], acc[i, j] = cell[(d, k)].asr, cell[(d, k)].accuracy
    ref = report.reference.final.accuracy if report.reference is not None else None
    drop = (acc - ref) * 100 if ref is not None else acc * 100
    fig, (ax_asr, ax_acc) = plt.subplots(1, 2, figsize=(10, 0.42 * len(defenses) + 1.8), dpi=90)
    xlabels = [f"{k} attacker{'s' if k != 1 else ''}" for k in counts]
    def percent(v: float) -> str:
        return f"{v:.1f}%"

    def points(v: float) -> str:
        return f"{v:+.2f}" if ref is not None else f"{v:.2f}%"

    fmt_of: dict[str, Callable[[float], str]] = {"asr": percent, "acc": points}
    panels = (
        (ax_asr, asr * 100, "Reds", (0.0, 100.0), "final ASR, %", "asr"),
        (ax_acc, drop, "Blues_r" if ref is not None else "Blues",
         (min(-5.0, float(np.nanmin(drop))), 0.0) if ref is not None else (85.0, 100.0),
         f"clean accuracy, points vs attack-free {ref:.2%}" if ref is not None else "clean accuracy, %", "acc"),
    )
    for ax, values, cmap, (low, high), title, kind in panels:
        fmt = fmt_of[kind]
        image = ax.imshow(values, cmap=cmap, vmin=low, vmax=high, aspect="auto")
        ax.set_xticks(range(len(counts)), xlabels)
        ax.set_yticks(range(len(defenses)), defenses)
        ax.set_title(title, fontsize=9)
        for i in range(len(defenses)):
            for j in range(len(counts)):
                if not np.isnan(values[i, j]):
                    dark = (values[i, j] - low) / ((high - low) or 1) > 0.55
                    if cmap == "Blues_r":
                        dark = not dark
                    ax.text(j, i, fmt(values[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if dark else "black")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    first = report.results[0].config
    fig.suptitle(f"backdoor defenses: attack {first.attack.kind}, {first.clients} clients ({first.partition}), "
                 f"{first.rounds} rounds, seed {first.seed}", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
