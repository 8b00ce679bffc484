"""The pipeline's report: a Markdown file with the goal table and every stage's figures, and PNG plots.

Plots (matplotlib, imported only here): PR curves with and without DP (at the sample's rate and re-weighted to
0.172%), membership-inference ROC curves beside the DP bound, extraction F1 against queries with the monitor's
flags, and the poisoning scenarios' high-amount recall.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qsafe.fraud.stages import Context

__all__ = ["goals", "goals_markdown", "write_report"]


def goals(cfg: Mapping[str, Any], results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's five goals, each with the measured value and whether it was met."""
    g = cfg
    ev, ex, pv, th = results["evaluation"], results["exercise"], results["privacy"], results["theft"]
    target = next(k for k in ex["scenarios"] if k.endswith("_remediated"))
    rem = ex["scenarios"][target]
    attacked = ex["scenarios"][target.removesuffix("_remediated")]
    clean = ex["scenarios"]["clean"]
    pr = ev["metrics"]["released"]["sample_rate"]["pr_auc"]
    eps = results["train"]["epsilon"]
    adv = pv["released_procedure"]["worst"]["frauds"]["advantage"]
    attacks = th["attacks"]
    stopped = [a for a in attacks if a["flagged_before_goal"] or a["never_reaches_goal"]]
    wm = th["watermark"]
    tpr = wm["identified"] / max(wm["copies_tested"], 1)
    fpr = wm["false_positives"] / max(wm["independent_tests"], 1)
    return [
        {"goal": f"DP-SGD at epsilon {eps:.2f}: PR-AUC >= {g['pr_auc']}", "measured": f"{pr:.3f}",
         "met": pr >= g["pr_auc"]},
        {"goal": f"targeted-flip high-amount recall restored to >= {g['high_amount_recall']}",
         "measured": f"{rem['high_amount_recall']:.3f} (clean {clean['high_amount_recall']:.3f}, attacked "
                     f"{attacked['high_amount_recall']:.3f})", "met": rem["high_amount_recall"] >= g["high_amount_recall"]},
        {"goal": f"membership advantage on frauds <= {g['membership_advantage_frauds']} at the released epsilon",
         "measured": f"{adv:.3f} (worst of loss and LiRA)", "met": adv <= g["membership_advantage_frauds"]},
        {"goal": f"extraction with <= {g['extraction_queries']} queries flagged before F1 {g['extraction_f1']}",
         "measured": f"{len(stopped)}/{len(attacks)} attacks flagged first or never reaching it"
                     + (f"; not: {', '.join(a['stream'] + '/' + a['mode'] for a in attacks if a not in stopped)}"
                        if len(stopped) < len(attacks) else ""),
         "met": len(stopped) == len(attacks)},
        {"goal": f"watermark identifies 100% of extracted copies at <= {g['watermark_false_positive_rate']:.0%} false "
                 "positives", "measured": f"{wm['identified']}/{wm['copies_tested']} copies, "
                                          f"{wm['false_positives']}/{wm['independent_tests']} independent tests positive",
         "met": tpr >= g["watermark_identified"] and fpr <= g["watermark_false_positive_rate"]},
    ]


def goals_markdown(table: list[dict[str, Any]]) -> list[str]:
    """The goal table as Markdown lines (the report's, and the one copied into docs/fraud_pipeline.md)."""
    return _table(["goal", "measured", "met"], [[g["goal"], g["measured"], "yes" if g["met"] else "**no**"]
                                                for g in table])


def _scenario_order(scenarios: Mapping[str, Any]) -> list[str]:
    """clean, random flips by size, targeted flips (each followed by its remediation)."""
    import re

    def key(name: str) -> tuple[int, float, bool]:
        size = re.search(r"(\d+(?:\.\d+)?)pct", name)
        kind = 0 if name == "clean" else 1 if name.startswith("random") else 2
        return kind, float(size.group(1)) if size else 0.0, name.endswith("_remediated")

    return sorted(scenarios, key=key)


def _load_average() -> str:
    import os

    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1, 5, 15 min)"
    except OSError:  # pragma: no cover - not on Linux
        return "unknown"


