"""ART (adversarial-robustness-toolbox 1.20.1) as the independent peer: its PGD, APGD and adversarial trainer
run on the same torch model, for tests and benchmarks. Imported only there (ART is a test dependency)."""

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


def pgd(model: Any, x: np.ndarray, y: np.ndarray, epsilon: float, norm: str = "linf", *, steps: int = 40,
        restarts: int = 1, step_size: float | None = None, seed: int = 0) -> float:
    """Accuracy under ART's ProjectedGradientDescent (same eps, step size 2.5*eps/steps, restarts)."""
    from art.attacks.evasion import ProjectedGradientDescent

    np.random.seed(seed)
    torch().manual_seed(seed)
    attack = ProjectedGradientDescent(classifier(model), norm=_norm(norm), eps=epsilon,
                                      eps_step=step_size or 2.5 * epsilon / steps, max_iter=steps,
                                      num_random_init=restarts, batch_size=512, verbose=False)
    return _accuracy(model, attack.generate(x=x, y=y), y)


def apgd(model: Any, x: np.ndarray, y: np.ndarray, epsilon: float, norm: str = "linf", *, steps: int = 100,
         restarts: int = 1, seed: int = 0) -> float:
    """Accuracy under ART's AutoProjectedGradientDescent with the cross-entropy loss."""
    from art.attacks.evasion import AutoProjectedGradientDescent

    np.random.seed(seed)
    torch().manual_seed(seed)
    attack = AutoProjectedGradientDescent(classifier(model), norm=_norm(norm), eps=epsilon, eps_step=2 * epsilon,
                                          max_iter=steps, nb_random_init=restarts, batch_size=512,
                                          loss_type="cross_entropy", verbose=False)
    return _accuracy(model, attack.generate(x=x, y=y), y)


def _accuracy(model: Any, x_adv: np.ndarray, y: np.ndarray) -> float:
    t = torch()
    with t.no_grad():
        pred = model(t.from_numpy(x_adv.astype(np.float32))).argmax(1).numpy()
    return float(np.mean(pred == y))
