"""Import torch on first use, with a clear error when the ``torch`` extra is missing."""

from __future__ import annotations

from typing import Any

from qsafe.errors import MissingDependencyError


def torch() -> Any:
    """The torch module, limited to one intra-op thread unless the caller chose otherwise.

    Raises:
        MissingDependencyError: torch is not installed (``pip install 'qsafe[robust]'``).
    """
    try:
        import torch as _torch
    except ImportError as exc:  # pragma: no cover - the dev install has torch
        raise MissingDependencyError("qsafe.robustness needs torch", hint="pip install 'qsafe[robust]'") from exc
    return _torch


def single_thread() -> None:
    """One torch thread: on small shared machines two threads were measured 30-60x slower."""
    torch().set_num_threads(1)


def seed_all(seed: int) -> Any:
    """Seed torch (and return a torch Generator seeded the same) for deterministic runs."""
    t = torch()
    t.manual_seed(seed)
    gen = t.Generator()
    gen.manual_seed(seed)
    return gen
