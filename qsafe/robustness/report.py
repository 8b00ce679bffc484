"""The whole evaluation of one digits classifier: clean accuracy, attacks at each epsilon (worst case),
certified accuracy at each radius, gradient-masking checks; as a predicate, text tables and plots."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qsafe.robustness.attacks import AttackSpec

__all__ = ["Evaluation", "evaluate", "plot", "table"]


@dataclass
class Evaluation:
    """Everything measured, and the predicate to sign."""

    clean_accuracy: float
    results: list[dict[str, Any]]
    checks: dict[str, Any]
    predicate: dict[str, Any]
    certificates: dict[float, list[Any]] = field(default_factory=dict)


def evaluate(model: Any, info: dict[str, Any], x: np.ndarray, y: np.ndarray, *, dataset: dict[str, Any],
             norm: str = "linf", epsilons: Sequence[float] = (), attacks: Sequence[str] = ("fgsm", "pgd", "apgd-ce"),
             restarts: int = 5, art: bool = False, sigma: float | None = None, radii: Sequence[float] = (), n0: int = 100,
             n: int = 10_000, alpha: float = 0.001, seed: int = 0, masking_epsilon: float | None = None,
             progress: Callable[[str], None] | None = None) -> Evaluation:
    """Run the evaluation; every figure is a fraction of ``len(y)`` samples.

    With ``art``, ART's PGD and APGD-CE run beside qsafe's attacks and a sample is robust at an epsilon only if
    every attack (qsafe's and ART's) fails on it.
    """
    from qsafe.robustness import evaluation as ev
    from qsafe.robustness import smoothing

    say = progress or (lambda _m: None)
    clean = ev.clean_accuracy(model, x, y)
    say(f"clean accuracy {clean:.4f} on {len(y)} samples")
    names = tuple(attacks) + (("art-pgd", "art-apgd-ce") if art else ())
    specs = [s for e in epsilons for s in ev.default_attacks(norm, e, restarts=restarts, art=art) if s.name in names]
    results: list[dict[str, Any]] = [r.as_dict() for r in ev.evaluate_attacks(model, x, y, specs, seed=seed,
                                                                                progress=say)]
    large = None
    if masking_epsilon is not None and specs:
        large_res = ev.evaluate_attacks(model, x, y, [AttackSpec("pgd", norm, masking_epsilon, 40, 1)], seed=seed)
        large = large_res[0].robust_accuracy
        say(f"gradient-masking check: PGD at eps={masking_epsilon:g} leaves accuracy {large:.4f}")
    checks = ev.masking_checks([ev.EmpiricalResult(r["norm"], r["epsilon"], r["attacks"], r["robust_accuracy"])
                                for r in results], large_eps_accuracy=large) if specs else {}
    certs: dict[float, list[Any]] = {}
    if sigma is not None and radii:
        done = {"n": 0}

        def tick(i: int, total: int) -> None:
            if i == total or i % 50 == 0:
                say(f"certify sigma={sigma:g}: {i}/{total}")
            done["n"] = i

        cert = smoothing.certify_dataset(model, x, y, sigma, n0=n0, n=n, alpha=alpha, seed=seed, progress=tick)
        certs[sigma] = cert
        abstain = float(np.mean([c.label == smoothing.ABSTAIN for c in cert]))
        for r in radii:
            results.append({"kind": "certified", "norm": "l2", "sigma": sigma, "radius": r, "n0": n0, "n": n,
                            "alpha": alpha, "certified_accuracy": smoothing.certified_accuracy(cert, y, r),
                            "abstain_rate": abstain, "samples": len(y)})
    pred = ev.predicate(model_info=info, dataset=dataset, seed=seed, clean=clean, results=results, checks=checks)
    return Evaluation(clean, results, checks, pred, certs)


def table(evaluation: Evaluation) -> str:
    """A plain-text table of the results."""
    lines = [f"clean accuracy: {evaluation.clean_accuracy:.4f}"]
    for r in evaluation.results:
        if r["kind"] == "empirical":
            per = ", ".join(f"{a['name']} {a['accuracy']:.4f}" for a in r["attacks"])
            lines.append(f"{r['norm']} eps={r['epsilon']:g}: worst-case robust {r['robust_accuracy']:.4f} ({per})")
        elif r["kind"] == "certified":
            lines.append(f"certified l2 r={r['radius']:g} (sigma={r['sigma']:g}, n={r['n']}, alpha={r['alpha']:g}): "
                         f"{r['certified_accuracy']:.4f} (abstain {r['abstain_rate']:.4f})")
    if evaluation.checks:
        lines.append("gradient-masking checks: " + ", ".join(f"{k}={v}" for k, v in evaluation.checks.items()))
    return "\n".join(lines)


def plot(evaluation: Evaluation, path: Path, title: str = "") -> None:
    """Accuracy vs epsilon (each attack and the worst case) and certified accuracy vs radius, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qsafe._io import atomic_output

    emp = [r for r in evaluation.results if r["kind"] == "empirical"]
    cert = [r for r in evaluation.results if r["kind"] == "certified"]
    panels = [p for p in (emp, cert) if p]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.5 * max(1, len(panels)), 4), squeeze=False)
    col = 0
    if emp:
        ax = axes[0][col]
        eps = [0.0] + [r["epsilon"] for r in emp]
        names = sorted({a["name"] for r in emp for a in r["attacks"]})
        for name in names:
            acc = [evaluation.clean_accuracy] + [next((a["accuracy"] for a in r["attacks"] if a["name"] == name),
                                                      np.nan) for r in emp]
            ax.plot(eps, acc, marker="o", label=name)
        ax.plot(eps, [evaluation.clean_accuracy] + [r["robust_accuracy"] for r in emp], "k--", marker="s",
                label="worst case")
        ax.set_xlabel(f"epsilon ({emp[0]['norm']})")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
        col += 1
    if cert:
        ax = axes[0][col]
        for sigma in sorted({r["sigma"] for r in cert}):
            rows = [r for r in cert if r["sigma"] == sigma]
            ax.plot([r["radius"] for r in rows], [r["certified_accuracy"] for r in rows], marker="o",
                    label=f"sigma={sigma:g}")
        ax.set_xlabel("L2 radius")
        ax.set_ylabel("certified accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_output(path) as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
