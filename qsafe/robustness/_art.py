"""ART (adversarial-robustness-toolbox 1.20.1) as the independent peer: its PGD and APGD run on the same torch
model -- in tests and benchmarks, and as the ``art-pgd`` / ``art-apgd-ce`` attacks of ``qsafe robust attack`` and
``report --with-art``, whose per-image results join qsafe's in the worst case. ART is not in the ``robust``
extra: without it those attacks fail with MissingDependencyError (exit 5)."""

from __future__ import annotations

from typing import Any

import numpy as np

from qsafe.errors import MissingDependencyError
from qsafe.robustness._torch import torch


def classifier(model: Any) -> Any:
    """Wrap a digits CNN as an ART ``PyTorchClassifier`` (inputs (1, 8, 8) in [0, 1], 10 classes)."""
    try:
        from art.estimators.classification import PyTorchClassifier
    except ImportError as exc:  # pragma: no cover - the dev install has ART
        raise MissingDependencyError("the ART peer needs adversarial-robustness-toolbox==1.20.1 and packaging",
                                     hint="pip install adversarial-robustness-toolbox==1.20.1 packaging") from exc
    t = torch()
    return PyTorchClassifier(model=model, loss=t.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                             clip_values=(0.0, 1.0), device_type="cpu",
                             optimizer=t.optim.Adam(model.parameters(), lr=1e-3))


def _norm(norm: str) -> Any:
    return np.inf if norm == "linf" else 2


def _attack_module() -> Any:
    try:
        from art.attacks import evasion
    except ImportError as exc:  # pragma: no cover - the dev install has ART
        raise MissingDependencyError("the ART attacks need adversarial-robustness-toolbox==1.20.1 and packaging",
                                     hint="pip install adversarial-robustness-toolbox==1.20.1 packaging") from exc
    return evasion


def pgd_examples(model: Any, x: np.ndarray, y: np.ndarray, epsilon: float, norm: str = "linf", *, steps: int = 40,
                 restarts: int = 1, step_size: float | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """ART's ProjectedGradientDescent (same eps, step size 2.5*eps/steps, restarts) on ``(x, y)``.

    Returns:
        ``(x_adv, broken)``: ART's adversarial examples and a bool mask of those the model misclassifies.
    """
    np.random.seed(seed)
    torch().manual_seed(seed)
    attack = _attack_module().ProjectedGradientDescent(
        classifier(model), norm=_norm(norm), eps=epsilon, eps_step=step_size or 2.5 * epsilon / steps,
        max_iter=steps, num_random_init=restarts, batch_size=512, verbose=False)
    x_adv = attack.generate(x=x, y=y).astype(np.float32)
    return x_adv, _wrong(model, x_adv, y)


def apgd_examples(model: Any, x: np.ndarray, y: np.ndarray, epsilon: float, norm: str = "linf", *, steps: int = 100,
                  restarts: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """ART's AutoProjectedGradientDescent with the cross-entropy loss; returns ``(x_adv, broken)``."""
    np.random.seed(seed)
    torch().manual_seed(seed)
    attack = _attack_module().AutoProjectedGradientDescent(
        classifier(model), norm=_norm(norm), eps=epsilon, eps_step=2 * epsilon, max_iter=steps,
        nb_random_init=restarts, batch_size=512, loss_type="cross_entropy", verbose=False)
    x_adv = attack.generate(x=x, y=y).astype(np.float32)
    return x_adv, _wrong(model, x_adv, y)


def pgd(model: Any, x: np.ndarray, y: np.ndarray, epsilon: float, norm: str = "linf", *, steps: int = 40,
        restarts: int = 1, step_size: float | None = None, seed: int = 0) -> float:
    """Accuracy under ART's ProjectedGradientDescent."""
    _, broken = pgd_examples(model, x, y, epsilon, norm, steps=steps, restarts=restarts, step_size=step_size,
                             seed=seed)
    return 1.0 - float(np.mean(broken))


def apgd(model: Any, x: np.ndarray, y: np.ndarray, epsilon: float, norm: str = "linf", *, steps: int = 100,
         restarts: int = 1, seed: int = 0) -> float:
    """Accuracy under ART's AutoProjectedGradientDescent with the cross-entropy loss."""
    _, broken = apgd_examples(model, x, y, epsilon, norm, steps=steps, restarts=restarts, seed=seed)
    return 1.0 - float(np.mean(broken))


def _wrong(model: Any, x_adv: np.ndarray, y: np.ndarray) -> np.ndarray:
    t = torch()
    with t.no_grad():
        pred = model(t.from_numpy(x_adv)).argmax(1).numpy()
    return np.asarray(pred != y)
