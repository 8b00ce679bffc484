"""Adversarial robustness: attack, harden and certify a classifier, and sign the evaluation as model evidence.

Needs the ``robust`` extra (torch, scikit-learn, scipy); every submodule imports torch on first use, so
``import qsafe.robustness`` itself is cheap.

- :mod:`~qsafe.robustness.attacks`: FGSM, PGD (L-inf/L2, restarts), APGD-CE.
- :mod:`~qsafe.robustness.training`: standard, PGD adversarial training, TRADES, noise (+consistency) training.
- :mod:`~qsafe.robustness.smoothing`: randomized smoothing CERTIFY / PREDICT (Cohen et al. 2019).
- :mod:`~qsafe.robustness.evaluation`: worst case over attacks, gradient-masking checks, the signed predicate.
- :mod:`~qsafe.robustness.report`: the whole evaluation of one model, tables and plots.
- :mod:`~qsafe.robustness.text`: evasion of the SMS-spam classifier and its hardening.
- :mod:`~qsafe.robustness.data`, :mod:`~qsafe.robustness.models`: the digits scenario and its CNN file format.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["attacks", "data", "evaluation", "models", "report", "seed_all", "single_thread", "smoothing", "text",
           "torch_module", "training"]
_MODULES = ("attacks", "data", "evaluation", "models", "report", "smoothing", "text", "training")


def torch_module() -> Any:
    """The torch module (MissingDependencyError naming the ``robust`` extra when it is not installed)."""
    from qsafe.robustness._torch import torch

    return torch()


def single_thread() -> None:
    """One torch thread (two were measured 30-60x slower on small shared machines)."""
    from qsafe.robustness._torch import single_thread as one_thread

    one_thread()


def seed_all(seed: int) -> Any:
    """Seed torch for a deterministic run; returns a torch Generator seeded the same."""
    from qsafe.robustness._torch import seed_all as seed_torch

    return seed_torch(seed)


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"qsafe.robustness.{name}")
    raise AttributeError(f"module 'qsafe.robustness' has no attribute {name!r}")
