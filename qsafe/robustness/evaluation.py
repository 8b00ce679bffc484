"""Evaluate a classifier: clean accuracy, worst case over every attack at each epsilon, certified accuracy at
each radius, gradient-masking checks; and the ``robustness-evaluation/v1`` predicate that signs it.

Worst case: a sample is robust at an epsilon only if **every** attack run at that epsilon fails on it.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qsafe.robustness._torch import torch
from qsafe.robustness.attacks import AttackSpec, run_attack

__all__ = ["EmpiricalResult", "clean_accuracy", "default_attacks", "evaluate_attacks", "library_versions",
           "masking_checks", "predicate"]


@dataclass
class EmpiricalResult:
    """Accuracy under each attack at one (norm, epsilon), and the worst case over them."""

    norm: str
    epsilon: float
    attacks: list[dict[str, Any]] = field(default_factory=list)
    robust_accuracy: float = 1.0
    samples: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "empirical", "norm": self.norm, "epsilon": self.epsilon, "attacks": self.attacks,
                "robust_accuracy": self.robust_accuracy, "samples": self.samples}


def clean_accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy on unperturbed inputs."""
    t = torch()
    with t.no_grad():
        pred = model(t.from_numpy(np.ascontiguousarray(x))).argmax(1).numpy()
    return float(np.mean(pred == y))


def default_attacks(norm: str, epsilon: float, *, restarts: int = 5, art: bool = False) -> list[AttackSpec]:
    """The suite run at each epsilon: FGSM, PGD-40 with restarts, APGD-CE-100; with ``art`` also ART's PGD-40
    (one random start) and APGD-CE-100, whose per-image results join the worst case."""
    specs = [AttackSpec("fgsm", norm, epsilon, steps=1), AttackSpec("pgd", norm, epsilon, steps=40, restarts=restarts),
             AttackSpec("apgd-ce", norm, epsilon, steps=100, restarts=1)]
    if art:
        specs += [AttackSpec("art-pgd", norm, epsilon, steps=40, restarts=1),
                  AttackSpec("art-apgd-ce", norm, epsilon, steps=100, restarts=1)]
    return specs


def evaluate_attacks(model: Any, x: np.ndarray, y: np.ndarray, specs: Sequence[AttackSpec], *, seed: int = 0,
                     progress: Callable[[str], None] | None = None) -> list[EmpiricalResult]:
    """Run every attack; group by (norm, epsilon); worst case per sample within each group."""
    t = torch()
    xt, yt = t.from_numpy(np.ascontiguousarray(x)), t.from_numpy(np.ascontiguousarray(y))
    groups: dict[tuple[str, float], tuple[EmpiricalResult, Any]] = {}
    for spec in specs:
        gen = t.Generator()
        gen.manual_seed(seed)
        _, broken = run_attack(model, xt, yt, spec, gen=gen)
        key = (spec.norm, spec.epsilon)
        if key not in groups:
            groups[key] = (EmpiricalResult(spec.norm, spec.epsilon, samples=len(y)), t.zeros(len(y), dtype=t.bool))
        result, any_broken = groups[key]
        any_broken |= broken
        acc = 1.0 - float(broken.float().mean())
        result.attacks.append({**spec.describe(), "accuracy": acc})
        result.robust_accuracy = 1.0 - float(any_broken.float().mean())
        if progress is not None:
            progress(f"{spec.name} {spec.norm} eps={spec.epsilon:g}: accuracy {acc:.4f}")
    return [r for r, _ in groups.values()]


def masking_checks(results: Sequence[EmpiricalResult], *, large_eps_accuracy: float | None = None,
                   tolerance: float = 0.02) -> dict[str, Any]:
    """Signs of gradient masking (Athalye et al. 2018; Carlini et al. 2019), each a pass/fail with its figures.

    - iterative attacks are at least as strong as FGSM (a single step beating PGD means obfuscated gradients);
    - APGD-CE (the stronger attack) is not much weaker than PGD (by more than max(``tolerance``, 0.05));
    - accuracy falls to ~0 at a large epsilon (``large_eps_accuracy`` <= 0.05).
    """
    checks: dict[str, Any] = {}
    fgsm_ok, apgd_ok = True, True
    for r in results:
        acc = {a["name"]: a["accuracy"] for a in r.attacks}
        if "fgsm" in acc and "pgd" in acc and acc["fgsm"] + tolerance < acc["pgd"]:
            fgsm_ok = False
        # the stronger, parameter-free attack must not be much weaker than PGD (it may well be stronger)
        if "apgd-ce" in acc and "pgd" in acc and acc["apgd-ce"] > acc["pgd"] + max(tolerance, 0.05):
            apgd_ok = False
    checks["iterative_not_weaker_than_fgsm"] = fgsm_ok
    checks["apgd_agrees_with_pgd"] = apgd_ok
    if large_eps_accuracy is not None:
        checks["large_epsilon_accuracy"] = large_eps_accuracy
        checks["accuracy_vanishes_at_large_epsilon"] = large_eps_accuracy <= 0.05
    checks["passed"] = all(v for k, v in checks.items() if isinstance(v, bool))
    return checks


def library_versions() -> dict[str, str]:
    """Versions of what produced the figures."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("qsafe", "torch", "numpy", "scipy", "scikit-learn", "adversarial-robustness-toolbox"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def predicate(*, model_info: dict[str, Any], dataset: dict[str, Any], seed: int, clean: float,
              results: Sequence[dict[str, Any]], checks: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``https://qsafe.dev/robustness-evaluation/v1`` predicate (fractions in [0, 1]).

    ``results`` items are ``{"kind": "empirical", norm, epsilon, attacks, robust_accuracy, samples}``,
    ``{"kind": "certified", norm: "l2", sigma, radius, n0, n, alpha, certified_accuracy, abstain_rate, samples}``
    or ``{"kind": "text", budget, attack_success_rate, clean_accuracy, samples}``.
    """
    return {"evaluator": {"tool": "qsafe robust", "libraries": library_versions()},
            "model": model_info, "dataset": dataset, "seed": seed, "clean_accuracy": clean,
            "results": list(results), "gradient_masking_checks": checks or {},
            "threat_model": "white-box evasion at test time; L-inf/L2 balls intersected with the [0,1] box; "
                            "certified results are L2 and hold for the smoothed classifier only"}