def _f(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _plots(out: Path, results: Mapping[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    curves = results["evaluation"]["curves"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, rate, title in ((axes[0], "sample_rate", "at the sample's 9.1% fraud rate"),
                            (axes[1], "real_rate", "re-weighted to the real 0.172%")):
        for name in sorted({k.split("/")[0] for k in curves}):
            c = curves.get(f"{name}/{rate}")
            if c:
                label = {"released": "released (DP)", "non_dp": "no DP"}.get(name, name.replace("eps_", "DP eps "))
                ax.plot(c["recall"], c["precision"], label=label, lw=2 if name == "released" else 1.2)
        ax.set(xlabel="recall", ylabel="precision", title=f"PR curves {title}", xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pr_curves.png", dpi=110)
    plt.close(fig)
    made.append("pr_curves.png")

    roc = results["privacy"]["roc"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    bound = results["privacy"]["released_procedure"].get("epsilon")
    delta = results["privacy"]["released_procedure"].get("delta") or 0.0
    for ax, subset in ((axes[0], "all"), (axes[1], "frauds")):
        for key, c in roc.items():
            who, attack, sub = key.split("/")
            if sub != subset:
                continue
            ax.plot(c["fpr"], c["tpr"], label=f"{attack} vs {'DP' if who == 'dp' else 'non-DP over-fit'}",
                    ls="-" if who == "dp" else "--")
        if bound is not None:
            import math

            xs = [10 ** (-4 + 4 * i / 100) for i in range(101)]
            ax.plot(xs, [min(1.0, math.exp(bound) * x + delta, 1 - (1 - delta - x) / math.exp(bound)) for x in xs],
                    color="k", lw=0.8, label=f"DP bound (eps {bound:.2f})")
        ax.plot([1e-4, 1], [1e-4, 1], color="grey", lw=0.5)
        ax.set(xscale="log", yscale="log", xlim=(1e-3, 1), ylim=(1e-3, 1), xlabel="false positive rate",
               ylabel="true positive rate", title=f"Membership inference ROC ({subset})")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "mia_roc.png", dpi=110)
    plt.close(fig)
    made.append("mia_roc.png")

    th = results["theft"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=True)
    streams = sorted({a["stream"] for a in th["attacks"]})
    for ax, stream in zip(axes, streams):
        for a in th["attacks"]:
            if a["stream"] != stream:
                continue
            xs = [c["queries"] for c in a["curve"]]
            line, = ax.plot(xs, [c["f1"] for c in a["curve"]], marker="o", ms=3, label=a["mode"])
            if a["flag"]:
                ax.axvline(a["flag"]["query"], color=line.get_color(), ls=":", lw=1)
        ax.axhline(th["goal_f1"], color="k", lw=0.8, ls="--")
        ax.axhline(th["victim_f1"], color="grey", lw=0.8)
        ax.set(xscale="log", xlabel="queries", title=f"{stream} queries (dotted: monitor flag)")
    axes[0].set_ylabel("copy's F1 on the test split")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "extraction_f1.png", dpi=110)
    plt.close(fig)
    made.append("extraction_f1.png")

    sc = results["exercise"]["scenarios"]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    names = _scenario_order(sc)
    ax.bar(range(len(names)), [sc[n]["high_amount_recall"] for n in names], color="tab:blue")
    ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
    ax.set(ylim=(0, 1), ylabel="high-amount fraud recall", title="Label-flip poisoning (k-fold, non-DP MLP)")
    fig.tight_layout()
    fig.savefig(out / "poisoning.png", dpi=110)
    plt.close(fig)
    made.append("poisoning.png")
    return made


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_f(c) for c in r) + " |" for r in rows)]


def write_report(ctx: Context) -> dict[str, Any]:
    """Write ``report/report.md`` and its plots from the stages' results; returns the goal table."""
    from qsafe.fraud.stages import STAGES

    def load(rel: str) -> Any:
        return json.loads(ctx.path(rel).read_text())

    results = {"evaluation": load("results/evaluation.json"), "exercise": load("results/poisoning-exercise.json"),
               "privacy": load("results/privacy.json"), "theft": load("results/theft.json"),
               "release": load("results/release.json"), "train": load("state/train.json")["summary"]}
    table = goals(ctx.cfg["goals"], results)
    out = ctx.path("report")
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(out, results)
    ev, pv, th, tr = results["evaluation"], results["privacy"], results["theft"], results["train"]
    lines = [f"# Fraud pipeline report: {ctx.cfg['pipeline']['name']}", "",
             "Every figure below was computed by this run (`qsafe pipeline run " + ctx.cfg.source + "`). Metrics are "
             "given at the sample's 9.1% fraud rate and re-weighted to the full data's 0.172% (legitimate rows "
             "weighted up; recall is unchanged, precision/F1/PR-AUC are what they would be at that rate).", "",
             "## Goals", "", *goals_markdown(table), ""]
    lines += ["## Stages", "", *_table(["stage", "what"], [[s.name, s.doc] for s in STAGES]), ""]
    lines += ["## Released model (DP-SGD, Opacus)", "",
              (f"epsilon **{tr['epsilon']:.3f}** at delta {tr['delta']:g} (accountant: Opacus RDP; cross-check "
              f"{', '.join(f'{k} {v:.3f}' for k, v in tr['epsilon_cross_check'].items())}), sigma {tr['sigma']:.3f}, "
              f"Poisson sampling q = {tr['q']:g}, {tr['steps']} steps, clip {tr['clip']:g}. Model digest "
              f"`{tr['model_digest']}`."), ""]
    rows = []
    for name, m in ev["metrics"].items():
        for rate in ("sample_rate", "real_rate"):
            r = m[rate]
            rows.append([name, rate.replace("_", " "), r["pr_auc"], r["roc_auc"], r["precision"], r["recall"], r["f1"]])
    lines += _table(["model", "fraud rate", "PR-AUC", "ROC-AUC", "precision@0.5", "recall@0.5", "F1@0.5"], rows)
    lines += ["", f"Test split: {ev['test']['rows']} rows, {ev['test']['frauds']} frauds.", "",
              "![PR curves](pr_curves.png)", ""]
    ex = results["exercise"]
    lines += ["## Poisoning", "", (f"Exercise: {ex['folds']}-fold cross-validation over all rows, "
              f"{ex['training']['description']}; high-amount frauds: amount >= {ex['high_amount_cutoff']:.2f} "
              f"({ex['high_amount_frauds']} frauds)."), ""]
    rows = [[n, s["high_amount_recall"], s["high_amount_recall_at_1pct_fpr"], s["pr_auc"], s["pr_auc_real_rate"],
             f"{s.get('audit_failed_folds', s.get('audit_failed_after_folds', '-'))}/{s['folds']}",
             f"{s.get('flips_found', s.get('flips_dropped_or_fixed', '-'))}/{s.get('flips', '-')}"]
            for n, s in ((n, ex["scenarios"][n]) for n in _scenario_order(ex["scenarios"]))]
    lines += _table(["scenario", "high-amount recall@0.5", "@1% FPR", "PR-AUC", "PR-AUC (0.172%)",
                     "audit failed (folds)", "flips found"], rows)
    lines += ["", "![poisoning](poisoning.png)", ""]
    lines += ["## Privacy (membership inference)", ""]
    rows = []
    for who, key in (("released procedure (DP)", "released_procedure"), ("non-DP over-fit", "non_dp_overfit")):
        for attack, by in pv[key]["attacks"].items():
            for subset, m in by.items():
                rows.append([who, attack, subset, m["auc"], m["advantage"], m["tpr_at_1pct_fpr"], m["trials"]])
    lines += _table(["procedure", "attack", "rows", "AUC", "advantage", "TPR@1%FPR", "trials"], rows)
    bound = pv["released_procedure"].get("dp_bound")
    if bound:
        lines += ["", (f"DP bound at the released epsilon: advantage <= {bound['advantage']:.3f}, TPR@1%FPR <= "
                      f"{bound['tpr_at_1pct_fpr']:.4f}.")]
    lines += ["", "![MIA ROC](mia_roc.png)", ""]
    mon = th["monitor"]
    lines += ["## Theft (extraction, monitor, watermark)", "",
              (f"The released model's own F1 on the test split: {th['victim_f1']:.3f}. Monitor: alpha {mon['alpha']:g}, "
              f"{mon['benign']['flagged']}/{mon['benign']['keys']} legitimate keys ({mon['benign']['queries_per_key']} "
              f"real queries each at 0.172% fraud) flagged."), ""]
    rows = [[a["stream"], a["mode"], a["flag"]["query"] if a["flag"] else "never",
             a["flag"]["test"] if a["flag"] else "-", a["f1_at_flag"] if a["flag"] else "-",
             a["first_budget_reaching_goal"] or "never", a["final_f1"], a["final_fidelity_f1"]] for a in th["attacks"]]
    lines += _table(["stream", "API", "flagged at query", "test", "F1 at flag", f"first budget F1>={th['goal_f1']}",
                     f"F1 after {th['queries']}", "fidelity F1"], rows)
    wm = th["watermark"]
    lines += ["", (f"Watermark (rate {wm['rate']:g}, alpha {wm['alpha']:g}): {wm['identified']}/{wm['copies_tested']} "
                  f"extracted copies identified; {wm['false_positives']}/{wm['independent_tests']} tests of "
                  f"independently trained models positive ({', '.join(wm['independent_models'])})."), "",
              "![extraction](extraction_f1.png)", ""]
    rel = results["release"]
    lines += ["## Release", "", (f"`{rel['release']}` ({rel['bytes']} bytes) is encrypted to `{rel['recipient'][:24]}...`. "
              f"Loaded through the gate with policy `{rel['policy']}` and environment evidence `{rel['environment_evidence']}`: "
              f"attestation {rel['attestation']['verdict']}, scores identical to the trained model: "
              f"{rel['scores_identical']}."), ""]
    for what, r in rel["refusals"].items():
        lines.append(f"- {what.replace('_', ' ')}: refused = {r['refused']}"
                     + (f" ({r['error']}, exit {r['exit_code']}: {r['message']}"
                        + (f" {', '.join(r['failed'])}" if r.get("failed") else "") + ")" if r["refused"] else ""))
    lines += ["", "## Run", "", ("Wall and CPU seconds of each stage's last run (`state/STAGE.json`; CPU includes the "
                                 "worker processes). The machine's load average when the report was written: "
                                 + _load_average() + "."), ""]
    rows, wall, cpu = [], 0.0, 0.0
    for s in STAGES:
        state = ctx.path(f"state/{s.name}.json")
        if s.name != "report" and state.is_file():
            rec = json.loads(state.read_text())
            wall, cpu = wall + float(rec.get("seconds", 0)), cpu + float(rec.get("cpu_seconds", 0))
            rows.append([s.name, f"{rec.get('seconds', 0):.1f}", f"{rec.get('cpu_seconds', 0):.1f}"])
    rows.append(["all stages", f"{wall:.1f}", f"{cpu:.1f}"])
    lines += _table(["stage", "wall s", "CPU s"], rows)
    lines += ["", "## Evidence files", ""]
    for rel_path in ("data/dataset.manifest.json", "data/poisoning-audit.json", "evidence/dp-certificate.json",
                     "evidence/privacy-audit.json", "evidence/theft-audit.json", "evidence/model-card.json",
                     "model/model.sig", "release/fraud-model.age"):
        from qsafe.fraud.pipeline import file_digest

        p = ctx.path(rel_path)
        if p.is_file():
            lines.append(f"- `{rel_path}` sha256 `{file_digest(p)[:16]}...`")
    ctx.write("report/report.md", ("\n".join(lines) + "\n").encode())
    ctx.write_json("report/goals.json", table)
    ctx.write_json("report/run.json", {"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
                                       "load_average": _load_average(), "epsilon": tr["epsilon"],
                                       "config": ctx.cfg.source})
    return {"goals": {g["goal"]: {"measured": g["measured"], "met": g["met"]} for g in table}, "plots": plots}
