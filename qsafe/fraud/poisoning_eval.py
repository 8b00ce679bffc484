"""The poisoning exercise: attack the training labels, audit, remediate, and measure what the model loses.

Every scenario is run with k-fold cross-validation over the whole sample, so every fraud is scored once by a model
that did not train on it (the high-amount frauds are only ~50 rows: one split would leave ~10 to measure on).
In each fold the attack flips labels of that fold's training rows only; the audit runs on the attacked training
rows; the model is trained on them (or on the remediated rows) and scores the held-out fold.

Measured per scenario: recall on the high-amount frauds (amount at or above the targeted attack's cut-off: the
90th percentile of fraud amounts) at the operating threshold 0.5 and at the threshold that flags 1% of legitimate
rows, PR-AUC at the sample's rate and re-weighted to the real rate, the audit's verdicts and how many flipped rows
its detectors found.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from qsafe.fraud.poisoning import AuditParams, audit_labels, flip_random, flip_targeted, remediate

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from qsafe.fraud.training import TrainConfig

__all__ = ["EXERCISE_TRAINING", "poisoning_exercise", "scenario_metrics"]

Progress = Callable[[str], None]


def _exercise_training() -> TrainConfig:
    from qsafe.fraud.training import TrainConfig

    return TrainConfig(target_epsilon=None, hidden=16, epochs=20, batch_size=128, adam_lr=0.01)


EXERCISE_TRAINING = "non-DP MLP (hidden 16, Adam lr 0.01, batch 128, 20 epochs): the setting where flips bite"


def scenario_metrics(scores: npt.NDArray[np.float64], y: npt.NDArray[np.int64], high: npt.NDArray[np.bool_],
                     threshold: float = 0.5) -> dict[str, float]:
    """High-amount recall (at ``threshold`` and at 1% FPR), precision/recall at ``threshold``, PR-AUC."""
    import numpy as np
    from sklearn.metrics import average_precision_score

    from qsafe.fraud.data import prevalence_weights

    at_fpr = float(np.quantile(scores[y == 0], 0.99))
    flagged = scores >= threshold
    tp = int((flagged & (y == 1)).sum())
    return {
        "high_amount_recall": float((scores[high] >= threshold).mean()),
        "high_amount_recall_at_1pct_fpr": float((scores[high] > at_fpr).mean()),
        "recall": float(tp / max(int((y == 1).sum()), 1)),
        "precision": float(tp / max(int(flagged.sum()), 1)),
        "legit_flagged": float((flagged & (y == 0)).sum() / max(int((y == 0).sum()), 1)),
        "pr_auc": float(average_precision_score(y, scores)),
        "pr_auc_real_rate": float(average_precision_score(y, scores, sample_weight=prevalence_weights(y))),
    }


def _scenarios(random_fractions: Sequence[float], budget: float) -> list[tuple[str, str, float]]:
    out = [("clean", "none", 0.0)]
    out += [(f"random_{round(f * 100)}pct", "random", f) for f in random_fractions]
    out.append((f"targeted_{round(budget * 100)}pct", "targeted", budget))
    return out


def _fold(task: tuple[Any, ...]) -> dict[str, Any]:
    """Worker: every scenario of one fold; returns held-out scores and audit summaries."""
    import numpy as np

    from qsafe.fraud.training import train_model

    x, audit_x, y, amount, feature_names, trn, tst, scenarios, prm, cfg, seed, fold = task
    xt, yt, at = x[trn], y[trn], audit_x[trn]
    fold_cfg = dataclasses.replace(cfg, seed=seed * 100 + fold)
    out: dict[str, Any] = {"scores": {}, "audits": {}, "lines": []}
    for name, kind, amount_ in scenarios:
        flips = (flip_random(yt, amount_, seed=seed * 100 + fold) if kind == "random" else
                 flip_targeted(yt, amount[trn], amount_) if kind == "targeted" else np.zeros(len(yt), bool))
        yp = np.where(flips, 0, yt)
        audit = audit_labels(at, yp, feature_names, params=prm)
        hidden = np.zeros(len(yt), bool)
        hidden[audit.confirmed_hidden] = True
        out["audits"][name] = {"verdict": audit.verdict, "flips": int(flips.sum()),
                               "flips_found": int((hidden & flips).sum()), "suspects": int(hidden.sum()),
                               "slices": [s.as_dict() for s in audit.slices], "reasons": audit.reasons}
        out["scores"][name] = train_model(xt, yp, fold_cfg).predict_proba(x[tst])
        if kind == "targeted":
            keep, fixed = remediate(yp, audit)
            after = audit_labels(at[keep], fixed[keep], feature_names, params=prm)
            out["audits"]["remediated"] = {"verdict_after": after.verdict, "dropped": int((~keep).sum()),
                                           "relabelled": int((fixed != yp).sum()),
                                           "flips_dropped_or_fixed": int((flips & (~keep | (fixed == 1))).sum())}
            out["scores"]["remediated"] = train_model(xt[keep], fixed[keep], fold_cfg).predict_proba(x[tst])
        out["lines"].append(f"{name} ({audit.verdict})")
    return out


def poisoning_exercise(x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], amount: npt.NDArray[np.float64],
                       feature_names: Sequence[str], *, folds: int = 5, random_fractions: Sequence[float] = (0.05, 0.1, 0.2),
                       targeted_budget: float = 0.1, params: AuditParams | None = None,
                       training: TrainConfig | None = None, seed: int = 0, workers: int = 1,
                       audit_x: npt.NDArray[np.float32] | None = None,
                       progress: Progress | None = None) -> dict[str, Any]:
    """Run clean, random-flip and targeted-flip scenarios (and the remediated targeted one) by k-fold CV.

    ``x`` is what the models train on; ``audit_x`` (default ``x``) is what the audit's detectors look at.

    Returns:
        ``{"scenarios": {name: metrics and audit summary}, "high_amount_cutoff": ..., ...}``; the targeted
        scenario has a ``remediated`` entry (relabel confirmed suspects, quarantine flagged slices, retrain).
    """
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    from qsafe.fraud._parallel import pmap
    from qsafe.fraud.training import config_dict

    prm = params or AuditParams(seed=seed)
    cfg = training or _exercise_training()
    cutoff = float(np.quantile(amount[y == 1], 1 - targeted_budget))
    high = (y == 1) & (amount >= cutoff)
    scenarios = _scenarios(random_fractions, targeted_budget)
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y))
    tasks = [(x, x if audit_x is None else audit_x, y, amount, tuple(feature_names), trn, tst, scenarios, prm, cfg,
              seed, k)
             for k, (trn, tst) in enumerate(splits)]

    def tick(k: int, res: dict[str, Any]) -> None:
        if progress:
            progress(f"fold {k + 1}/{folds}: " + ", ".join(res["lines"]))

    results = pmap(_fold, tasks, workers, tick)
    names = [n for n, _, _ in scenarios]
    target = f"targeted_{round(targeted_budget * 100)}pct"
    oof = {name: np.zeros(len(y)) for name in [*names, "remediated"]}
    for (_, tst), res in zip(splits, results):
        for name, sc in res["scores"].items():
            oof[name][tst] = sc
    out: dict[str, Any] = {}
    for name, kind, amount_ in scenarios:
        rows = [r["audits"][name] for r in results]
        out[name] = {"attack": kind, "amount": amount_, **scenario_metrics(oof[name], y, high),
                     "audit_failed_folds": sum(r["verdict"] == "fail" for r in rows), "folds": folds,
                     "flips": sum(r["flips"] for r in rows), "flips_found": sum(r["flips_found"] for r in rows),
                     "suspects": sum(r["suspects"] for r in rows),
                     "slices": rows[0]["slices"], "example_reasons": rows[0]["reasons"]}
    rem = [r["audits"]["remediated"] for r in results]
    out[target + "_remediated"] = {
        "attack": "targeted+remediation", "amount": targeted_budget, **scenario_metrics(oof["remediated"], y, high),
        "audit_failed_after_folds": sum(r["verdict_after"] == "fail" for r in rem),
        "dropped": sum(r["dropped"] for r in rem), "relabelled": sum(r["relabelled"] for r in rem),
        "flips_dropped_or_fixed": sum(r["flips_dropped_or_fixed"] for r in rem), "folds": folds}
    return {"scenarios": out, "high_amount_cutoff": cutoff, "high_amount_frauds": int(high.sum()), "folds": folds,
            "training": {"description": EXERCISE_TRAINING, **config_dict(cfg)},
            "scores": {"clean": oof["clean"], target: oof[target], target + "_remediated": oof["remediated"]}}
